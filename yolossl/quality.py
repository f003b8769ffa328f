"""How good are pseudo-labels? Precision and recall of predicted boxes against true labels.

Used where the truth is known: benchmarks that hide labels, and the demo's `unlabeled_truth/`.
A predicted box is a true positive when it overlaps a not-yet-matched true box of the same class
with IoU >= 0.5 (greedy by score, the VOC/COCO rule).

    >>> q = label_quality(predictions, truth)   # dicts of image id -> arrays
    >>> q.precision, q.recall
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from yolossl.boxes import xywhn_to_xyxy


@dataclass(frozen=True)
class LabelQuality:
    """Counts at one threshold; `wrong_class` are boxes that would match a true box of another class."""

    predicted: int
    true: int
    correct: int
    wrong_class: int

    @property
    def precision(self) -> float:
        return self.correct / self.predicted if self.predicted else 0.0

    @property
    def recall(self) -> float:
        return self.correct / self.true if self.true else 0.0


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) IoU of corner boxes."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_a = (a[:, 2:] - a[:, :2]).prod(axis=1)
    area_b = (b[:, 2:] - b[:, :2]).prod(axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)


def match_image(
    pred_cls: np.ndarray, pred_scores: np.ndarray, pred_xywhn: np.ndarray, true_labels: np.ndarray, iou: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Per predicted box: (is a correct match, overlaps a true box of another class). `true_labels` is (M, 5)."""
    n = len(pred_cls)
    correct = np.zeros(n, dtype=bool)
    wrong_class = np.zeros(n, dtype=bool)
    if n == 0 or len(true_labels) == 0:
        return correct, wrong_class
    ious = box_iou(xywhn_to_xyxy(pred_xywhn), xywhn_to_xyxy(true_labels[:, 1:5]))
    same_class = pred_cls[:, None] == true_labels[None, :, 0].astype(int)
    taken = np.zeros(len(true_labels), dtype=bool)
    for i in np.argsort(-pred_scores, kind="stable"):
        candidates = np.where(same_class[i] & ~taken & (ious[i] >= iou))[0]
        if len(candidates):
            j = candidates[np.argmax(ious[i, candidates])]
            taken[j] = correct[i] = True
        else:
            wrong_class[i] = bool(((ious[i] >= iou) & ~same_class[i]).any())
    return correct, wrong_class


def label_quality(
    predictions: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    truth: dict[str, np.ndarray],
    threshold: float = 0.0,
) -> LabelQuality:
    """Quality of the boxes scoring >= `threshold`; images absent from `predictions` count as unlabeled misses."""
    predicted = correct = wrong = 0
    true = sum(len(t) for t in truth.values())
    for image, (cls, scores, xywhn) in predictions.items():
        keep = scores >= threshold
        ok, bad = match_image(cls[keep], scores[keep], xywhn[keep], truth.get(image, np.zeros((0, 5))))
        predicted += int(keep.sum())
        correct += int(ok.sum())
        wrong += int(bad.sum())
    return LabelQuality(predicted=predicted, true=true, correct=correct, wrong_class=wrong)
