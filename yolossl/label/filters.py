"""Which predicted boxes become pseudo-labels: per-class thresholds and the uncertain band.

Every candidate box gets a status:
- kept: score >= its class's threshold: written as a label;
- uncertain: between `uncertain_low` and that threshold: probably an object, not sure enough to label.
  By default its region is painted grey in the round's copy of the image, so the detector is not
  taught that a likely object is background;
- dropped: below `uncertain_low`: treated as nothing.

Class thresholds are one global `conf`, or, with a target precision, picked per class on the
human-labeled val split: the lowest score at which that class's boxes are right often enough.

    >>> thresholds = thresholds_for_precision(val_boxes, n_classes=5, target=0.9, uncertain_low=0.1)
    >>> status = box_status(detections, thresholds)
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from yolossl._fs import read_regular_file
from yolossl.boxes import Detections
from yolossl.errors import YolosslError, first_line
from yolossl.images import GREY
from yolossl.quality import match_image

KEPT, UNCERTAIN, DROPPED = "kept", "uncertain", "dropped"


@dataclass(frozen=True)
class ClassThresholds:
    """The kept threshold of each class (inf: this class gets no pseudo-labels) and the band's floor."""

    kept: dict[int, float]
    uncertain_low: float
    rule: str  # how they were chosen, for the record and the report

    def __post_init__(self) -> None:
        finite = [t for t in self.kept.values() if math.isfinite(t)]
        if finite and self.uncertain_low > min(finite):
            raise YolosslError(
                f"the uncertain band's floor {self.uncertain_low} is above a kept threshold {min(finite)}"
            )

    @classmethod
    def global_conf(cls, n_classes: int, conf: float, uncertain_low: float) -> ClassThresholds:
        return cls({c: conf for c in range(n_classes)}, min(uncertain_low, conf), f"conf >= {conf}")

    @property
    def unreachable(self) -> list[int]:
        return [c for c, t in self.kept.items() if not math.isfinite(t)]

    def as_array(self, n_classes: int) -> np.ndarray:
        return np.array([self.kept.get(c, math.inf) for c in range(n_classes)], dtype=np.float64)

    def save(self, path: Path) -> None:
        values = {str(c): (t if math.isfinite(t) else None) for c, t in self.kept.items()}
        path.write_text(json.dumps({"rule": self.rule, "uncertain_low": self.uncertain_low, "kept": values}, indent=2))

    @classmethod
    def load(cls, path: Path) -> ClassThresholds:
        """What `save` wrote: the one reader of `thresholds.json`; a damaged file is one line naming it."""
        try:
            raw = json.loads(read_regular_file(path).decode("utf-8"))
        except (ValueError, RecursionError) as e:
            raise YolosslError(f"{path}: not a thresholds file ({first_line(e)})") from e
        kept = raw.get("kept") if isinstance(raw, dict) else None
        if not isinstance(kept, dict):
            raise YolosslError(f"{path}: kept: expected an object, got {type(kept).__name__ if kept else 'null'}")
        thresholds = {}
        for key, value in kept.items():
            if not key.isdigit():
                raise YolosslError(f"{path}: kept: {key[:50]!r} is not a class id")
            thresholds[int(key)] = math.inf if value is None else _finite(value, path, f"kept.{key}")
        low = raw.get("uncertain_low", raw.get("band_low", 0.0))  # band_low: its name before 29 Nov
        return cls(thresholds, _finite(low, path, "uncertain_low"), str(raw.get("rule", "")))


def _finite(value: object, path: Path, entry: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise YolosslError(f"{path}: {entry}: expected a finite number, got {value!r}")
    return float(value)


def pick_threshold(scores: np.ndarray, correct: np.ndarray, target: float) -> float:
    """The lowest score s such that the boxes scoring >= s have precision >= `target`; inf if none.

    Precision is evaluated only at the end of each run of equal scores, since a threshold keeps
    all of a tie or none of it.
    """
    if not len(scores):
        return math.inf
    order = np.argsort(-scores, kind="stable")
    s, ok = scores[order], correct[order].astype(np.float64)
    precision = np.cumsum(ok) / np.arange(1, len(s) + 1)
    ends = np.r_[s[1:] != s[:-1], True]  # last index of each tie
    reach = np.where(ends & (precision >= target))[0]
    return float(s[reach[-1]]) if len(reach) else math.inf


def thresholds_for_precision(
    val_boxes: Iterable[tuple[Detections, np.ndarray, tuple[int, int]]],
    n_classes: int,
    target: float,
    uncertain_low: float,
) -> ClassThresholds:
    """Per-class thresholds from (detections, true YOLO labels (M, 5), image shape) of val images."""
    scores: list[np.ndarray] = []
    classes: list[np.ndarray] = []
    correct: list[np.ndarray] = []
    for detections, truth, shape in val_boxes:
        ok, _ = match_image(detections.classes, detections.scores, detections.xywhn(shape), truth)
        scores.append(detections.scores)
        classes.append(detections.classes)
        correct.append(ok)
    all_scores = np.concatenate(scores) if scores else np.zeros(0)
    all_classes = np.concatenate(classes) if classes else np.zeros(0, dtype=np.int64)
    all_correct = np.concatenate(correct) if correct else np.zeros(0, dtype=bool)
    kept = {}
    for c in range(n_classes):
        mine = all_classes == c
        kept[c] = max(pick_threshold(all_scores[mine], all_correct[mine], target), uncertain_low)
    return ClassThresholds(kept, uncertain_low, f"precision >= {target} per class on val")


def box_status(detections: Detections, thresholds: ClassThresholds, n_classes: int) -> np.ndarray:
    """'kept' / 'uncertain' / 'dropped' for each box."""
    limits = thresholds.as_array(n_classes)[detections.classes]
    status = np.full(len(detections), DROPPED, dtype=object)
    status[detections.scores >= thresholds.uncertain_low] = UNCERTAIN
    status[detections.scores >= limits] = KEPT
    return status


def mask_uncertain(image: np.ndarray, uncertain_xyxy: np.ndarray, kept_xyxy: np.ndarray) -> np.ndarray:
    """A copy of `image` with uncertain boxes filled grey; kept boxes stay intact where they overlap."""
    out = image.copy()
    h, w = image.shape[:2]
    for x1, y1, x2, y2 in _pixel_boxes(uncertain_xyxy, w, h):
        out[y1:y2, x1:x2] = GREY
    for x1, y1, x2, y2 in _pixel_boxes(kept_xyxy, w, h):
        out[y1:y2, x1:x2] = image[y1:y2, x1:x2]
    return out


def _pixel_boxes(xyxy: np.ndarray, w: int, h: int) -> np.ndarray:
    """Boxes as integer pixel ranges covering every pixel they touch, clipped to the image."""
    if not len(xyxy):
        return np.zeros((0, 4), dtype=np.int64)
    boxes = np.concatenate([np.floor(xyxy[:, :2]), np.ceil(xyxy[:, 2:])], axis=1).astype(np.int64)
    return np.clip(boxes, 0, [w, h, w, h])
