"""What the runs say together: paired differences with bootstrap intervals, and the gap recovered.

Arms are compared run by run: a split seed and training seed give every arm the same labels, pool, round 0
and seed, so the difference within a pair is free of the split's luck. The interval is scipy's percentile
bootstrap of the mean difference over all pairs (90%: the band a reader can hold a claim to).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy.stats import bootstrap

CONFIDENCE = 0.9
RESAMPLES = 10_000

RunKey = tuple[int, int]
"""(split seed, training seed)."""


@dataclass(frozen=True)
class Difference:
    """An arm minus a baseline, pair by pair: the mean and its bootstrap interval (None below two pairs)."""

    mean: float
    low: float | None
    high: float | None
    pairs: int
    per_run: list[float]

    def to_dict(self) -> dict[str, object]:
        return {"mean": self.mean, "low": self.low, "high": self.high, "pairs": self.pairs, "per_run": self.per_run}

    def text(self) -> str:
        interval = "" if self.low is None else f" [{self.low:+.3f}, {self.high:+.3f}]"
        return f"{self.mean:+.3f}{interval}"


def bootstrap_interval(values: Iterable[float], seed: int = 0) -> tuple[float, float] | None:
    """The 90% percentile-bootstrap interval of the mean; None for fewer than two values (no spread to resample)."""
    sample = np.asarray(list(values), dtype=float)
    if len(sample) < 2:
        return None
    if np.ptp(sample) == 0:  # every pair the same: the interval is that value (scipy warns on a degenerate sample)
        return float(sample[0]), float(sample[0])
    result = bootstrap(
        (sample,),
        np.mean,
        confidence_level=CONFIDENCE,
        n_resamples=RESAMPLES,
        method="percentile",
        random_state=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def paired_difference(arm: dict[RunKey, float], baseline: dict[RunKey, float]) -> Difference | None:
    """`arm - baseline` over the runs both have; a baseline trained once per split seed (training seed 0: the
    converged round 0 every replicate starts from) pairs with each of that seed's replicates."""
    diffs = []
    for key in sorted(arm):
        base = baseline.get(key, baseline.get((key[0], 0)) if _once_per_seed(baseline) else None)
        if base is not None:
            diffs.append(arm[key] - base)
    if not diffs:
        return None
    interval = bootstrap_interval(diffs)
    low, high = interval if interval else (None, None)
    return Difference(statistics.fmean(diffs), low, high, len(diffs), diffs)


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
