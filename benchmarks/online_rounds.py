"""Online rounds against one online run at the same steps, on the glyphs bench (issue 28).

Per seed: the glyphs bench's split (100 labeled images, 1000 in the pool, the seed's own draw), one labeled-only
round 0 (saturated with `--saturate-epochs`) shared by both arms, then the default online cycle twice from it,
as `yolossl cycle` runs it (`--rounds 3`, the offline rounds' steps): trained as three rounds of one schedule, each
ending with the pool labeled and the thresholds measured again (`online_rounds`, the default since 6 Dec), and as
one online round (`--one-online-round`, the default before). Prints, per seed and pooled, the final teacher's val
mAP50-95 (the run's last model: no checkpoint choice), the round guard's pick, the wall time, and the classes the
teacher gave no target in the whole run. The glyphs bench has no test split yet (the evidence issue), so these are
val figures: no threshold or checkpoint choice of these runs is made on the final teacher's score, but the
thresholds are measured on the same val.

    python benchmarks/online_rounds.py --seeds 3 --out runs/online_rounds
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

from yolossl import run_cycle
from yolossl.bench import BenchConfig, hold_out_test, make_split
from yolossl.config import CycleConfig
from yolossl.cycle import CycleResult
from yolossl.data import load_data_yaml
from yolossl.demo import BENCH_DATASETS
from yolossl.runtime import set_up_process

ARMS = {"rounds": {"online_rounds": True}, "one run": {"online_rounds": False}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--saturate-epochs", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/online_rounds"))
    args = parser.parse_args()
    set_up_process()
    import logging

    logging.basicConfig(level=logging.WARNING)
    bench = BENCH_DATASETS["glyphs"]
    data_yaml = bench.ensure()
    spec = load_data_yaml(data_yaml)
    training = {**bench.training, "saturate_epochs": args.saturate_epochs}
    rows = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        seed_dir = args.out / f"seed_{seed}"
        split_dir = seed_dir / "split"
        config = BenchConfig(data=str(data_yaml), label_fraction=bench.label_fraction, seeds=1, first_seed=seed)
        labeled_yaml, pool = split_dir / "labeled.yaml", split_dir / "pool"
        if not labeled_yaml.is_file():
            make_split(config, spec, seed, split_dir, hold_out_test(spec, args.out / "test_split"))
        base = CycleConfig(
            **{**training, "data": str(labeled_yaml), "unlabeled": [str(pool)], "rounds": 3, "seed": seed},
            project=str(seed_dir),
        )
        round0 = _run(replace(base, rounds=0, mode="offline", name="round0"))
        weights = str(round0.rounds[0].weights)
        for arm, options in ARMS.items():
            start = time.perf_counter()
            name = arm.replace(" ", "_")
            cycle = _run(replace(base, name=name, start_weights=weights, saturate_epochs=0, **options))
            wall = time.perf_counter() - start
            rows.append(_row(seed, arm, cycle, wall, round0.rounds[0].metrics.map50_95))
            print(json.dumps(rows[-1]), flush=True)
    (args.out / "online_rounds.json").write_text(json.dumps(rows, indent=2))
    print(_table(rows))


def _run(config: CycleConfig) -> CycleResult:
    """A cycle, or the one this script already finished under that name (a rerun picks up where it stopped)."""
    from yolossl import resume_cycle

    run_dir = Path(config.project) / config.name
    return resume_cycle(run_dir) if run_dir.exists() else run_cycle(config)


def _row(seed: int, arm: str, cycle: CycleResult, wall: float, round0: float) -> dict:
    online = [r for r in cycle.rounds if r.teacher]
    kept: dict[str, int] = {}
    for r in online:
        for name, n in r.teacher.kept.items():
            kept[name] = kept.get(name, 0) + n
    return {
        "seed": seed,
        "arm": arm,
        "round0": round(round0, 4),
        "final": round(cycle.rounds[-1].metrics.map50_95, 4),
        "guard_pick": round(cycle.best.metrics.map50_95, 4),
        "rounds": [round(r.metrics.map50_95, 4) for r in cycle.rounds],
        "wall_s": round(wall, 1),
        "classes_without_targets": sorted(n for n, k in kept.items() if k == 0),
        "targets_per_class": kept,
    }


def _table(rows: list[dict]) -> str:
    lines = ["| seed | arm | round 0 | final teacher | guard's pick | rounds | wall | classes without targets |"]
    lines.append("|---|---|---|---|---|---|---|---|")
    for r in rows:
        rounds = " / ".join(f"{v:.3f}" for v in r["rounds"])
        without = ", ".join(r["classes_without_targets"]) or "none"
        lines.append(
            f"| {r['seed']} | {r['arm']} | {r['round0']:.3f} | {r['final']:.3f} | {r['guard_pick']:.3f} | {rounds} "
            f"| {r['wall_s'] / 60:.1f} min | {without} |"
        )
    by_seed = {}
    for r in rows:
        by_seed.setdefault(r["seed"], {})[r["arm"]] = r["final"]
    diffs = [v["rounds"] - v["one run"] for v in by_seed.values() if len(v) == 2]
    if diffs:
        mean = statistics.mean(diffs)
        lines.append(
            f"\nrounds - one run, final teacher, per seed: {', '.join(f'{d:+.3f}' for d in diffs)}; mean {mean:+.3f}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
