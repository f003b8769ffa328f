"""What the runs say together: paired differences with intervals over split seeds, and the gap recovered.

Arms are compared run by run: a split seed and training seed give every arm the same labels, pool, round 0
and seed, so the difference within a pair is free of the split's luck. But the replicates of one split seed
share its labels, pool and round 0: they are not independent samples of what a user's split would do. So each
split seed's pairs are averaged first, and the interval is a t-interval of the mean over split seeds (90%: the
band a reader can hold a claim to), given only from three split seeds on.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass

from scipy.stats import t as student_t

CONFIDENCE = 0.9
MIN_SPLIT_SEEDS = 3
"""Below this many split seeds, no interval: two points say nothing of the spread between splits."""

RunKey = tuple[int, int]
"""(split seed, training seed)."""


@dataclass(frozen=True)
class Difference:
    """An arm minus a baseline: each split seed's mean over its pairs, their mean, and its t-interval over split
    seeds (None below `MIN_SPLIT_SEEDS`)."""

    mean: float
    low: float | None
    high: float | None
    pairs: int
    per_run: list[float]
    per_seed: dict[int, float]

    def to_dict(self) -> dict[str, object]:
        return {
            "mean": self.mean,
            "low": self.low,
            "high": self.high,
            "pairs": self.pairs,
            "split_seeds": len(self.per_seed),
            "per_run": self.per_run,
            "per_seed": self.per_seed,
        }

    def text(self) -> str:
        interval = "" if self.low is None else f" [{self.low:+.3f}, {self.high:+.3f}]"
        return f"{self.mean:+.3f}{interval}"


def seed_interval(values: Iterable[float]) -> tuple[float, float] | None:
    """The 90% t-interval of the mean of per-split-seed values; None below `MIN_SPLIT_SEEDS` of them."""
    sample = [float(v) for v in values]
    if len(sample) < MIN_SPLIT_SEEDS:
        return None
    mean = statistics.fmean(sample)
    half = student_t.ppf(0.5 + CONFIDENCE / 2, len(sample) - 1) * statistics.stdev(sample) / math.sqrt(len(sample))
    return mean - half, mean + half


def paired_difference(arm: dict[RunKey, float], baseline: dict[RunKey, float]) -> Difference | None:
    """`arm - baseline` over the runs both have, averaged within each split seed; a baseline trained once per
    split seed (training seed 0: the saturated round 0 every replicate starts from) pairs with each replicate,
    and still counts once per split seed."""
    diffs: dict[RunKey, float] = {}
    for key in sorted(arm):
        base = baseline.get(key, baseline.get((key[0], 0)) if _once_per_seed(baseline) else None)
        if base is not None:
            diffs[key] = arm[key] - base
    if not diffs:
        return None
    per_seed = per_split_seed(diffs)
    interval = seed_interval(per_seed.values())
    low, high = interval if interval else (None, None)
    return Difference(statistics.fmean(per_seed.values()), low, high, len(diffs), list(diffs.values()), per_seed)


def _once_per_seed(runs: dict[RunKey, float]) -> bool:
    return all(train_seed == 0 for _, train_seed in runs)


def better_baseline(*baselines: dict[RunKey, float]) -> dict[RunKey, float]:
    """Per run, the better of the labeled-only baselines given (a once-per-seed baseline counts for each replicate)."""
    keys = {key for b in baselines if not _once_per_seed(b) for key in b} or {k for b in baselines for k in b}
    best: dict[RunKey, float] = {}
    for key in keys:
        values = [b.get(key, b.get((key[0], 0)) if _once_per_seed(b) else None) for b in baselines]
        present = [v for v in values if v is not None]
        if present:
            best[key] = max(present)
    return best


def gap_recovered(arm: float, baseline: float, oracle: float) -> float | None:
    """The share of the baseline-to-oracle gap an arm recovers; None when the labels alone reach the oracle."""
    return (arm - baseline) / (oracle - baseline) if oracle > baseline else None


def gap_per_run(
    arm: dict[RunKey, float], baseline: dict[RunKey, float], oracle: dict[RunKey, float]
) -> dict[RunKey, float | None]:
    return {k: gap_recovered(arm[k], baseline[k], oracle[k]) for k in sorted(arm) if k in baseline and k in oracle}


def pooled_gap(arm: dict[RunKey, float], baseline: dict[RunKey, float], oracle: dict[RunKey, float]) -> float | None:
    """The gap recovered of the means over the runs all three have."""
    keys = [k for k in arm if k in baseline and k in oracle]
    if not keys:
        return None
    return gap_recovered(*(statistics.fmean(d[k] for k in keys) for d in (arm, baseline, oracle)))


def per_split_seed(runs: dict[RunKey, float]) -> dict[int, float]:
    """Each split seed's mean over its replicates."""
    seeds: dict[int, list[float]] = {}
    for (seed, _), value in runs.items():
        seeds.setdefault(seed, []).append(value)
    return {seed: statistics.fmean(values) for seed, values in sorted(seeds.items())}
