"""The checks of benchmarks/gpu_smoke.sh: what a run must show besides its exit code.

    python benchmarks/gpu_smoke_checks.py versions
    python benchmarks/gpu_smoke_checks.py dataset OUT --size 640 --big 256
    python benchmarks/gpu_smoke_checks.py run RUN_FOLDER               # summary.csv and every round's teacher.csv
    python benchmarks/gpu_smoke_checks.py boxes best.pt IMAGES --backend tensorrt --device 0
    python benchmarks/gpu_smoke_checks.py step-cost step_cost.json --limit 2.5

Each prints what it saw in a line or two and exits 1 with one `FAIL ...` line when the check does not hold.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")


class CheckFailed(Exception):
    """A claim of the smoke test that the run does not bear out."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("versions", help="torch, Ultralytics, TensorRT, ONNX Runtime versions and the GPUs")
    dataset = commands.add_parser("dataset", help="the demo's shapes drawn large: boxes over --big px at --size")
    dataset.add_argument("out", type=Path)
    dataset.add_argument("--size", type=int, default=640, help="image side in px")
    dataset.add_argument("--big", type=int, default=256, help="some boxes must be larger than this (px)")
    dataset.add_argument("--labeled", type=int, default=100)
    dataset.add_argument("--unlabeled", type=int, default=200)
    dataset.add_argument("--val", type=int, default=50)
    run = commands.add_parser("run", help="a cycle's summary.csv and its online rounds' teacher.csv")
    run.add_argument("run_dir", type=Path)
    run.add_argument("--allow-zero-map", action="store_true", help="CPU sizes: one epoch from scratch finds nothing")
    boxes = commands.add_parser("boxes", help="an exported backend's boxes against PyTorch's (mean IoU)")
    boxes.add_argument("weights", type=Path)
    boxes.add_argument("images", type=Path)
    boxes.add_argument("--backend", required=True)
    boxes.add_argument("--device", default="0")
    boxes.add_argument("--imgsz", type=int, default=640)
    boxes.add_argument("--conf", type=float, default=0.05)
    boxes.add_argument("--n", type=int, default=16, help="images compared")
    boxes.add_argument("--min-iou", type=float, default=0.9)
    boxes.add_argument("--out", type=Path, help="where the export goes")
    cost = commands.add_parser("step-cost", help="benchmarks/online_step_cost.py's figures against a limit")
    cost.add_argument("figures", type=Path)
    cost.add_argument("--limit", type=float, default=None, help="fail above this online/supervised ratio")
    args = parser.parse_args()
    try:
        {
            "versions": versions,
            "dataset": big_dataset,
            "run": check_run,
            "boxes": compare_boxes,
            "step-cost": step_cost,
        }[args.command](args)
    except CheckFailed as e:
        print(f"FAIL {e}")
        sys.exit(1)


def versions(args: argparse.Namespace) -> None:
    import importlib.metadata
    import shutil
    import subprocess

    import torch

    found = []
    for name in ("torch", "ultralytics", "tensorrt", "onnxruntime", "onnxruntime-gpu", "ray"):
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} -")
    print(f"python {sys.version.split()[0]}; " + "; ".join(found) + f"; CUDA {torch.version.cuda or '-'}")
    if shutil.which("nvidia-smi"):
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False)
        print((listed.stdout or listed.stderr).strip())
    else:
        print("nvidia-smi: not found")
    print(f"GPUs visible to torch: {torch.cuda.device_count()}")


def big_dataset(args: argparse.Namespace) -> None:
    """The demo's shapes drawn on 64 px scenes and scaled up to `--size`: boxes of 12-34 px become 0.19-0.53 of the
    image, so at 640 most are over 256 px, the case fp16 box areas overflow on (the fp32 geometry fix)."""
    import cv2

    from yolossl.demo import DemoSpec, write_demo_dataset

    spec = DemoSpec(n_labeled=args.labeled, n_unlabeled=args.unlabeled, n_val=args.val, size=64, seed=3)
    write_demo_dataset(args.out, spec)
    for path in args.out.rglob("*.jpg"):
        image = cv2.imread(str(path))
        cv2.imwrite(str(path), cv2.resize(image, (args.size, args.size), interpolation=cv2.INTER_LINEAR))
    sides = [
        max(float(w), float(h)) * args.size
        for label in (args.out / "labeled" / "labels").glob("*.txt")
        for _, _, _, w, h in (line.split() for line in label.read_text().splitlines())
    ]
    big = sum(side > args.big for side in sides)
    print(f"dataset {args.out}: {len(sides)} labeled boxes at {args.size} px, {big} over {args.big} px")
    if not big:
        raise CheckFailed(f"dataset: no labeled box over {args.big} px")


def check_run(args: argparse.Namespace) -> None:
    """Exit 0 is not enough: every round's mAP50-95 above 0, no NaN in summary.csv, and every online round's
    teacher.csv with an unlabeled loss above 0 and kept targets (a DDP child that fell back to plain supervised
    training writes neither)."""
    run_dir = args.run_dir
    rows = _csv_rows(run_dir / "summary.csv")
    if not rows:
        raise CheckFailed(f"{run_dir / 'summary.csv'}: no rounds")
    for row in rows:
        nan = [key for key, value in row.items() if value.strip().lower() in ("nan", "inf", "-inf")]
        if nan:
            raise CheckFailed(f"{run_dir / 'summary.csv'}: round {row['round']} has NaN or inf in {', '.join(nan)}")
        score = float(row["map50_95"])
        if not (score > 0 or (args.allow_zero_map and score == 0)):
            raise CheckFailed(f"{run_dir / 'summary.csv'}: round {row['round']} mAP50-95 is {score}")
    online = [row for row in rows if row.get("teacher_kept_share", "") != ""]
    mode = _config_value(run_dir, "mode")
    if mode == "online" and len(online) != len(rows) - 1:
        raise CheckFailed(f"{run_dir}: an online run, but {len(rows) - 1 - len(online)} rounds show no teacher")
    seen = []
    for row in online:
        teacher = run_dir / f"round_{row['round']}" / "train" / "teacher.csv"
        epochs = _csv_rows(teacher)
        if not epochs:
            raise CheckFailed(f"{teacher}: missing or empty: the round did not train online")
        losses = [float(epoch["u_loss"]) for epoch in epochs]
        if not all(math.isfinite(loss) and loss > 0 for loss in losses):
            raise CheckFailed(f"{teacher}: unlabeled loss per epoch {losses}, not all above 0")
        kept = sum(int(value) for epoch in epochs for key, value in epoch.items() if key.startswith("kept_"))
        if kept <= 0:
            raise CheckFailed(f"{teacher}: the teacher kept no target in {len(epochs)} epochs")
        seen.append(f"round {row['round']}: u_loss {min(losses):.4f}-{max(losses):.4f}, {kept} targets kept")
    maps = " ".join(f"{float(row['map50_95']):.3f}" for row in rows)
    print(f"run {run_dir.name}: {len(rows)} rounds ({mode}), mAP50-95 by round {maps}; " + ("; ".join(seen) or "-"))


def compare_boxes(args: argparse.Namespace) -> None:
    """The exported engine's boxes must be PyTorch's: per box of PyTorch's (score >= 2x the floor), the best IoU with
    a box of the same class from the backend; their mean above `--min-iou`. An engine fed the wrong input precision
    gives garbage boxes or none."""
    import numpy as np

    from yolossl.data import scan_image_folders
    from yolossl.label.engine import Detector
    from yolossl.quality import box_iou

    items = scan_image_folders([args.images]).images[: args.n]
    common = dict(imgsz=args.imgsz, device=args.device, conf=args.conf, batch=len(items))
    reference = Detector([args.weights], **common)
    exported = Detector([args.weights], backend=args.backend, export_dir=args.out, **common)
    ious = []
    for ours, theirs in zip(reference.run(items, batch=len(items)), exported.run(items, batch=len(items)), strict=True):
        a, b = ours.detections, theirs.detections
        for box, cls in zip(a.xyxy[a.scores >= 2 * args.conf], a.classes[a.scores >= 2 * args.conf], strict=True):
            same = b.xyxy[b.classes == cls]
            ious.append(float(box_iou(box[None], same)[0].max()) if len(same) else 0.0)
    if not ious:
        raise CheckFailed(f"boxes: PyTorch found no box over {2 * args.conf} on {len(items)} images: nothing compared")
    mean = float(np.mean(ious))
    print(f"boxes {args.backend} vs torch: {len(ious)} boxes on {len(items)} images, mean IoU {mean:.3f}")
    if mean <= args.min_iou:
        raise CheckFailed(f"boxes {args.backend}: mean IoU {mean:.3f} with PyTorch's, not above {args.min_iou}")


def step_cost(args: argparse.Namespace) -> None:
    figures = json.loads(args.figures.read_text())
    memory = figures.get("max_memory_mb", {})
    shown = ", ".join(f"{arm} {mb} MB" for arm, mb in memory.items()) or "- (CPU)"
    print(
        f"step cost: online {figures['online']['median_s']} s, supervised {figures['supervised']['median_s']} s a step,"
        f" ratio {figures['ratio']}; max memory allocated {shown}"
    )
    if args.limit is not None and figures["ratio"] > args.limit:
        raise CheckFailed(f"step cost: an online step is {figures['ratio']}x a supervised one, over {args.limit}x")


def _csv_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _config_value(run_dir: Path, key: str) -> str:
    import yaml

    return str(yaml.safe_load((run_dir / "config.yaml").read_text()).get(key))


if __name__ == "__main__":
    main()
