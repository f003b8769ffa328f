"""The cycle's default labeler: pseudo-label the pool with the best weights so far, into `round_k/pseudo/`.

A labeler is any callable `(index, weights, round_dir, advance) -> LabelStats` that leaves a
`pseudo/` folder as `yolossl.label` writes it; the loop is given one (tests and other round
strategies give their own).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from yolossl.cycle.inputs import CycleInputs
from yolossl.label import LabelStats, choose_thresholds, label_pool, make_detector

logger = logging.getLogger(__name__)


class Labeler(Protocol):
    def __call__(self, index: int, weights: Path, round_dir: Path, advance: Callable[[int], None]) -> LabelStats: ...


class PoolLabeler:
    """Thresholds chosen on val (after the FixMatch head's review, when on), then the whole pool labeled."""

    def __init__(self, inputs: CycleInputs, device: str) -> None:
        self.inputs = inputs
        self.settings = inputs.config.label_settings(device)

    def __call__(self, index: int, weights: Path, round_dir: Path, advance: Callable[[int], None]) -> LabelStats:
        inputs, settings = self.inputs, self.settings
        detector = make_detector([weights], settings.predict, export_dir=round_dir / "export")
        reviewer = self._fit_head(detector, round_dir) if inputs.config.fixmatch else None
        thresholds = choose_thresholds(detector, inputs.val, settings, len(inputs.names), reviewer)
        if thresholds.unreachable:
            missing = ", ".join(inputs.names[i] for i in thresholds.unreachable)
            logger.warning("Round %d: no pseudo-labels for %s (%s is out of reach)", index, missing, thresholds.rule)
        advance(0)
        return label_pool(
            detector,
            inputs.pool.images,
            round_dir / "pseudo",
            settings,
            thresholds,
            inputs.names,
            advance,
            reviewer,
        )

    def _fit_head(self, detector, round_dir: Path):
        from yolossl.fixmatch.round import fit_round_head

        inputs, settings = self.inputs, self.settings
        return fit_round_head(
            detector,
            inputs.labeled,
            inputs.pool.images,
            inputs.names,
            inputs.config,
            settings.uncertain_low,
            settings.batch,
            settings.device,
            round_dir / "fixmatch_head.pt",
        )
