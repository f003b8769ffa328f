"""Weighted boxes fusion of several views of one image (TTA passes, ensemble members).

Uses the `ensemble-boxes` package (ZFTurbo's reference implementation of WBF). A box that only
one of N views found keeps 1/N of its score, so agreement between views raises confidence and
a lone box sinks below the thresholds: what pseudo-labels want.

    >>> fused = fuse_detections([view_a, view_b], shape=(480, 640), skip_score=0.05)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from yolossl.boxes import Detections
from yolossl.errors import YolosslError

WBF_IOU = 0.55  # the library's default: boxes overlapping this much are one object


def fuse_detections(views: Sequence[Detections], shape: tuple[int, int], skip_score: float = 0.0) -> Detections:
    """Fuse per-view detections of an image of `shape` (h, w) into one set of boxes."""
    try:
        from ensemble_boxes import weighted_boxes_fusion
    except ImportError as e:
        raise YolosslError("--tta and ensembles fuse boxes with ensemble-boxes: pip install 'yolossl[ensemble]'") from e
    h, w = shape[:2]
    scale = np.array([w, h, w, h], dtype=np.float64)
    boxes = [np.clip(v.xyxy / scale, 0.0, 1.0) for v in views]
    scores = [v.scores for v in views]
    labels = [v.classes for v in views]
    if not any(len(s) for s in scores):
        return Detections.empty()
    fused_boxes, fused_scores, fused_labels = weighted_boxes_fusion(
        boxes, scores, labels, iou_thr=WBF_IOU, skip_box_thr=skip_score
    )
    order = np.argsort(-fused_scores, kind="stable")
    return Detections(
        xyxy=np.asarray(fused_boxes, dtype=np.float64)[order] * scale,
        scores=np.asarray(fused_scores, dtype=np.float64)[order],
        classes=np.asarray(fused_labels).astype(np.int64)[order],
    )
