"""Training the labels alone until more of it no longer helps: the rule, and the watch that applies it to a run.

An SSL gain means something only against the best model the labels can give. A schedule that ends is not that
(a new one from its weights still gains), nor are learning-rate cycles that restart warm-up and decay. So the
labels train on in one continued run, in the regime the rounds then continue in, validated every `every`
epochs, and stop when the best val score has not risen by `min_gain` within the last `window` epochs: `window`
as long as the labels-alone comparison the run will make, `min_gain` above what a training seed moves a run.
Every validation is kept (`curve`), so a reader sees the plateau rather than takes it on trust.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from yolossl._fs import write_text_atomic

SATURATION_FILE = "saturation.json"
"""Round 0's saturation run: the rule, every validation, whether it saturated (in the round's folder)."""
MAP_KEY = "metrics/mAP50-95(B)"
"""Ultralytics' name for val mAP50-95 in `trainer.metrics`."""


@dataclass(frozen=True)
class SaturationRule:
    """Saturated when the best score of the last `window` epochs is less than `min_gain` above the best before."""

    every: int
    window: int
    min_gain: float

    def saturated(self, curve: list[tuple[int, float]]) -> bool:
        """`curve`: (epoch, val score) in order, epoch 0 being the start. Undecided (False) until a full window
        lies behind a validation."""
        if not curve:
            return False
        last = curve[-1][0]
        before = [score for epoch, score in curve if epoch <= last - self.window]
        if not before:
            return False
        return max(score for _, score in curve) < max(before) + self.min_gain


class SaturationWatch:
    """Applies a `SaturationRule` to one training: validates every `rule.every` epochs, records each score in
    `record`, and stops the run once saturated. Ultralytics' trainer uses `callbacks()`; any other trainer asks
    `validates(epoch)` and reports to `observe`."""

    def __init__(self, rule: SaturationRule, start_score: float, record: Path, max_epochs: int) -> None:
        self.rule = rule
        self.record = record
        self.max_epochs = max_epochs
        self.curve: list[tuple[int, float]] = [(0, start_score)]
        self.saturated = False
        self._write(done=False)

    def validates(self, epoch: int) -> bool:
        """Whether epoch `epoch` (1-based) is validated: every `rule.every`-th, and the last."""
        return epoch % self.rule.every == 0 or epoch >= self.max_epochs

    def observe(self, epoch: int, score: float) -> bool:
        """Record a validated epoch; True when the run should stop (saturated)."""
        self.curve.append((epoch, float(score)))
        self.saturated = self.rule.saturated(self.curve)
        self._write(done=self.saturated or epoch >= self.max_epochs)
        return self.saturated

    def best(self) -> tuple[int, float]:
        """The best validated (epoch, score): epoch 0 when nothing beat the start."""
        return max(self.curve, key=lambda point: (point[1], -point[0]))

    def callbacks(self) -> dict[str, Callable[[Any], None]]:
        """Ultralytics trainer callbacks. An epoch left unvalidated has no fitness, so it never replaces best.pt;
        the final validation of best.pt (which fires `on_fit_epoch_end` once more) is not an epoch."""
        pending: list[int] = []

        def on_train_epoch_end(trainer: Any) -> None:
            epoch = trainer.epoch + 1
            validated = self.validates(epoch)
            trainer.args.val = validated
            if validated:
                pending[:] = [epoch]
            else:
                trainer.fitness = None

        def on_fit_epoch_end(trainer: Any) -> None:
            epoch = pending.pop() if pending else None
            if (
                epoch is not None
                and MAP_KEY in (trainer.metrics or {})
                and self.observe(epoch, trainer.metrics[MAP_KEY])
            ):
                trainer.stop = True

        return {"on_train_epoch_end": on_train_epoch_end, "on_fit_epoch_end": on_fit_epoch_end}

    def _write(self, done: bool) -> None:
        best_epoch, best = self.best()
        values = {
            "rule": asdict(self.rule),
            "max_epochs": self.max_epochs,
            "curve": [list(point) for point in self.curve],
            "best_epoch": best_epoch,
            "best": best,
            "saturated": self.saturated if done else None,
            "done": done,
        }
        write_text_atomic(self.record, json.dumps(values, indent=2))


def read_saturation(record: Path) -> dict[str, Any] | None:
    """A run's saturation record (None: the run did not saturate its round 0)."""
    return json.loads(record.read_text()) if record.is_file() else None
