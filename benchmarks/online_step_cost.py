"""What does an online-teacher step cost against a supervised step? (issue 16: target <= 2.5x at 1:1)

Both arms train the same model (yolo11n.yaml, from scratch) on the same drawn labeled images, with
the same batch, imgsz and seed; the online arm adds as many unlabeled images per batch
(`unlabeled_ratio 1`): the teacher's forward and NMS on the weak view, the strong view, and the
student's forward and backward over twice the images. A step is timed from one batch's start to the
next one's (data loading included: on CPU Ultralytics loads in the main process); the first
`--skip` steps of each arm are left out (allocator and thread warm-up). The teacher's floor and
threshold are near zero, so that a from-scratch teacher has boxes to pass through NMS and encode.

    python benchmarks/online_step_cost.py                   # imgsz 96, batch 16, 64 + 64 images, CPU
    python benchmarks/online_step_cost.py --images 128 --epochs 3   # the figures in benchmarks/RESULTS.md
    python benchmarks/online_step_cost.py --device 0 --images 512 --imgsz 640
    python benchmarks/online_step_cost.py --images 128 --epochs 3 --unsure soft   # what a soft/dense step costs
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--imgsz", type=int, default=96)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--images", type=int, default=64, help="labeled images, and as many unlabeled ones")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--skip", type=int, default=2, help="first steps of each arm left out")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=0, help="loader workers (Ultralytics uses 0 on CPU)")
    parser.add_argument("--out", type=Path, default=None, help="write the figures here as JSON")
    parser.add_argument(
        "--unsure", choices=("ignore", "soft", "dense"), default="ignore", help="what the unsure boxes teach"
    )
    args = parser.parse_args()
    logging.basicConfig(format="%(name)s: %(message)s")
    logging.getLogger("yolossl").setLevel(logging.INFO)  # the teacher's kept boxes per epoch: it did label

    with tempfile.TemporaryDirectory(prefix="online-step-cost-") as tmp:
        data_yaml = _dataset(Path(tmp), args.images, args.imgsz, args.unsure)
        runs = {arm: _step_times(arm, data_yaml, Path(tmp) / arm, args) for arm in ("supervised", "online")}
    figures: dict = {arm: _summary(times[args.skip :]) for arm, (times, _) in runs.items()}
    if any(memory is not None for _, memory in runs.values()):
        figures["max_memory_mb"] = {arm: memory for arm, (_, memory) in runs.items()}
    figures["ratio"] = round(figures["online"]["median_s"] / figures["supervised"]["median_s"], 2)
    figures["settings"] = {k: str(v) for k, v in vars(args).items()}
    print(json.dumps(figures, indent=2))
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2))


def _dataset(root: Path, n_images: int, imgsz: int, unsure: str = "ignore") -> Path:
    """Drawn labeled, unlabeled and val images, a round dataset of the labeled ones naming an online.json."""
    import yaml

    from yolossl.data import load_data_yaml, scan_image_folders
    from yolossl.demo import DemoSpec, write_demo_dataset
    from yolossl.merge import build_round_dataset, mirror_split
    from yolossl.train.online_settings import ONLINE_KEY, OnlineSettings, save_online_settings
    from yolossl.train.targets import LossRules

    write_demo_dataset(root / "data", DemoSpec(n_labeled=n_images, n_unlabeled=n_images, n_val=16, size=imgsz))
    spec = load_data_yaml(root / "data" / "data.yaml")
    val = mirror_split(spec.val_items(), root / "val", len(spec.names))
    data_yaml = build_round_dataset(root / "round", spec.train_items(), [], val, spec.names).data_yaml
    pool = tuple(str(item.path) for item in scan_image_folders([str(root / "data" / "unlabeled")]).images)
    # conf 0.002 keeps nearly every box of a from-scratch teacher; with soft targets 0.99 makes nearly every box one
    conf = 0.99 if unsure == "soft" else 0.002
    save_online_settings(
        OnlineSettings(pool, LossRules(unsure=unsure), conf=conf, uncertain_low=0.001), root / "online.json"
    )
    meta = yaml.safe_load(data_yaml.read_text())
    data_yaml.write_text(yaml.safe_dump({**meta, ONLINE_KEY: str(root / "online.json")}))
    return data_yaml


def _step_times(arm: str, data_yaml: Path, save_dir: Path, args: argparse.Namespace) -> tuple[list[float], int | None]:
    """Seconds from each training batch's start to the next one's, within each epoch; on a GPU the most memory the
    arm's tensors took (MB, `torch.cuda.max_memory_allocated`)."""
    import torch

    from yolossl.runtime import ensure_fonts
    from yolossl.train.online import OnlineTeacherTrainer
    from yolossl.train.trainer import PseudoAwareTrainer

    ensure_fonts()
    trainer_class = OnlineTeacherTrainer if arm == "online" else PseudoAwareTrainer
    overrides = dict(
        model="yolo11n.yaml", data=str(data_yaml), epochs=args.epochs, imgsz=args.imgsz, batch=args.batch,
        device=args.device, workers=args.workers, plots=False, val=False, seed=0, deterministic=True,
        project=str(save_dir.parent), name=save_dir.name, exist_ok=True,
    )  # fmt: skip
    starts: list[tuple[int, float]] = []
    trainer = trainer_class(overrides=overrides)
    trainer.add_callback("on_train_batch_start", lambda t: starts.append((t.epoch, time.perf_counter())))
    trainer.add_callback("on_train_epoch_end", lambda t: starts.append((t.epoch, time.perf_counter())))
    cuda = torch.cuda.is_available() and args.device != "cpu"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    memory = round(torch.cuda.max_memory_allocated() / 2**20) if cuda else None
    return [b - a for (ea, a), (eb, b) in itertools.pairwise(starts) if ea == eb], memory


def _summary(times: list[float]) -> dict[str, float]:
    return {
        "steps": len(times),
        "median_s": round(statistics.median(times), 3),
        "mean_s": round(statistics.fmean(times), 3),
        "min_s": round(min(times), 3),
        "max_s": round(max(times), 3),
    }


if __name__ == "__main__":
    main()
