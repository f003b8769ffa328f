from __future__ import annotations

import numpy as np
import pytest

from yolossl.boxes import xywhn_to_xyxy
from yolossl.quality import box_iou, label_quality, match_image


def test_iou_of_known_boxes() -> None:
    a = np.array([[0, 0, 2, 2]], float)
    b = np.array([[1, 1, 3, 3], [0, 0, 2, 2], [5, 5, 6, 6]], float)
    np.testing.assert_allclose(box_iou(a, b), [[1 / 7, 1.0, 0.0]])
    np.testing.assert_allclose(xywhn_to_xyxy(np.array([[0.5, 0.5, 0.2, 0.4]])), [[0.4, 0.3, 0.6, 0.7]])


def test_matching_counts_each_true_box_once_and_spots_wrong_classes() -> None:
    truth = np.array([[0, 0.5, 0.5, 0.2, 0.2], [1, 0.2, 0.2, 0.1, 0.1]])
    cls = np.array([0, 0, 2, 1])
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    boxes = np.array([[0.5, 0.5, 0.2, 0.2], [0.5, 0.5, 0.2, 0.2], [0.2, 0.2, 0.1, 0.1], [0.9, 0.9, 0.1, 0.1]])
    correct, wrong_class = match_image(cls, scores, boxes, truth)
    assert correct.tolist() == [True, False, False, False]  # the duplicate does not match twice
    assert wrong_class.tolist() == [False, False, True, False]  # a duplicate is a false positive, not a wrong class


def test_quality_at_a_threshold() -> None:
    truth = {"a": np.array([[0, 0.5, 0.5, 0.2, 0.2]]), "b": np.array([[1, 0.3, 0.3, 0.2, 0.2]])}
    predictions = {
        "a": (np.array([0, 1]), np.array([0.9, 0.3]), np.array([[0.5, 0.5, 0.2, 0.2], [0.8, 0.8, 0.1, 0.1]])),
        "b": (np.array([1]), np.array([0.4]), np.array([[0.3, 0.3, 0.2, 0.2]])),
    }
    everything = label_quality(predictions, truth, 0.0)
    assert (everything.predicted, everything.correct, everything.true) == (3, 2, 2)
    assert everything.precision == pytest.approx(2 / 3) and everything.recall == 1.0
    strict = label_quality(predictions, truth, 0.5)
    assert (strict.predicted, strict.correct, strict.precision, strict.recall) == (1, 1, 1.0, 0.5)
