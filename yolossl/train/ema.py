"""The weight average that is validated and saved, fitted to the run's length: `FittedEmaTrainer`.

Ultralytics validates and saves `ModelEMA`, whose decay ramps as `0.9999 * (1 - exp(-updates / 2000))`,
one update per optimizer step. That ramp is made for runs of many thousands of steps: a run of a few
hundred (100 labeled images, or a short pseudo-label round) ends with a decay still far from its target
and saves what is nearly the last student. `ema_schedule` instead keeps the averaging horizon
`1 / (1 - decay)` at a tenth of the run's steps (at most `max_decay`), reached by the mean teacher's ramp
`min(1 - 1 / (updates + 1), target)`: the plain average of every student so far until then. On the glyphs
bench, one run of this trainer on the labels alone reached 0.669 mAP50-95 (3 seeds) where Ultralytics'
trainer, round by round at the same steps, stayed at 0.601, and the oracle went from 0.710 to 0.752
(benchmarks/RESULTS.md); runs of 100 000 steps and more get Ultralytics' own target of 0.9999.

    >>> schedule = ema_schedule(total_updates=1000)  # target 0.99, reached after 100 updates
    >>> YOLO("yolo11n.yaml").train(data="data.yaml", trainer=FittedEmaTrainer, epochs=50)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ultralytics.models.yolo.detect import DetectionTrainer


@dataclass(frozen=True)
class EmaSchedule:
    """The decay after `updates` EMA updates; set as `trainer.ema.decay`."""

    target: float

    def __call__(self, updates: int) -> float:
        return min(1.0 - 1.0 / (updates + 1), self.target)

    @property
    def ramp_updates(self) -> int:
        """Updates until the decay reaches its target."""
        return round(1.0 / (1.0 - self.target)) - 1


def ema_schedule(total_updates: int, max_decay: float = 0.9999, horizon: float = 0.1) -> EmaSchedule:
    """A schedule whose averaging horizon is at most `horizon` of the run's `total_updates` (and `max_decay`)."""
    span = max(1.0, horizon * total_updates)
    return EmaSchedule(min(max_decay, 1.0 - 1.0 / span))


class FittedEmaTrainer(DetectionTrainer):
    """Ultralytics' detection trainer whose EMA (the model validated and saved) follows `ema_schedule`."""

    ema_schedule: EmaSchedule

    def ema_max_decay(self) -> float:
        return 0.9999

    def _setup_train(self) -> None:
        super()._setup_train()
        self.fit_ema_schedule()

    def fit_ema_schedule(self) -> None:
        """The schedule for this run's optimizer steps (again when an OOM retry halves the batch: more steps)."""
        # Ultralytics steps every `accumulate` batches, counted across epochs (warm-up adds a few more).
        steps = math.ceil(self.epochs * len(self.train_loader) / self.accumulate)
        self.ema_schedule = ema_schedule(steps, self.ema_max_decay())

    def optimizer_step(self) -> None:
        # Set before every update, not once: Ultralytics builds a new ModelEMA on resume and after a NaN recovery.
        self.ema.decay = self.ema_schedule
        super().optimizer_step()
