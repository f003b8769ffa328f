"""The bench's figures: `BenchResult.summary()`, `bench.json` and the markdown table of `bench.md`."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from yolossl.bench.arms import ArmResult
from yolossl.bench.config import ARMS, BASELINES, LABELED_ONLY
from yolossl.bench.statistics import (
    CONFIDENCE,
    MIN_SPLIT_SEEDS,
    RunKey,
    better_baseline,
    gap_per_run,
    paired_difference,
    per_split_seed,
    pooled_gap,
)

MATCHED_ARMS = "one run from round 0 for all the online (or yolossl) arm's steps, validated once at its end"
GAPS = {"gap_recovered": ("saturated", "supervised"), "gap_recovered_vs_wall": ("saturated", "supervised-wall")}
"""Each gap against the better of its labeled-only arms, run by run: step-matched, and wall-matched."""


@dataclass
class BenchResult:
    run_dir: Path
    arms: list[ArmResult]
    round0_curve: dict[int, list[list[float]]]  # seed -> (epoch, val mAP50-95) at each of round 0's validations
    test_split: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, dict[str, Any]]:
        return summarize(self.arms)


def summarize(results: list[ArmResult]) -> dict[str, dict[str, Any]]:
    """Per arm: test mAP mean and std over runs, each run, paired differences against the labeled-only arms with
    their 90% bootstrap intervals, and the gap recovered against the better labeled-only arm (step and wall)."""
    by_arm: dict[str, list[ArmResult]] = {}
    for r in sorted(results, key=lambda r: (r.seed, r.train_seed)):
        by_arm.setdefault(r.arm, []).append(r)
    runs = {arm: {(r.seed, r.train_seed): r.map50_95 for r in rs} for arm, rs in by_arm.items()}
    out: dict[str, dict[str, Any]] = {}
    for arm, rs in by_arm.items():
        maps, map50s = [r.map50_95 for r in rs], [r.map50 for r in rs]
        values: dict[str, Any] = {
            "runs": len(rs),
            "map50_mean": statistics.fmean(map50s),
            "map50_std": statistics.pstdev(map50s),
            "map50_95_mean": statistics.fmean(maps),
            "map50_95_std": statistics.pstdev(maps),
            "val_map50_95_mean": _mean([r.val_map50_95 for r in rs]),
            "per_seed_map50": map50s,
            "per_seed_map50_95": maps,
            "per_run": [{"seed": r.seed, "train_seed": r.train_seed, "map50_95": r.map50_95} for r in rs],
            "best_round": [r.best_round for r in rs],
            "pseudo_precision": [r.pseudo_precision for r in rs],
            "pseudo_recall": [r.pseudo_recall for r in rs],
            "wall_time_s": sum(r.wall_time_s for r in rs),
        }
        if arm == "saturated":
            values["saturated_per_seed"] = [r.saturated for r in rs]
        differences = {
            base: d.to_dict()
            for base in LABELED_ONLY
            if base in runs and base != arm and (d := paired_difference(runs[arm], runs[base])) is not None
        }
        if differences:
            values["differences"] = differences
        if "oracle" in runs:
            values.update(_gaps(runs, arm))
        out[arm] = values
    return out


def _gaps(runs: dict[str, dict[RunKey, float]], arm: str) -> dict[str, Any]:
    gaps: dict[str, Any] = {}
    for key, bases in GAPS.items():
        present = [runs[b] for b in bases if b in runs]
        if not present:
            continue
        baseline = better_baseline(*present)
        per_run = gap_per_run(runs[arm], baseline, runs["oracle"])
        gaps[key] = pooled_gap(runs[arm], baseline, runs["oracle"])
        seeds = {
            seed: pooled_gap(
                *({k: v for k, v in d.items() if k[0] == seed} for d in (runs[arm], baseline, runs["oracle"]))
            )
            for seed in per_split_seed(runs[arm])
        }
        gaps[f"{key}_per_seed"] = list(seeds.values())
        gaps[f"{key}_per_run"] = list(per_run.values())
    return gaps


def _of_seed(runs: dict[RunKey, float], seed: int) -> dict[RunKey, float]:
    return {key: value for key, value in runs.items() if key[0] == seed}


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


def write_bench(run_dir: Path, result: BenchResult) -> None:
    summary = result.summary()
    payload = {
        "test_split": result.test_split,
        "reported_on": "test" if result.test_split else "val",
        "baselines": {arm: text for arm, text in BASELINES.items() if arm in summary},
        "gaps": {key: f"against the better of {' / '.join(bases)}, run by run" for key, bases in GAPS.items()},
        "interval": f"{CONFIDENCE:.0%} t-interval over split seeds of the paired difference (replicates averaged "
        f"within each split seed; none below {MIN_SPLIT_SEEDS} split seeds)",
        "label_bound_gap": label_bound_gap(summary),
        "matched_arms": MATCHED_ARMS,
        "arms": summary,
        "per_seed": [asdict(r) for r in result.arms],
        "round0_curve": result.round0_curve,
    }
    (run_dir / "bench.json").write_text(json.dumps(payload, indent=2))
    (run_dir / "bench.md").write_text(format_table(summary, result.test_split) + "\n" + per_seed_table(summary))
    plot_bench(summary, run_dir / PLOT_FILE)


PLOT_FILE = "bench.png"


def plot_bench(summary: dict[str, dict[str, Any]], path: Path) -> Path:
    """Left: every run's test mAP50-95 per arm (a dot per run, a bar at the mean). Right: each arm's paired
    difference against the step-matched labeled-only arm, run by run, with its 90% interval."""
    from yolossl.report import _pyplot, _save

    plt = _pyplot()
    arms = [arm for arm in ARMS if arm in summary]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for x, arm in enumerate(arms):
        runs = [run["map50_95"] for run in summary[arm]["per_run"]]
        left.scatter([x] * len(runs), runs, s=18, alpha=0.7)
        left.hlines(summary[arm]["map50_95_mean"], x - 0.3, x + 0.3, color="black")
    left.set_xticks(range(len(arms)), arms, rotation=30, ha="right")
    left.set_ylabel("test mAP50-95")
    left.set_title("every run (dot) and the mean (bar)")
    compared = [arm for arm in arms if "supervised" in summary[arm].get("differences", {})]
    for x, arm in enumerate(compared):
        difference = summary[arm]["differences"]["supervised"]
        right.scatter([x] * len(difference["per_run"]), difference["per_run"], s=18, alpha=0.7)
        if difference["low"] is not None:
            below, above = difference["mean"] - difference["low"], difference["high"] - difference["mean"]
            right.errorbar([x + 0.15], [difference["mean"]], yerr=[[below], [above]], fmt="o", color="black", capsize=4)
    right.axhline(0.0, color="grey", linewidth=1)
    right.set_xticks(range(len(compared)), compared, rotation=30, ha="right")
    right.set_ylabel("test mAP50-95 minus supervised, same run")
    right.set_title(f"paired difference, mean and {CONFIDENCE:.0%} interval")
    _save(fig, path)
    return path


def label_bound_gap(summary: dict[str, dict[str, Any]]) -> float | None:
    """Oracle minus saturated labeled-only mAP50-95: what more labels would still buy (>= 0.10: label-bound)."""
    if "oracle" not in summary or "saturated" not in summary:
        return None
    return summary["oracle"]["map50_95_mean"] - summary["saturated"]["map50_95_mean"]


def format_table(summary: dict[str, dict[str, Any]], test_split: dict[str, Any] | None = None) -> str:
    """Markdown: per arm, test mAP mean ± std over runs, the paired difference against each labeled-only arm with
    its 90% interval, the gap recovered (step- and wall-matched), pseudo-label quality and time."""
    split = "test" if test_split is None or test_split else "val"
    bases = [b for b in LABELED_ONLY if b in summary]
    unsaturated = not_saturated(summary)
    flag = f" (NOT saturated on seed {', '.join(map(str, unsaturated))})" if unsaturated else ""
    lines = [
        f"| arm | runs | {split} mAP50 | {split} mAP50-95 | "
        + "".join(f"Δ vs {b}{flag if b == 'saturated' else ''} [{CONFIDENCE:.0%} CI] | " for b in bases)
        + "gap recovered (step / wall) | pseudo precision / recall per round (means) | time |",
        "|---|---|---|---|" + "---|" * len(bases) + "---|---|---|",
    ]
    for arm in ARMS:
        if arm not in summary:
            continue
        v = summary[arm]
        differences = v.get("differences", {})
        deltas = "".join(f"{_difference_text(differences.get(b))} | " for b in bases)
        gaps = " / ".join(_percent(v.get(key)) for key in GAPS)
        quality = _quality_text(v["pseudo_precision"], v["pseudo_recall"])
        lines.append(
            f"| {arm} | {v.get('runs', len(v['per_seed_map50_95']))} | {v['map50_mean']:.3f} ± {v['map50_std']:.3f} | "
            f"{v['map50_95_mean']:.3f} ± {v['map50_95_std']:.3f} | {deltas}{gaps} | {quality} | "
            f"{v['wall_time_s'] / 60:.0f} min |"
        )
    table = "\n".join(lines) + "\n"
    if unsaturated:
        table += (
            f"\nRound 0 did not saturate on split seed(s) {', '.join(map(str, unsaturated))}: every figure set "
            "against it (Δ vs saturated, the gap recovered) is against a model that more training on the labels may "
            "still beat.\n"
        )
    if test_split:
        table += (
            f"\n{split.capitalize()} split: {test_split['images']} images ({test_split['source']}); val "
            f"({test_split['val_images']} images) chose every threshold, round and checkpoint.\n"
        )
    return table


def not_saturated(summary: dict[str, dict[str, Any]]) -> list[int]:
    """The split seeds whose round 0 was not certified saturated (reached its cap still rising, or never tried)."""
    saturated = summary.get("saturated")
    if not saturated:
        return []
    runs = zip(saturated["per_run"], saturated.get("saturated_per_seed", []), strict=False)
    return [run["seed"] for run, ok in runs if ok is not True]


def per_seed_table(summary: dict[str, dict[str, Any]]) -> str:
    """Markdown: per split seed, each arm's mAP50-95 (the mean of its replicates) and the online arm's gap recovered
    against the better labeled-only arm, step- and wall-matched."""
    arms = [arm for arm in ARMS if arm in summary]
    seeds = sorted({run["seed"] for arm in arms for run in summary[arm]["per_run"]})
    gap_arm = "online" if "online" in summary else None
    head = "| split seed | " + " | ".join(arms) + (" | online: gap recovered (step / wall) |" if gap_arm else " |")
    lines = [head, "|---|" + "---|" * (len(arms) + bool(gap_arm))]
    for i, seed in enumerate(seeds):
        cells = []
        for arm in arms:
            values = [run["map50_95"] for run in summary[arm]["per_run"] if run["seed"] == seed]
            cells.append(", ".join(f"{v:.3f}" for v in values))
        if gap_arm:
            online = summary[gap_arm]
            gaps = [online.get(f"{key}_per_seed", []) for key in GAPS]
            cells.append(" / ".join(_percent(g[i]) if i < len(g) else "-" for g in gaps))
        lines.append(f"| {seed} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _difference_text(difference: dict[str, Any] | None) -> str:
    if difference is None:
        return "-"
    interval = "" if difference["low"] is None else f" [{difference['low']:+.3f}, {difference['high']:+.3f}]"
    return f"{difference['mean']:+.3f}{interval}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _quality_text(precision: list[list[float]], recall: list[list[float]]) -> str:
    if not any(precision):
        return "-"
    # A run whose cycle stopped early (round guard, patience) has fewer rounds: average those that ran.
    rounds = max(len(run) for run in precision)
    p = [statistics.fmean(run[k] for run in precision if k < len(run)) for k in range(rounds)]
    r = [statistics.fmean(run[k] for run in recall if k < len(run)) for k in range(rounds)]
    return ", ".join(f"{a:.2f}/{b:.2f}" for a, b in zip(p, r, strict=True))
