"""The Ray engine writes exactly what the local engine writes, and resumes from its finished shards."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from yolossl._fs import resumable_partial_dir
from yolossl.data import scan_image_folders
from yolossl.label import ClassThresholds, Detector, LabelSettings, pseudo_label

ray = pytest.importorskip("ray", reason="the Ray engine is an optional extra: pip install 'yolossl[ray]'")

NAMES = {0: "circle", 1: "square", 2: "triangle", 3: "cross", 4: "ring"}
# A one-epoch model scores its single candidate per image about 0.0025: below `conf` 0.003 it is uncertain
# (masked copies), above 0.002 it is kept (labels): both paths are compared.
SETTINGS = LabelSettings(
    conf=0.003, uncertain_low=0.002, min_conf=0.001, imgsz=64, batch=4, device="cpu", uncertain="mask"
)
KEEPING = LabelSettings(conf=0.002, uncertain_low=0.001, min_conf=0.001, imgsz=64, batch=4, device="cpu")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=200 * 1024**2)
    yield
    ray.shutdown()


def _files(root: Path) -> dict[str, bytes]:
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name != "stats.json":
            out[str(path.relative_to(root))] = path.read_bytes()
        if path.is_symlink():
            out[str(path.relative_to(root)) + " ->"] = os.readlink(path).encode()
    return out


def test_ray_and_local_engines_write_the_same_bytes(local_ray, tiny_dataset: Path, tiny_weights: Path, tmp_path):
    from yolossl.label.ray_engine import pseudo_label_ray

    pool = scan_image_folders([tiny_dataset / "unlabeled"]).images
    for name, settings in (("keeping", KEEPING),):  # masking: the resume test below compares it
        thresholds = ClassThresholds.global_conf(len(NAMES), settings.conf, settings.uncertain_low)
        detector = Detector([tiny_weights], imgsz=64, conf=settings.min_conf)
        local = pseudo_label(detector, pool, tmp_path / f"local-{name}", settings, thresholds, NAMES)
        remote = pseudo_label_ray(
            [tiny_weights], pool, tmp_path / f"ray-{name}", settings, thresholds, NAMES, shard_size=5
        )
        assert (local.masked_images if name == "masking" else local.kept) > 0
        assert _files(tmp_path / f"local-{name}") == _files(tmp_path / f"ray-{name}")
        for key in ("images", "kept", "uncertain", "dropped", "masked_images", "kept_per_class"):
            assert getattr(local, key) == getattr(remote, key), key
        assert not (tmp_path / f"ray-{name}.partial").exists()


def test_finished_shards_are_not_redone(local_ray, tiny_dataset: Path, tiny_weights: Path, tmp_path: Path):
    from yolossl.label.ray_engine import DONE, pseudo_label_ray

    pool = scan_image_folders([tiny_dataset / "unlabeled"]).images
    thresholds = ClassThresholds.global_conf(len(NAMES), SETTINGS.conf, SETTINGS.uncertain_low)
    detector = Detector([tiny_weights], imgsz=64, conf=SETTINGS.min_conf)
    pseudo_label(detector, pool, tmp_path / "whole", SETTINGS, thresholds, NAMES)  # the local engine's bytes

    # An interrupted run: shard 0 finished and marked done (its record carries a sentinel that only survives if
    # the shard is reused), shard 1 was cut off half-way (no done marker), shard 2 never started.
    pseudo_label(detector, pool[:5], tmp_path / "first", SETTINGS, thresholds, NAMES)
    shard0 = resumable_partial_dir(tmp_path / "resumed") / "shards" / "000000"  # carries the marker, as ours do
    shard0.mkdir(parents=True)
    for entry in ("labels", "images", "record.csv"):
        os.rename(tmp_path / "first" / entry, shard0 / entry)
    record = (shard0 / "record.csv").read_text().splitlines(keepends=True)
    record[1] = record[1].replace("score in", "SENTINEL score in")
    (shard0 / "record.csv").write_text("".join(record))
    (shard0 / DONE).write_text((tmp_path / "first" / "stats.json").read_text())
    half = tmp_path / "resumed.partial" / "shards" / "000001" / "labels"
    half.mkdir(parents=True)
    (half / "half.txt").write_text("0 0.5 0.5 0.1 0.1\n")

    pseudo_label_ray([tiny_weights], pool, tmp_path / "resumed", SETTINGS, thresholds, NAMES, shard_size=5)
    resumed, whole = _files(tmp_path / "resumed"), _files(tmp_path / "whole")
    assert b"SENTINEL" in resumed.pop("record.csv")  # shard 0 was taken as it was, not labeled again
    assert whole.pop("record.csv").count(b"\n") == (tmp_path / "resumed" / "record.csv").read_bytes().count(b"\n")
    assert resumed == whole  # labels and images: the half-done shard 1 and shard 2 were (re)done
    assert not (tmp_path / "resumed" / "labels" / "half.txt").exists()


def test_without_ray_the_option_says_how_to_install(monkeypatch) -> None:
    import builtins

    from yolossl.errors import YolosslError
    from yolossl.label.ray_engine import require_ray

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray":
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(YolosslError, match=r"pip install 'yolossl\[ray\]'"):
        require_ray()


def test_an_actor_labels_on_the_gpu_ray_gave_it_or_on_the_cpu() -> None:
    """Ray shows each actor only its own GPU (CUDA_VISIBLE_DEVICES): `--device 1` is index 0 inside it; an actor given
    no GPU (a CPU-only node, a cluster without GPUs) labels on the CPU, not on a device 0 it does not have."""
    from yolossl.label.ray_engine import actor_settings

    assert actor_settings(LabelSettings(device="1"), gpu_ids=[1]).device == "0"
    assert actor_settings(LabelSettings(device="1", batch=32), gpu_ids=[1]).batch == 32
    assert actor_settings(LabelSettings(device="0"), gpu_ids=[]).device == "cpu"


def test_the_driver_exports_once_and_actors_without_gpus_load_that_file_on_the_cpu(
    local_ray, tiny_dataset: Path, tiny_weights: Path, tmp_path: Path, monkeypatch
) -> None:
    """`--backend onnxruntime --device 0` on a cluster without GPUs: one export, by the driver, beside the output; the
    actors get its file and run on the CPU, writing what the local engine writes with that file."""
    from yolossl.label import ray_engine

    handed: list[list[Path]] = []
    run_shards = ray_engine._run_shards

    def spy(ray_module, todo, shards, shards_dir, models, *rest):
        handed.append(list(models))
        return run_shards(ray_module, todo, shards, shards_dir, models, *rest)

    monkeypatch.setattr(ray_engine, "_run_shards", spy)
    pool = scan_image_folders([tiny_dataset / "unlabeled"]).images
    settings = replace(KEEPING, device="0", backend="onnxruntime")
    thresholds = ClassThresholds.global_conf(len(NAMES), settings.conf, settings.uncertain_low)
    stats = ray_engine.pseudo_label_ray(
        [tiny_weights], pool, tmp_path / "ray", settings, thresholds, NAMES, shard_size=6
    )

    (exports,) = (tmp_path / ".ray-export").iterdir()  # one export folder, beside the output
    (onnx,) = handed[0]
    assert onnx.suffix == ".onnx" and onnx.parent == exports
    detector = Detector([onnx], imgsz=64, conf=settings.min_conf, backend="onnxruntime")
    local = pseudo_label(detector, pool, tmp_path / "local", replace(settings, device="cpu"), thresholds, NAMES)
    assert local.kept == stats.kept > 0
    assert _files(tmp_path / "local") == _files(tmp_path / "ray")
