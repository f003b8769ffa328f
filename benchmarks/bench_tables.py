"""The tables of a `yolossl bench` run, from its bench.json: the arms pooled (test mAP, paired differences with
90% t-intervals over split seeds, gap recovered) and per split seed, and its plot (bench.png). What the README and
RESULTS.md quote.

    python benchmarks/bench_tables.py runs/bench/headline
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from yolossl.bench import ArmResult, BenchResult, format_table
from yolossl.bench.report import PLOT_FILE, label_bound_gap, per_seed_table, plot_bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a bench run folder (holds bench.json)")
    args = parser.parse_args()
    payload = json.loads((args.run / "bench.json").read_text())
    result = BenchResult(args.run, [ArmResult(**row) for row in payload["per_seed"]], {}, payload.get("test_split", {}))
    summary = result.summary()
    print(format_table(summary, result.test_split))
    print(per_seed_table(summary))
    gap = label_bound_gap(summary)
    if gap is not None:
        print(f"oracle - saturated (label-bound gap): {gap:+.3f}")
    print(f"plot: {plot_bench(summary, args.run / PLOT_FILE)}")
    saturated = summary.get("saturated", {}).get("saturated_per_seed")
    if saturated:
        print(f"round 0 saturated per seed: {saturated}")


if __name__ == "__main__":
    main()
