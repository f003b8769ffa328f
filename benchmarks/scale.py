"""How does labeling scale with the pool, locally and on Ray? And how long does a round's merge take?

One command. Pools of 2k, 20k and 100k small images (links to 2000 distinct drawn scenes, so that
building them takes seconds), labeled by the local engine and by the Ray engine (local Ray, all
cores) with the same nano model; each run in its own process so that its peak RSS is its own
(measured from after the imports). Then the time to build a round's merged dataset for 100k
pseudo-labeled images, and its peak RSS against 10k.

    python benchmarks/scale.py                         # 2k, 20k, 100k
    python benchmarks/scale.py --sizes 2000 20000      # quicker
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

ROOT = Path("runs/bench/scale")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000, 100000])
    parser.add_argument("--imgsz", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--engines", nargs="+", default=["local", "ray"])
    parser.add_argument("--run", nargs=3, metavar=("ENGINE", "POOL", "WEIGHTS"), help=argparse.SUPPRESS)
    parser.add_argument("--merge", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    from yolossl.runtime import set_up_process

    set_up_process()
    if args.run:
        print(json.dumps(label_once(*args.run, imgsz=args.imgsz, batch=args.batch)))
        return
    if args.merge:
        print(json.dumps(merge_once(args.merge)))
        return

    weights = ensure_weights(args.imgsz)
    scenes = ensure_scenes(2000, args.imgsz)
    print("| engine | pool | images/s | peak RSS (MB) |\n|---|---|---|---|", flush=True)
    for engine in args.engines:
        for size in args.sizes:
            pool = ensure_pool(scenes, size)
            result = _child(
                ["--run", engine, str(pool), str(weights), "--imgsz", str(args.imgsz), "--batch", str(args.batch)]
            )
            print(f"| {engine} | {size} | {result['images_per_s']:.0f} | {result['peak_rss_mb']:.0f} |", flush=True)
    print("\n| merge | pseudo-labeled images | seconds | peak RSS (MB) |\n|---|---|---|---|")
    for count in (10000, 100000):
        result = _child(["--merge", str(count)])
        print(f"| build_round_dataset | {count} | {result['seconds']:.1f} | {result['peak_rss_mb']:.0f} |", flush=True)


def _child(extra: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *extra], capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"{extra}: failed\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def label_once(engine: str, pool: str, weights: str, imgsz: int, batch: int) -> dict:
    import torch  # noqa: F401  (library pages are the same for every run: outside the peak)

    from yolossl.label import LabelSettings
    from yolossl.label.pool import label_folders

    out = ROOT / f"out-{engine}-{Path(pool).name}"
    shutil.rmtree(out, ignore_errors=True)
    settings = LabelSettings(imgsz=imgsz, batch=batch, device="cpu", engine=engine, uncertain="keep", shard_size=2000)
    _reset_peak()
    start = time.perf_counter()
    stats = label_folders([Path(weights)], [Path(pool)], out, settings)
    seconds = time.perf_counter() - start
    shutil.rmtree(out, ignore_errors=True)
    return {"images_per_s": stats.images / seconds, "seconds": seconds, "peak_rss_mb": _rss("VmHWM")}


def merge_once(count: int) -> dict:
    from yolossl.data import ImageItem
    from yolossl.merge import build_round_dataset

    work = ROOT / f"merge-{count}"
    shutil.rmtree(work, ignore_errors=True)
    (work / "labels").mkdir(parents=True)
    (work / "val").mkdir()
    image = next(ensure_scenes(2000, 64).glob("*.jpg"))
    for i in range(count):
        label = work / "labels" / f"{i:07d}.txt"
        label.write_text("0 0.500000 0.500000 0.100000 0.100000\n1 0.300000 0.300000 0.100000 0.100000\n")
    # Items are handed over as a stream, as build_round_dataset takes them: the peak is the merge's
    # own, not that of a list the caller chose to hold.
    items = (ImageItem(f"{i:07d}", image, work / "labels" / f"{i:07d}.txt") for i in range(count))
    _reset_peak()
    start = time.perf_counter()
    build_round_dataset(work / "round", [], items, work / "val", {0: "a", 1: "b"})
    seconds = time.perf_counter() - start
    peak = _rss("VmHWM")
    shutil.rmtree(work)
    return {"seconds": seconds, "peak_rss_mb": peak}


def ensure_weights(imgsz: int) -> Path:
    weights = ROOT / f"weights-{imgsz}.pt"
    if weights.is_file():
        return weights
    from yolossl.demo import ensure_demo_dataset
    from yolossl.train import TrainSettings, train_detector

    settings = TrainSettings(epochs=5, imgsz=imgsz, batch=16, device="cpu", workers=0, extra={"nbs": 16, "val": False})
    result = train_detector("yolo11n.yaml", ensure_demo_dataset().resolve(), (ROOT / "train").resolve(), settings)
    ROOT.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(result.weights, weights)
    return weights


def ensure_scenes(count: int, size: int) -> Path:
    import cv2
    import numpy as np

    from yolossl.demo import draw_scene

    folder = ROOT / f"scenes-{count}-{size}"
    if folder.is_dir() and len(list(folder.glob("*.jpg"))) == count:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        image = cv2.resize(draw_scene(rng, 128)[0], (size, size), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(folder / f"{i:06d}.jpg"), image)
    return folder


def ensure_pool(scenes: Path, count: int) -> Path:
    pool = ROOT / f"pool-{count}"
    if pool.is_dir() and sum(1 for _ in os.scandir(pool)) == count:
        return pool
    shutil.rmtree(pool, ignore_errors=True)
    pool.mkdir(parents=True)
    images = sorted(scenes.glob("*.jpg"))
    for i in range(count):
        os.symlink(images[i % len(images)].resolve(), pool / f"{i:07d}.jpg")
    return pool


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _rss(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(field)


if __name__ == "__main__":
    main()
