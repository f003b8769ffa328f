"""The one box type (`Detections`) and the conversions between box layouts that every module shares.

Boxes travel as `Detections` (corners in image pixels, scores, class ids) from the engine through
fusion, filters and the writer; YOLO labels are normalised centre-size rows; exports hold corners
in pixels. Every conversion between those layouts, and the one YOLO label text, is here.

    >>> dets = Detections.from_yolo(rows, shape=(480, 640))
    >>> yolo_label_text(dets.classes, dets.xywhn((480, 640)))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Detections:
    """Boxes of one image: corners in original-image pixels, scores, integer class ids."""

    xyxy: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.scores)
        if self.xyxy.shape != (n, 4) or self.classes.shape != (n,):
            raise ValueError(
                f"xyxy must be ({n}, 4) and classes ({n},), got {self.xyxy.shape} and {self.classes.shape}"
            )

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=np.int64))

    @classmethod
    def from_yolo(cls, rows: np.ndarray, shape: tuple[int, int], scores: np.ndarray | None = None) -> Detections:
        """From (N, 5) YOLO rows `class xc yc w h` (normalised) of an image of `shape` (h, w); scores default to 1."""
        rows = np.asarray(rows, dtype=np.float64).reshape(-1, 5)
        h, w = shape[:2]
        xyxy = xywhn_to_xyxy(rows[:, 1:5]) * np.array([w, h, w, h], dtype=np.float64)
        scores = np.ones(len(rows)) if scores is None else np.asarray(scores, dtype=np.float64)
        return cls(xyxy, scores, rows[:, 0].astype(np.int64))

    def select(self, mask: np.ndarray) -> Detections:
        return Detections(self.xyxy[mask], self.scores[mask], self.classes[mask])

    def xywhn(self, shape: tuple[int, int]) -> np.ndarray:
        """Normalised centre-size boxes (YOLO label format) for an image of `shape` (h, w)."""
        return xyxy_to_xywhn(self.xyxy, shape)

    def as_yolo(self, shape: tuple[int, int]) -> np.ndarray:
        """(N, 5) YOLO rows `class xc yc w h` for an image of `shape` (h, w)."""
        return np.concatenate([self.classes[:, None].astype(np.float64), self.xywhn(shape)], axis=1)


def xywhn_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) centre-size boxes to corners, in the same unit (normalised stays normalised)."""
    xy, wh = boxes[:, :2], boxes[:, 2:4]
    return np.concatenate([xy - wh / 2, xy + wh / 2], axis=1)


def xyxy_to_xywhn(xyxy: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(N, 4) corners in pixels to normalised centre-size boxes, for an image of `shape` (h, w)."""
    h, w = shape[:2]
    x1, y1, x2, y2 = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4).T
    return np.stack([(x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h], axis=1)


def yolo_label_text(classes: np.ndarray, xywhn: np.ndarray) -> str:
    """The YOLO label file of these boxes: one `class xc yc w h` line each, 6 decimals; '' for none."""
    rows = zip(np.asarray(classes).tolist(), np.asarray(xywhn, dtype=np.float64).tolist(), strict=True)
    return "".join(f"{int(c)} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n" for c, (x, y, w, h) in rows)
