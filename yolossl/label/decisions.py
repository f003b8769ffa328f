"""What happens to each candidate box, decided by a short chain of steps: kept, uncertain or dropped, and why.

Each step takes an image's `BoxDecisions` and returns them refined; `decision_chain` picks the
steps the settings ask for, in order:

1. `ReviewClasses`: a class reviewer (the FixMatch head) gives its opinion, may relabel or drop;
2. `ByThreshold`: the per-class thresholds sort boxes into kept / uncertain / dropped, with a reason;
   without an uncertain band (`uncertain: keep`) everything not kept is dropped;
3. `explain_head_drops`: a box the head dropped says so in its reason;
4. `leave_out_images_with_uncertain` (`uncertain: drop-image`): such an image keeps no box.

A new rule is a new step here (and its option in `settings`); the writer only writes what the
chain decided.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from yolossl.boxes import Detections
from yolossl.label.filters import DROPPED, KEPT, UNCERTAIN, ClassThresholds, box_status
from yolossl.label.settings import FilterSettings


@dataclass(frozen=True)
class BoxOpinion:
    """What the reviewer said about one box, for the record."""

    det_class: int
    head_class: int
    head_score: float
    decision: str


class ClassReviewer(Protocol):
    """A second opinion on the class of each candidate box (the FixMatch head implements it)."""

    def review(self, image: np.ndarray, detections: Detections) -> tuple[Detections, list[BoxOpinion]]: ...


@dataclass
class BoxDecisions:
    """One image's candidate boxes and what is decided about each; `image` is the decoded original, if kept."""

    detections: Detections
    image: np.ndarray | None = field(default=None, repr=False)
    status: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))
    reasons: list[str] = field(default_factory=list)
    opinions: list[BoxOpinion] | None = None
    image_left_out: bool = False

    @property
    def kept(self) -> np.ndarray:
        return self.status == KEPT

    @property
    def uncertain(self) -> np.ndarray:
        return self.status == UNCERTAIN


Step = Callable[[BoxDecisions], BoxDecisions]


@dataclass
class ReviewClasses:
    """The reviewer's opinion on every box's class, before any threshold applies."""

    reviewer: ClassReviewer

    def __call__(self, d: BoxDecisions) -> BoxDecisions:
        if d.image is None or not len(d.detections):
            return d
        detections, opinions = self.reviewer.review(d.image, d.detections)
        return replace(d, detections=detections, opinions=opinions)


class ByThreshold:
    """Kept at or above the class's threshold, uncertain from `uncertain_low` (when there is a band), else dropped."""

    def __init__(self, thresholds: ClassThresholds, n_classes: int, band: bool) -> None:
        self.thresholds, self.n_classes, self.band = thresholds, n_classes, band
        self._reasons: dict[tuple[str, int], str] = {}  # a handful of distinct texts, each made once

    def __call__(self, d: BoxDecisions) -> BoxDecisions:
        status = box_status(d.detections, self.thresholds, self.n_classes)
        if not self.band:
            status[status == UNCERTAIN] = DROPPED
        classes = d.detections.classes.tolist()
        reasons = [self._reason(s, c) for s, c in zip(status.tolist(), classes, strict=True)]
        return replace(d, status=status, reasons=reasons)

    def _reason(self, status: str, cls: int) -> str:
        key = (status, cls)
        if key not in self._reasons:
            self._reasons[key] = self._explain(status, cls)
        return self._reasons[key]

    def _explain(self, status: str, cls: int) -> str:
        limit = self.thresholds.kept.get(int(cls), float("inf"))
        below = f"score < {limit:.3f}" if limit != float("inf") else "class threshold unreachable on val"
        if status == KEPT:
            return f"score >= {limit:.3f}"
        if status == UNCERTAIN:
            return f"score in [{self.thresholds.uncertain_low:.3f}, {limit:.3f})" if limit != float("inf") else below
        if not self.band:  # everything not kept is simply dropped
            return below
        return f"score < {self.thresholds.uncertain_low:.3f}"


def explain_head_drops(d: BoxDecisions) -> BoxDecisions:
    """A box the reviewer dropped says so, whatever its score said."""
    if not d.opinions:
        return d
    reasons = [
        o.decision if o.decision.startswith("dropped") else r for r, o in zip(d.reasons, d.opinions, strict=True)
    ]
    return replace(d, reasons=reasons)


def leave_out_images_with_uncertain(d: BoxDecisions) -> BoxDecisions:
    """`uncertain: drop-image`: an image with an uncertain box keeps none (it is left out of training)."""
    if not d.uncertain.any():
        return d
    left_out = "image left out: it has uncertain boxes"
    reasons = [left_out if s == KEPT else r for s, r in zip(d.status, d.reasons, strict=True)]
    status = d.status.copy()
    status[d.kept] = DROPPED
    return replace(d, status=status, reasons=reasons, image_left_out=True)


def decision_chain(
    filtering: FilterSettings, thresholds: ClassThresholds, n_classes: int, reviewer: ClassReviewer | None
) -> list[Step]:
    """The steps the filter settings ask for, in the order they apply."""
    steps: list[Step] = [ReviewClasses(reviewer)] if reviewer is not None else []
    steps.append(ByThreshold(thresholds, n_classes, band=filtering.uncertain != "keep"))
    if reviewer is not None:
        steps.append(explain_head_drops)
    if filtering.uncertain == "drop-image":
        steps.append(leave_out_images_with_uncertain)
    return steps


def decide(steps: list[Step], detections: Detections, image: np.ndarray | None) -> BoxDecisions:
    """Run an image's boxes through the chain."""
    decisions = BoxDecisions(detections, image)
    for step in steps:
        decisions = step(decisions)
    return decisions
