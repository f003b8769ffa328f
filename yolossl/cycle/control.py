"""The control every run shows: round 0 trained on for the same wall time on the labels alone.

A gain over round 0 says nothing about the unlabeled images: more training on the labels also gains. What a
user weighs is the time the unlabeled images cost against spending it on the labels, so the control gets the
rounds' wall time (training and pool labeling), not their steps: an online step costs two to three supervised
ones. It trains as a user who trains longer does (`yolo train model=round0.pt time=...`: Ultralytics' own
warm-up and decay, fitted to the time by Ultralytics' `time` argument), after the rounds rather than beside
them, so that both have the machine alike.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from yolossl.train import Metrics, TrainResult, TrainSettings

CONTROL_DIR = "labels_alone"
"""The control's training folder in the run folder."""
STATE_KEY = "labels_alone"
"""Its record in `state.json`: a resumed run does not train it again."""
CONTROL_FILE = "labels_alone.json"
"""In the run folder: the control's figures and the run's verdict, for the report and for scripts."""


@dataclass(frozen=True)
class ControlResult:
    """The labels alone, trained from round 0 for the rounds' wall time: val (and test) figures, what it took."""

    metrics: Metrics
    test: Metrics | None
    weights: Path
    epochs: int
    budget_s: float
    """The rounds' wall time it was given."""
    wall_time_s: float

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "weights": str(self.weights)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ControlResult:
        return cls(
            **{
                **values,
                "metrics": Metrics(**values["metrics"]),
                "test": Metrics(**values["test"]) if values.get("test") else None,
                "weights": Path(values["weights"]),
            }
        )


def control_settings(round0: TrainSettings, budget_s: float, round0_s_per_epoch: float) -> TrainSettings:
    """Round 0's training arguments with Ultralytics' `time` budget; the epochs are its first guess (it measures
    its own speed after the first epoch and fits the schedule to the time)."""
    guess = max(1, math.ceil(budget_s / max(round0_s_per_epoch, 1e-6)))
    return replace(round0, epochs=guess, extra={**round0.extra, "time": budget_s / 3600.0})


def trained_epochs(result: TrainResult) -> int:
    """The epochs a timed training actually ran (Ultralytics' results.csv has one row per epoch)."""
    results_csv = result.save_dir / "results.csv"
    if not results_csv.is_file():
        return 0
    return max(0, len(results_csv.read_text(encoding="utf-8").strip().splitlines()) - 1)


def gain_over_control(final: Metrics, final_test: Metrics | None, control: ControlResult) -> tuple[str, float]:
    """The split the comparison is made on (test when both have it: it chose nothing) and the final model's
    mAP50-95 minus the control's."""
    if final_test is not None and control.test is not None:
        return "test", final_test.map50_95 - control.test.map50_95
    return "val", final.map50_95 - control.metrics.map50_95


def verdict(final: Metrics, final_test: Metrics | None, control: ControlResult) -> str:
    """The run's answer to the user's question, in one sentence."""
    split, gain = gain_over_control(final, final_test, control)
    budget = f"the same time ({control.budget_s:.0f} s, {control.epochs} epochs from round 0)"
    if gain > 0:
        return f"The unlabeled images added {gain:+.3f} mAP50-95 on {split} over the labels alone trained for {budget}."
    return (
        f"The unlabeled images did not beat the labels alone trained for {budget}: {gain:+.3f} mAP50-95 on {split}; "
        f"that model is {control.weights}."
    )
