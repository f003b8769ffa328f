"""The Ray engine: the same labeling step, spread over a Ray cluster (or all local cores and GPUs).

The pool is cut into shards of `shard_size` images. A Ray Data pipeline streams the shards through
an actor pool (`map_batches` with a callable class): each actor loads the model once (one per GPU,
or per CPU; an actor Ray gave no GPU labels on the CPU) and writes its shard's labels, images and
record into `<out>.partial/shards/<k>/`, marking it done last. The driver then merges the shards in
order, so the result is byte for byte what the local engine writes. An interrupted run keeps its
finished shards: the next run skips them. Local Ray by default; `address` joins an existing cluster
(every node must see the image paths and the output folder: a shared file system). A model for
another `--backend` is exported once, by the driver, and the actors load that file (TensorRT: the
driver builds the engine on its GPU, so every node needs the same GPU model).

    pip install 'yolossl[ray]'
    >>> stats = pseudo_label_ray([weights], pool.images, Path("out"), settings, thresholds, names)
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from yolossl._fs import resumable_partial_dir
from yolossl.data import ImageItem
from yolossl.errors import YolosslError
from yolossl.label.decisions import ClassReviewer
from yolossl.label.filters import ClassThresholds
from yolossl.label.pseudo import export_dir_for, finish_output
from yolossl.label.record import RECORD_COLUMNS
from yolossl.label.settings import LabelSettings
from yolossl.label.writer import LabelStats

logger = logging.getLogger(__name__)

DONE = "done.json"


def actor_settings(settings: LabelSettings, gpu_ids: Sequence[Any]) -> LabelSettings:
    """The labeling settings inside an actor, from the GPUs Ray gave it (`ray.get_gpu_ids()`): with one, that GPU
    is the only one it sees, as index 0, whatever `--device` said; with none, the CPU."""
    return replace(settings, device="0" if gpu_ids else "cpu")


def require_ray() -> Any:
    try:
        import ray
    except ImportError as e:
        raise YolosslError("--engine ray needs Ray Data: pip install 'yolossl[ray]'") from e
    return ray


class ShardLabeler:
    """A Ray actor: loads the detector once, then labels one shard per call into its own folder."""

    def __init__(
        self,
        weights: list[str],
        settings: LabelSettings,
        thresholds: ClassThresholds,
        names: dict[int, str],
        shards_dir: str,
        reviewer: ClassReviewer | None = None,
    ) -> None:
        import ray
        import torch

        from yolossl.label.pseudo import make_detector

        settings = actor_settings(settings, ray.get_gpu_ids())
        if settings.device == "cpu":
            torch.set_num_threads(1)  # one actor per CPU: no oversubscription
        self.detector = make_detector(weights, settings.predict)
        self.settings, self.thresholds, self.names = settings, thresholds, names
        self.shards_dir, self.reviewer = Path(shards_dir), reviewer

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        from yolossl.label.pseudo import label_into

        out = []
        for shard, ids, paths in zip(batch["shard"], batch["ids"], batch["paths"], strict=True):
            shard_dir = self.shards_dir / f"{int(shard):06d}"
            if shard_dir.exists():
                shutil.rmtree(shard_dir)  # a shard cut off last time is redone whole
            shard_dir.mkdir(parents=True)
            items = [ImageItem(str(i), Path(str(p))) for i, p in zip(ids, paths, strict=True)]
            stats = label_into(
                self.detector, items, shard_dir, self.settings, self.thresholds, self.names, reviewer=self.reviewer
            )
            payload = json.dumps(stats.to_dict())
            (shard_dir / f".{DONE}.tmp").write_text(payload)
            os.replace(shard_dir / f".{DONE}.tmp", shard_dir / DONE)
            out.append(int(shard))
        return {"shard": out}


def pseudo_label_ray(
    weights: Sequence[str | Path],
    images: Sequence[ImageItem],
    out_dir: Path,
    settings: LabelSettings,
    thresholds: ClassThresholds,
    names: dict[int, str],
    reviewer: ClassReviewer | None = None,
    shard_size: int = 1000,
    address: str | None = None,
) -> LabelStats:
    """Label `images` into `out_dir` with Ray; the folder ends up as the local engine would write it."""
    ray = require_ray()
    start = time.perf_counter()
    partial = resumable_partial_dir(out_dir)
    shards_dir = partial / "shards"
    shards_dir.mkdir(exist_ok=True)  # kept from an interrupted run: finished shards are reused
    shards = [images[i : i + shard_size] for i in range(0, len(images), shard_size)]
    todo = [k for k in range(len(shards)) if not (shards_dir / f"{k:06d}" / DONE).is_file()]
    logger.info(
        "Ray engine: %d shards of up to %d images, %d to label (%d done before)",
        len(shards),
        shard_size,
        len(todo),
        len(shards) - len(todo),
    )
    if todo:
        models = driver_exports(weights, settings, export_dir_for(out_dir))
        _run_shards(ray, todo, shards, shards_dir, models, settings, thresholds, names, reviewer, address)
    stats = _merge_shards(shards_dir, len(shards), partial)
    stats.wall_time_s = round(time.perf_counter() - start, 3)
    shutil.rmtree(shards_dir)
    finish_output(partial, out_dir, thresholds, stats)
    return stats


def driver_exports(weights: Sequence[str | Path], settings: LabelSettings, export_dir: Path) -> list[Path]:
    """The files the actors load: `weights` exported for `settings.backend` here, once (every actor exporting its own
    raced on the same folder), or as they are for PyTorch and for files already exported (`Detector.sources`)."""
    if settings.backend == "torch":
        return [Path(w) for w in weights]
    import torch

    from yolossl.label.engine import export_model, is_exported, labeling_device

    # a driver without a GPU (a head node) exports ONNX and OpenVINO on its CPU; TensorRT says it needs one
    device = labeling_device(settings.device if torch.cuda.is_available() else "cpu")
    half = device.type == "cuda"  # as the detector would export it on this device
    return [
        w
        if is_exported(w, settings.backend)
        else export_model(w, settings.backend, settings.imgsz, settings.batch, device, half, export_dir)
        for w in map(Path, weights)
    ]


def _run_shards(
    ray: Any,
    todo: list[int],
    shards: list[Sequence[ImageItem]],
    shards_dir: Path,
    weights: Sequence[str | Path],
    settings: LabelSettings,
    thresholds: ClassThresholds,
    names: dict[int, str],
    reviewer: ClassReviewer | None,
    address: str | None,
) -> None:
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    gpus = int(ray.cluster_resources().get("GPU", 0)) if settings.device != "cpu" else 0
    cpus = int(ray.cluster_resources().get("CPU", 1))
    # one actor per GPU; on CPUs one per core but one, which Ray Data keeps for feeding the shards
    size = gpus or max(1, cpus - 1)
    rows = [{"shard": k, "ids": [i.id for i in shards[k]], "paths": [str(i.path) for i in shards[k]]} for k in todo]
    dataset = ray.data.from_items(rows).map_batches(
        ShardLabeler,
        fn_constructor_kwargs={
            "weights": [str(w) for w in weights],
            "settings": settings,
            "thresholds": thresholds,
            "names": names,
            "shards_dir": str(shards_dir),
            "reviewer": reviewer,
        },
        batch_size=1,
        concurrency=min(size, len(todo)),
        num_cpus=1,
        num_gpus=1 if gpus else 0,
    )
    finished = sum(len(batch["shard"]) for batch in dataset.iter_batches(batch_size=1))
    if finished != len(todo):
        raise YolosslError(f"{shards_dir}: {len(todo) - finished} shards did not finish; run again to resume")


def _merge_shards(shards_dir: Path, count: int, partial: Path) -> LabelStats:
    """Move every shard's labels and images into `partial` and join the records, in shard order."""
    stats = LabelStats()
    for folder in ("labels", "images"):
        target = partial / folder
        if target.exists():
            shutil.rmtree(target)
        target.mkdir()
    with open(partial / "record.csv", "w", encoding="utf-8", newline="") as record:
        record.write(",".join(RECORD_COLUMNS) + "\r\n")
        for k in range(count):
            shard = shards_dir / f"{k:06d}"
            stats.add(LabelStats.from_dict(json.loads((shard / DONE).read_text())))
            for folder in ("labels", "images"):
                for entry in os.scandir(shard / folder):
                    os.replace(entry.path, partial / folder / entry.name)
            with open(shard / "record.csv", encoding="utf-8", newline="") as part:
                part.readline()  # its header
                shutil.copyfileobj(part, record)
    return stats
