"""Where does `yolossl label` spend CPU that the bare forward pass does not? CPU-seconds per arm.

One process, one loaded model, the same images: short runs of each arm alternate (order reversed
every other round) so that the shared machine's drifting speed lands on every arm alike. Per arm:
median images/s, its median ratio to (c) over the rounds, and user + system CPU-seconds and wall
seconds per 1000 images.

  (c)        forward + NMS at conf 0.25 over images already decoded and letterboxed in memory
  (c-floor)  the same with NMS at the candidate floor yolossl label records down to
  (d)        the labeling step of `yolossl label` (decode, model, NMS, write) on the same images

    python benchmarks/label_cpu_split.py                          # 320 images, 8 rounds
    OMP_WAIT_POLICY=PASSIVE python benchmarks/label_cpu_split.py  # torch's workers sleep when idle
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=320)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--imgsz", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--weights", type=Path, help="default: label_speed.py's nano model")
    args = parser.parse_args()

    from label_speed import ROOT, candidate_floor, ensure_images, ensure_weights

    from yolossl.runtime import set_up_process

    set_up_process()
    import numpy as np
    import torch
    from ultralytics.utils import nms

    from yolossl.data import ImageItem
    from yolossl.images import letterbox, read_image
    from yolossl.label import LabelSettings, make_detector
    from yolossl.label.filters import ClassThresholds
    from yolossl.label.pseudo import pseudo_label

    weights = args.weights or ensure_weights(args.imgsz)
    folder = ensure_images(2000, args.imgsz)  # label_speed.py's images: drawn once, shared
    items = [ImageItem(p.stem, p, None) for p in sorted(folder.glob("*.jpg"))[: args.images]]
    settings = LabelSettings(imgsz=args.imgsz, batch=args.batch, device="cpu")
    detector = make_detector([weights], settings.predict)
    thresholds = ClassThresholds.global_conf(len(detector.names), settings.conf, settings.uncertain_low)
    boxed = np.stack([letterbox(read_image(item.path), args.imgsz) for item in items])
    out = ROOT / "cpu-split-out"

    def ceiling(conf: float) -> None:
        with torch.inference_mode():
            for i in range(0, len(boxed), args.batch):
                x = torch.from_numpy(boxed[i : i + args.batch]).permute(0, 3, 1, 2).flip(1).contiguous().float() / 255
                nms.non_max_suppression(detector.models[0](x), conf, 0.7, max_det=300)

    def label() -> None:
        shutil.rmtree(out, ignore_errors=True)
        pseudo_label(detector, items, out, settings, thresholds, detector.names)

    arms = {"c": lambda: ceiling(0.25), "c-floor": lambda: ceiling(candidate_floor()), "d": label}
    runs: dict[str, list[tuple[float, float, float]]] = {arm: [] for arm in arms}  # (wall, user, sys)
    for run in arms.values():  # warm-up: first-call costs are not what is compared
        run()
    for r in range(args.rounds):
        for arm in list(arms) if r % 2 == 0 else list(arms)[::-1]:
            before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            arms[arm]()
            wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
            runs[arm].append((wall, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime))

    per_k = 1000 / len(items)
    print(f"\n{len(items)} images, {args.rounds} rounds, torch threads {torch.get_num_threads()}\n")
    print("| arm | images/s (median) | ratio to (c): median [range] | per 1000 images: user CPU-s | sys | wall s |")
    print("|---|---|---|---|---|---|")
    for arm, values in runs.items():
        ratios = [c[0] / v[0] for v, c in zip(values, runs["c"], strict=True)]
        wall, user, system = (statistics.median(v[k] for v in values) for k in range(3))
        ratio = f"{statistics.median(ratios):.3f} [{min(ratios):.3f}..{max(ratios):.3f}]"
        cost = f"{user * per_k:.1f} | {system * per_k:.1f} | {wall * per_k:.1f}"
        print(f"| ({arm}) | {len(items) / wall:.1f} | {ratio} | {cost} |")


if __name__ == "__main__":
    main()
