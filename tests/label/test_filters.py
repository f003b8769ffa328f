from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from yolossl.boxes import Detections
from yolossl.errors import YolosslError
from yolossl.images import GREY
from yolossl.label.filters import (
    ClassThresholds,
    box_status,
    mask_uncertain,
    pick_threshold,
    thresholds_for_precision,
)


@pytest.mark.parametrize(("target", "expected"), [(1.0, 0.8), (0.9, 0.8), (0.75, 0.6), (0.6, 0.5), (0.5, 0.4)])
def test_threshold_is_the_lowest_reaching_the_target_on_a_known_pr_curve(target: float, expected: float) -> None:
    # precision of the boxes scoring >= each score: 1, 1, 2/3, 3/4, 3/5, 1/2
    scores = np.array([0.5, 0.9, 0.7, 0.6, 0.8, 0.4])
    correct = np.array([0, 1, 0, 1, 1, 0], dtype=bool)
    assert pick_threshold(scores, correct, target) == expected


def test_ties_are_kept_or_dropped_together() -> None:
    scores, correct = np.array([0.9, 0.9, 0.5]), np.array([1, 0, 1], dtype=bool)
    assert pick_threshold(scores, correct, 0.6) == 0.5  # 0.9 alone keeps both tied boxes: precision 1/2
    assert math.isinf(pick_threshold(scores, correct, 1.0))
    assert math.isinf(pick_threshold(np.zeros(0), np.zeros(0, dtype=bool), 0.5))


def _dets(rows: list[tuple[float, float, float, float, float, int]]) -> Detections:
    a = np.array(rows, dtype=np.float64).reshape(-1, 6)
    return Detections(a[:, :4], a[:, 4], a[:, 5].astype(np.int64))


def test_per_class_thresholds_from_val_and_unreachable_classes() -> None:
    shape = (100, 100)
    truth = np.array([[0, 0.2, 0.2, 0.2, 0.2], [0, 0.7, 0.7, 0.2, 0.2], [1, 0.5, 0.2, 0.1, 0.1]])
    detections = _dets(
        [
            (10, 10, 30, 30, 0.9, 0),  # right
            (60, 60, 80, 80, 0.4, 0),  # right
            (40, 40, 50, 50, 0.6, 0),  # wrong: nothing there
            (45, 15, 55, 25, 0.8, 2),  # class 1's place, called class 2: wrong
            (0, 80, 10, 90, 0.7, 1),  # wrong
        ]
    )
    thresholds = thresholds_for_precision([(detections, truth, shape)], n_classes=3, target=0.6, uncertain_low=0.1)
    assert thresholds.kept[0] == 0.4  # precision 2/3 at 0.4 reaches 0.6; 1/2 at 0.6 does not matter
    assert thresholds.unreachable == [1, 2]
    assert "precision >= 0.6" in thresholds.rule


def test_box_status_kept_uncertain_dropped() -> None:
    thresholds = ClassThresholds({0: 0.5, 1: math.inf}, uncertain_low=0.2, rule="test")
    dets = _dets([(0, 0, 1, 1, 0.6, 0), (0, 0, 1, 1, 0.3, 0), (0, 0, 1, 1, 0.1, 0), (0, 0, 1, 1, 0.9, 1)])
    assert box_status(dets, thresholds, 2).tolist() == ["kept", "uncertain", "dropped", "uncertain"]


def test_band_floor_above_a_threshold_is_refused() -> None:
    with pytest.raises(YolosslError, match="uncertain band"):
        ClassThresholds({0: 0.3}, uncertain_low=0.4, rule="test")
    assert ClassThresholds.global_conf(2, 0.05, 0.1).uncertain_low == 0.05  # the band shrinks to fit a low conf


def test_masking_greys_uncertain_boxes_but_not_kept_ones() -> None:
    image = np.full((10, 10, 3), 50, dtype=np.uint8)
    masked = mask_uncertain(image, np.array([[2.0, 2.0, 6.0, 6.0]]), np.array([[4.5, 4.5, 8.0, 8.0]]))
    assert (image == 50).all()  # the original is never touched
    expected = np.full((10, 10), 50)
    expected[2:6, 2:6] = GREY
    expected[4:8, 4:8] = 50  # the kept box (rounded outwards to whole pixels) stays as it was
    assert (masked[..., 0] == expected).all() and (masked[..., 2] == expected).all()


def test_thresholds_round_trip(tmp_path: Path) -> None:
    thresholds = ClassThresholds({0: 0.42, 1: math.inf}, uncertain_low=0.1, rule="precision >= 0.9 per class on val")
    thresholds.save(tmp_path / "t.json")
    assert ClassThresholds.load(tmp_path / "t.json") == thresholds
