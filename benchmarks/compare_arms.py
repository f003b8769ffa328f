"""One arm of two bench runs on the same splits, run against run: the paired test difference with its 90% bootstrap
interval, per split seed, the wall times, and (with --per-class) each class's test AP difference, flagging the
classes the base run's teacher left out (kept under 5% of its boxes over the whole run).

The two benches must share their splits, round 0 and seeds (`--round0-from` the same run, or one the other): a pair
is one split seed and training seed. What RESULTS.md quotes for the soft targets:

    python benchmarks/compare_arms.py runs/bench/headline runs/bench/soft --per-class
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
from pathlib import Path

from yolossl.bench.statistics import paired_difference
from yolossl.train import TrainSettings
from yolossl.train.online_settings import TEACHER_LOG

LEFT_OUT_SHARE = 0.05
"""A class whose teacher boxes became kept targets less often than this over a run took (almost) no part in it."""


def runs_of(bench: Path, arm: str) -> dict[tuple[int, int], dict]:
    rows = json.loads((bench / "bench.json").read_text())["per_seed"]
    return {(r["seed"], r["train_seed"]): r for r in rows if r["arm"] == arm}


def arm_dir(bench: Path, arm: str, seed: int, train_seed: int) -> Path:
    seed_dir = bench / f"seed_{seed}"
    return (seed_dir if train_seed == 0 else seed_dir / f"train_seed_{train_seed}") / arm


def kept_shares(run: Path, names: list[str]) -> dict[str, float]:
    """Per class, the teacher's boxes kept as targets over all the run's rounds, as a share of those it saw."""
    kept = dict.fromkeys(names, 0)
    seen = dict.fromkeys(names, 0)
    for log in sorted(run.glob(f"round_*/train/{TEACHER_LOG}")):
        for row in csv.DictReader(log.open()):
            for name in names:
                kept[name] += int(row[f"kept_{name}"])
                seen[name] += int(row[f"seen_{name}"])
    return {name: kept[name] / seen[name] if seen[name] else 0.0 for name in names}


def loss_shares(run: Path, names: list[str]) -> dict[str, tuple[float, float]]:
    """Per class, the mean hard and soft share of the unlabeled class loss over every epoch of the run (0 before
    these columns existed)."""
    rows = [row for log in sorted(run.glob(f"round_*/train/{TEACHER_LOG}")) for row in csv.DictReader(log.open())]
    n = max(1, len(rows))
    return {
        name: (
            sum(float(r.get(f"hard_{name}") or 0) for r in rows) / n,
            sum(float(r.get(f"soft_{name}") or 0) for r in rows) / n,
        )
        for name in names
    }


def per_class_test_ap(run: Path, imgsz: int, batch: int) -> dict[str, float]:
    """The run's final model on its test split, mAP50-95 per class (Ultralytics' validator)."""
    from yolossl.train import validate_per_class

    settings = TrainSettings(epochs=1, imgsz=imgsz, batch=batch, device="cpu", workers=0)
    return validate_per_class(run / "weights" / "best.pt", run / "test" / "data.yaml", settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path, help="the bench run of the reference arm")
    parser.add_argument("other", type=Path, help="the bench run of the arm compared with it")
    parser.add_argument("--arm", default="online", help="the arm's name in both runs")
    parser.add_argument("--per-class", action="store_true", help="validate every pair's models on test per class")
    args = parser.parse_args()

    base, other = runs_of(args.base, args.arm), runs_of(args.other, args.arm)
    pairs = sorted(set(base) & set(other))
    if not pairs:
        raise SystemExit(f"no (seed, training seed) run of arm {args.arm!r} in both {args.base} and {args.other}")
    diff = paired_difference({k: other[k]["map50_95"] for k in pairs}, {k: base[k]["map50_95"] for k in pairs})
    b_name, o_name = args.base.name, args.other.name
    print(f"| seed | train seed | {b_name} test mAP50-95 | {o_name} | difference | wall s (base / other) |")
    print("|---|---|---|---|---|---|")
    for key in pairs:
        b, o = base[key], other[key]
        print(
            f"| {key[0]} | {key[1]} | {b['map50_95']:.3f} | {o['map50_95']:.3f} | {o['map50_95'] - b['map50_95']:+.3f} "
            f"| {b['wall_time_s']:.0f} / {o['wall_time_s']:.0f} |"
        )
    print(
        f"\npooled over {diff.pairs} pairs: {b_name} {statistics.fmean(base[k]['map50_95'] for k in pairs):.3f}, "
        f"{o_name} {statistics.fmean(other[k]['map50_95'] for k in pairs):.3f}; difference {diff.text()} (90% "
        f"bootstrap); positive in {sum(d > 0 for d in diff.per_run)} of {diff.pairs}"
    )
    for seed in sorted({k[0] for k in pairs}):
        mine = [k for k in pairs if k[0] == seed]
        print(f"  seed {seed}: {statistics.fmean(other[k]['map50_95'] - base[k]['map50_95'] for k in mine):+.3f}")
    if not args.per_class:
        return

    config = json.loads((args.base / "bench_config.json").read_text())["training"]
    base_ap, other_ap, left_out = {}, {}, {}
    for key in pairs:
        b_run, o_run = arm_dir(args.base, args.arm, *key), arm_dir(args.other, args.arm, *key)
        base_ap[key] = per_class_test_ap(b_run, config["imgsz"], config["batch"])
        other_ap[key] = per_class_test_ap(o_run, config["imgsz"], config["batch"])
        names = list(base_ap[key])
        left_out[key] = {n for n, share in kept_shares(b_run, names).items() if share < LEFT_OUT_SHARE}
        soft = loss_shares(o_run, names)
        print(f"  {key}: base left out {sorted(left_out[key])}; other's soft share per class "
              + ", ".join(f"{n} {soft[n][1]:.0%}" for n in names))  # fmt: skip
    names = list(next(iter(base_ap.values())))
    print(f"\n| class | left out by {args.base.name} in | {args.base.name} test AP | {args.other.name} | difference |")
    print("|---|---|---|---|---|")
    for name in names:
        d = paired_difference({k: other_ap[k][name] for k in pairs}, {k: base_ap[k][name] for k in pairs})
        runs = sum(name in left_out[k] for k in pairs)
        mean_b = statistics.fmean(base_ap[k][name] for k in pairs)
        mean_o = statistics.fmean(other_ap[k][name] for k in pairs)
        print(f"| {name} | {runs} of {len(pairs)} runs | {mean_b:.3f} | {mean_o:.3f} | {d.text()} |")
    flagged = [(k, n) for k in pairs for n in left_out[k]]
    if flagged:
        gains = [other_ap[k][n] - base_ap[k][n] for k, n in flagged]
        print(
            f"\nthe classes left out, run by run ({len(flagged)} class-runs): {statistics.fmean(gains):+.3f} test AP "
            f"(positive in {sum(g > 0 for g in gains)})"
        )


if __name__ == "__main__":
    main()
