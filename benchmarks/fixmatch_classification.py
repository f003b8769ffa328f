"""Does FixMatch beat labeled-only training at classifying object crops? One command, no download.

Crops of the benchmark's seven shape classes (with look-alikes: circle/hexagon, cross/star) are
drawn by the demo generator: a few labeled per class, many unlabeled, a val set. Both arms train
the same network for the same steps with the same labeled batches and weak augmentation; FixMatch
adds the unlabeled crops. Several seeds; prints mean ± std of val accuracy and wall times.

    python benchmarks/fixmatch_classification.py                  # 10 labeled crops per class, 3 seeds
    python benchmarks/fixmatch_classification.py --labeled 4 --steps 300 --seeds 1   # a quick look
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import numpy as np

from yolossl.demo import BENCH_CLASS_NAMES, draw_scene
from yolossl.fixmatch import FixMatchConfig, extract_crops, train_fixmatch
from yolossl.fixmatch.train import accuracy


def shape_crops(count_per_class: int, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Crops of true boxes from freshly drawn scenes, `count_per_class` of each class."""
    crops, labels = [], []
    need = dict.fromkeys(range(len(BENCH_CLASS_NAMES)), count_per_class)
    while any(need.values()):
        image, rows = draw_scene(rng, 128, BENCH_CLASS_NAMES)
        for cls, xc, yc, w, h in rows:
            if need[cls]:
                box = np.array([[(xc - w / 2) * 128, (yc - h / 2) * 128, (xc + w / 2) * 128, (yc + h / 2) * 128]])
                crops.append(extract_crops(image, box, size)[0])
                labels.append(cls)
                need[cls] -= 1
    return np.stack(crops), np.array(labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labeled", type=int, default=10, help="labeled crops per class")
    parser.add_argument("--unlabeled", type=int, default=400, help="unlabeled crops per class (labels discarded)")
    parser.add_argument("--val", type=int, default=100, help="val crops per class")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--tau", type=float, default=FixMatchConfig.tau, help="pseudo-label confidence threshold")
    parser.add_argument("--mu", type=int, default=FixMatchConfig.mu, help="unlabeled crops per labeled crop in a batch")
    parser.add_argument("--lambda-u", type=float, default=FixMatchConfig.lambda_u, help="weight of the unlabeled loss")
    args = parser.parse_args()

    rows = []
    for seed in range(args.seeds):
        rng = np.random.default_rng(100 + seed)
        labeled, labels = shape_crops(args.labeled, rng, args.size)
        pool, _ = shape_crops(args.unlabeled, rng, args.size)
        val, val_labels = shape_crops(args.val, rng, args.size)
        config = FixMatchConfig(
            steps=args.steps,
            seed=seed,
            tau=args.tau,
            mu=args.mu,
            lambda_u=args.lambda_u,
            log_every=max(1, args.steps // 5),
        )
        start = time.perf_counter()
        only = train_fixmatch(labeled, labels, None, len(BENCH_CLASS_NAMES), replace(config, lambda_u=0.0))
        middle = time.perf_counter()
        semi = train_fixmatch(labeled, labels, pool, len(BENCH_CLASS_NAMES), config)
        end = time.perf_counter()
        rows.append(
            (
                accuracy(only.model, val, val_labels),
                accuracy(semi.model, val, val_labels),
                middle - start,
                end - middle,
                semi.history[-1].mask_ratio,
            )
        )
        print(
            f"seed {seed}: labeled-only {rows[-1][0]:.3f}, FixMatch {rows[-1][1]:.3f} "
            f"(mask ratio at the end {rows[-1][4]:.2f})",
            flush=True,
        )

    def stat(k: int) -> str:
        values = [r[k] for r in rows]
        return f"{statistics.fmean(values):.3f} ± {statistics.pstdev(values):.3f}"

    print(
        f"\n{len(BENCH_CLASS_NAMES)} classes, {args.labeled} labeled + {args.unlabeled} unlabeled crops per class, "
        f"{args.steps} steps, tau {args.tau}, mu {args.mu}, lambda_u {args.lambda_u}, {args.seeds} seeds\n"
    )
    print("| arm | val accuracy | wall time per seed |\n|---|---|---|")
    print(f"| labeled only | {stat(0)} | {statistics.fmean(r[2] for r in rows):.0f} s |")
    print(f"| FixMatch | {stat(1)} | {statistics.fmean(r[3] for r in rows):.0f} s |")


if __name__ == "__main__":
    main()
