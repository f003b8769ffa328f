"""How a round after round 0 trains: a schedule that continues a trained model instead of restarting it.

Ultralytics' defaults are made for a model trained once from the start: a warm-up of 3 epochs and a
learning rate that decays to 1% of its start. A short round that fine-tunes a trained model spends
most of its steps in that warm-up (on 1100 images and 5 epochs, 3 of the 5), and its decay ends the
round at a learning rate the next round then ramps up from again. `continue` trains every round at
one constant, lower rate with no warm-up; `fresh` keeps Ultralytics' own schedule, for comparison
(benchmarks/RESULTS.md).
"""

from __future__ import annotations

from typing import Any

ROUND_SCHEDULES = ("continue", "fresh")


def small_run_lr(nc: int) -> float:
    """The AdamW learning rate Ultralytics' `optimizer=auto` picks for runs of under 10 000 steps."""
    return round(0.002 * 5 / (4 + nc), 6)


def round_train_args(schedule: str, nc: int, lr_scale: float, given: dict[str, Any]) -> dict[str, Any]:
    """Ultralytics training arguments for a round after round 0; the user's own `given` ones win."""
    if schedule == "fresh":
        return dict(given)
    continued = {
        "optimizer": "AdamW",
        "lr0": small_run_lr(nc) * lr_scale,
        "lrf": 1.0,
        "warmup_epochs": 0.0,
    }
    return {**continued, **given}
