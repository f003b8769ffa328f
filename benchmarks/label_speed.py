"""How fast does `yolossl label` label a folder, against the ways users would otherwise do it?

One command, one run, the same model, images and imgsz for every arm; each arm runs in its own
process so that its peak RSS is its own:

  (a) YOLO.predict(source=folder, save_txt=True, stream=True)           Ultralytics' docs, batch 1
  (b) the same with batch=32
  (c) bare batched forward + NMS over images already decoded and letterboxed in memory: the ceiling,
      with NMS at predict's default conf 0.25 and (c-floor) at 0.05, the floor yolossl label records
      candidate boxes down to (more boxes through NMS: the ceiling of the job (d) does)
  (d) yolossl label (batch 32), uncertain boxes masked (the default) and --uncertain keep;
      (d-glibc) the same with glibc's allocator untouched: every arm but this one keeps freed memory
      for reuse, as yolossl's command does (`reuse_freed_memory`)
  (e) yolossl label --backend onnxruntime
  RSS check: (d) on a pool 10x larger (the same images linked 10 times)

    python benchmarks/label_speed.py                      # nano model, imgsz 256, 2000 images
    python benchmarks/label_speed.py --images 200 --big 2000 --skip-onnx --repeat 1   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path("runs/bench/label_speed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--big", type=int, default=20000, help="pool size of the RSS check")
    parser.add_argument("--imgsz", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--weights", type=Path, help="default: a nano model trained briefly on the demo")
    parser.add_argument("--skip-onnx", action="store_true")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each speed arm, round-robin; the median counts")
    parser.add_argument("--arm", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    import yolossl.runtime

    if args.arm == "d-glibc":  # what yolossl label gained by keeping freed memory mapped
        yolossl.runtime.reuse_freed_memory = lambda: False
    yolossl.runtime.set_up_process()
    if args.arm:
        print(json.dumps(run_arm(args)))
        return

    weights = args.weights or ensure_weights(args.imgsz)
    folder = ensure_images(args.images, args.imgsz)
    big = ensure_big_pool(folder, args.big)
    arms = [
        ("a", "YOLO.predict(folder, save_txt, stream), batch 1", folder),
        ("b", f"YOLO.predict(folder, save_txt, stream), batch {args.batch}", folder),
        ("c", f"bare forward + NMS (conf 0.25) on in-memory letterboxed batches of {args.batch}", folder),
        ("c-floor", f"the same, NMS at conf {candidate_floor()} like (d)", folder),
        ("d", f"yolossl label, batch {args.batch} (uncertain: mask)", folder),
        ("d-keep", f"yolossl label, batch {args.batch}, --uncertain keep", folder),
        ("d-glibc", "(d) with glibc's allocator as it comes (no reuse_freed_memory)", folder),
    ]
    if not args.skip_onnx:
        arms.append(("e", f"yolossl label --backend onnxruntime, batch {args.batch}", folder))
    arms.append(("d-big", f"yolossl label, batch {args.batch}, {args.big} images (RSS check)", big))

    runs: dict[str, list[dict]] = {arm: [] for arm, _, _ in arms}
    # Round-robin, so that a slow spell of a shared machine lands on every arm, not on one.
    order = [a for _ in range(args.repeat) for a in arms if a[0] != "d-big"] + [a for a in arms if a[0] == "d-big"]
    for arm, title, source in order:
        cmd = [
            sys.executable,
            __file__,
            "--arm",
            arm,
            "--folder",
            str(source),
            "--weights",
            str(weights),
            "--imgsz",
            str(args.imgsz),
            "--batch",
            str(args.batch),
        ]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode:
            print(f"arm {arm} failed:\n{out.stderr[-3000:]}", file=sys.stderr)
            sys.exit(1)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        runs[arm].append(r)
        print(f"({arm}) {title}: {r['images_per_s']:.1f} img/s, peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
    results = {arm: _median_run(values) for arm, values in runs.items()}

    a, b, c, c_floor, d = (results[k]["images_per_s"] for k in ("a", "b", "c", "c-floor", "d"))
    print(f"\nmodel {weights}, imgsz {args.imgsz}, {args.images} images, {os.cpu_count()} CPU cores\n")
    print(f"images/s: the median of {args.repeat} runs (each run's figure in brackets); peak RSS: the largest\n")
    print("| arm | what | images/s | peak RSS (MB) | RSS after imports (MB) | torch threads |")
    print("|---|---|---|---|---|---|")
    for arm, title, _ in arms:
        r = results[arm]
        each = ", ".join(f"{v['images_per_s']:.1f}" for v in runs[arm])
        speed = f"{r['images_per_s']:.1f}" + (f" ({each})" if len(runs[arm]) > 1 else "")
        rss = f"{r['peak_rss_mb']:.0f} | {r['baseline_mb']:.0f}"
        print(f"| ({arm}) | {title} | {speed} | {rss} | {r['torch_threads']} |")
    print(f"\n(d)/(a) = {d / a:.2f} (target >= 1.5), (d)/(b) = {d / b:.2f} (>= 0.95), (d)/(c) = {d / c:.2f} (>= 0.9)")
    print(f"(d)/(c-floor) = {d / c_floor:.2f}: against the ceiling at the NMS threshold (d) runs")
    growth = results["d-big"]["peak_rss_mb"] / results["d"]["peak_rss_mb"] - 1
    print(f"peak RSS, {args.big} vs {args.images} images: {growth:+.1%} (target within 10%)")


def _median_run(values: list[dict]) -> dict:
    """The run of median speed, with the largest peak RSS of all runs."""
    ranked = sorted(values, key=lambda v: v["images_per_s"])
    return {**ranked[len(ranked) // 2], "peak_rss_mb": max(v["peak_rss_mb"] for v in values)}


def run_arm(args: argparse.Namespace) -> dict:
    """One arm, timed from the first image to the last result written."""
    images = sorted(p for p in args.folder.iterdir() if p.suffix == ".jpg")
    arm = args.arm
    # Every arm starts its clock (and its peak RSS) with the same libraries imported: the arms
    # measure work, not module imports (yolossl imports Ultralytics' backend lazily, on first use).
    import torch
    import torchvision  # noqa: F401  (Ultralytics' NMS takes torchvision's kernel once it is imported)
    import ultralytics.nn.autobackend
    import ultralytics.utils.nms  # noqa: F401
    from ultralytics import YOLO

    baseline = _rss_mb("VmRSS")
    _reset_peak_rss()
    if arm in ("a", "b"):
        model = YOLO(str(args.weights))
        out = ROOT / f"predict-{arm}"
        shutil.rmtree(out, ignore_errors=True)
        start = time.perf_counter()
        for _ in model.predict(
            source=str(args.folder),
            save_txt=True,
            stream=True,
            imgsz=args.imgsz,
            device="cpu",
            batch=1 if arm == "a" else args.batch,
            verbose=False,
            project=str(ROOT),
            name=f"predict-{arm}",
            exist_ok=True,
        ):
            pass
    elif arm in ("c", "c-floor"):
        start = ceiling(args, images, conf=candidate_floor() if arm == "c-floor" else 0.25)
    else:  # the `yolossl label` command itself, in this process: what a user runs, minus interpreter start-up
        from yolossl.cli import app

        backend = "onnxruntime" if arm == "e" else "torch"
        out = ROOT / f"out-{arm}"
        if backend != "torch":  # export outside the timed part, as a user exports once
            from yolossl.label import LabelSettings, make_detector
            from yolossl.label.pool import export_dir_for

            settings = LabelSettings(imgsz=args.imgsz, batch=args.batch, device="cpu", backend=backend)
            make_detector([args.weights], settings.predict, export_dir=export_dir_for(out))
        command = ["label", str(args.folder), "--model", str(args.weights), "--out", str(out), "--quiet"]
        command += ["--imgsz", str(args.imgsz), "--batch", str(args.batch), "--device", "cpu", "--backend", backend]
        command += ["--uncertain", "keep" if arm == "d-keep" else "mask"]
        start = time.perf_counter()
        app(command, standalone_mode=False)
    elapsed = time.perf_counter() - start
    peak = _rss_mb("VmHWM")
    threads = torch.get_num_threads()
    return {
        "images_per_s": len(images) / elapsed,
        "seconds": elapsed,
        "peak_rss_mb": peak,
        "baseline_mb": baseline,
        "torch_threads": threads,
    }


def candidate_floor() -> float:
    """The score down to which `yolossl label` (defaults) keeps boxes through NMS, for the record."""
    from yolossl.config import CycleConfig
    from yolossl.label import LabelSettings

    return LabelSettings(conf=CycleConfig().conf).min_conf


def _reset_peak_rss() -> None:
    """Linux: make VmHWM (peak RSS) start again from the current RSS."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def ceiling(args: argparse.Namespace, images: list[Path], conf: float) -> float:
    """Decode and letterbox everything first (untimed), then time only model + NMS; returns the start time."""
    import numpy as np
    import torch
    from ultralytics.nn.autobackend import AutoBackend
    from ultralytics.utils import nms

    from yolossl.images import letterbox, read_image

    model = AutoBackend(model=str(args.weights), device=torch.device("cpu"), fuse=True, verbose=False)
    model.eval()
    boxed = np.stack([letterbox(read_image(p), args.imgsz) for p in images])
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(boxed), args.batch):
            x = torch.from_numpy(boxed[i : i + args.batch]).permute(0, 3, 1, 2).flip(1).contiguous().float() / 255
            nms.non_max_suppression(model(x), conf, 0.7, max_det=300)
    return start


def ensure_weights(imgsz: int) -> Path:
    """A nano model trained on the demo at `imgsz`, so that NMS sees realistic boxes."""
    weights = ROOT / f"weights-{imgsz}.pt"
    if weights.is_file():
        return weights
    from yolossl.demo import ensure_demo_dataset
    from yolossl.train import TrainSettings, train_detector

    data = ensure_demo_dataset()
    settings = TrainSettings(epochs=30, imgsz=imgsz, batch=16, device="cpu", workers=0, extra={"nbs": 16, "val": False})
    result = train_detector("yolo11n.yaml", data.resolve(), (ROOT / "train").resolve(), settings)
    ROOT.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(result.weights, weights)
    return weights


def ensure_images(count: int, size: int) -> Path:
    """`count` demo scenes scaled to `size` px, as the trained model saw them (drawn once, then reused)."""
    import cv2
    import numpy as np

    from yolossl.demo import DemoSpec, draw_scene

    folder = ROOT / f"images-{count}-{size}"
    if folder.is_dir() and len(list(folder.glob("*.jpg"))) == count:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        image, _ = draw_scene(rng, DemoSpec().size)
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)
        cv2.imwrite(str(folder / f"{i:06d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 92])
    return folder


def ensure_big_pool(folder: Path, count: int) -> Path:
    """A pool of `count` entries made of links to the images of `folder`, repeated."""
    images = sorted(folder.glob("*.jpg"))
    big = ROOT / f"{folder.name}-x{count}"
    if big.is_dir() and len(list(big.glob("*.jpg"))) == count:
        return big
    shutil.rmtree(big, ignore_errors=True)
    big.mkdir(parents=True)
    for i in range(count):
        os.symlink(images[i % len(images)].resolve(), big / f"{i:07d}.jpg")
    return big


if __name__ == "__main__":
    main()
