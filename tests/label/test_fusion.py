from __future__ import annotations

import numpy as np
import pytest

from yolossl.boxes import Detections
from yolossl.label.fusion import fuse_detections


def _one(box: list[float], score: float, cls: int = 0) -> Detections:
    return Detections(np.array([box], dtype=np.float64), np.array([score]), np.array([cls]))


def test_overlapping_boxes_fuse_into_their_score_weighted_mean() -> None:
    a = _one([10, 10, 50, 50], 0.8)
    b = _one([14, 10, 54, 50], 0.4)  # IoU 0.82
    fused = fuse_detections([a, b], shape=(100, 100))
    assert len(fused) == 1
    np.testing.assert_allclose(fused.xyxy[0], [(10 * 0.8 + 14 * 0.4) / 1.2, 10, (50 * 0.8 + 54 * 0.4) / 1.2, 50])
    assert fused.scores[0] == pytest.approx(0.6)  # both views agree: the mean score
    assert fused.classes.tolist() == [0]


def test_a_box_only_one_view_saw_keeps_half_its_score() -> None:
    fused = fuse_detections([_one([10, 10, 50, 50], 0.8), Detections.empty()], shape=(100, 100))
    assert len(fused) == 1 and fused.scores[0] == pytest.approx(0.4)


def test_different_classes_and_distant_boxes_stay_apart() -> None:
    fused = fuse_detections([_one([10, 10, 50, 50], 0.8, 0), _one([10, 10, 50, 50], 0.7, 1)], shape=(100, 100))
    assert sorted(fused.classes.tolist()) == [0, 1]
    fused = fuse_detections([_one([0, 0, 10, 10], 0.8), _one([60, 60, 90, 90], 0.8)], shape=(100, 100))
    assert len(fused) == 2


def test_nothing_in_any_view() -> None:
    assert len(fuse_detections([Detections.empty(), Detections.empty()], shape=(10, 10))) == 0
