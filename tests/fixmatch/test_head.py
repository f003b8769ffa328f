from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from yolossl.data import load_data_yaml
from yolossl.errors import YolosslError
from yolossl.fixmatch.crops import extract_crops, labeled_box_crops
from yolossl.fixmatch.head import FixMatchHead, combine
from yolossl.fixmatch.model import crop_classifier
from yolossl.images import GREY


def test_crops_at_edges_are_padded_not_shifted() -> None:
    image = np.full((40, 40, 3), 200, np.uint8)
    crop = extract_crops(image, np.array([[0, 0, 10, 10]]), size=20)[0]
    assert crop.shape == (20, 20, 3)
    assert (crop[0, 0] == GREY).all()  # the context above-left of the image is grey
    assert (crop[10, 10] == 200).all()  # the box itself is in the middle


def test_tiny_boxes_grayscale_and_rgba() -> None:
    gray = np.full((30, 30), 77, np.uint8)
    crop = extract_crops(gray, np.array([[15, 15, 15.2, 15.3]]), size=16)
    assert crop.shape == (1, 16, 16, 3) and (crop[0, 8, 8] == 77).all()
    rgba = np.full((30, 30, 4), 50, np.uint8)
    assert extract_crops(rgba, np.array([[5, 5, 25, 25]]), size=16).shape == (1, 16, 16, 3)
    assert extract_crops(gray, np.zeros((0, 4)), size=16).shape == (0, 16, 16, 3)


def test_jitter_moves_the_crop_but_keeps_the_count() -> None:
    rng = np.random.default_rng(0)
    image = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    boxes = np.array([[10, 10, 30, 30], [30, 30, 60, 60]], float)
    plain = extract_crops(image, boxes, 24)
    jittered = extract_crops(image, boxes, 24, jitter=0.2, rng=np.random.default_rng(1))
    assert jittered.shape == plain.shape and np.abs(jittered.astype(int) - plain).mean() > 1


def test_labeled_box_crops_cover_every_true_box(tiny_dataset: Path) -> None:
    spec = load_data_yaml(tiny_dataset / "data.yaml")
    crops, labels = labeled_box_crops(spec.train_items(), len(spec.names), size=24)
    boxes = sum(len(p.read_text().splitlines()) for p in (tiny_dataset / "labeled" / "labels").glob("*.txt"))
    assert crops.shape == (boxes, 24, 24, 3) and labels.shape == (boxes,)
    assert set(labels) <= set(spec.names)


@pytest.mark.parametrize(
    ("mode", "expected_classes", "expected_scores", "decisions"),
    [
        ("relabel", [0, 2, 1], [0.9, 0.8, 0.7], ["agree", "relabeled 1->2", "head unsure"]),
        ("drop", [0, 1, 1], [0.9, 0.0, 0.7], ["agree", "dropped: head says 2", "head unsure"]),
    ],
)
def test_combine(mode, expected_classes, expected_scores, decisions) -> None:
    det_classes, det_scores = np.array([0, 1, 1]), np.array([0.9, 0.8, 0.7])
    head = np.array([[0.9, 0.05, 0.05], [0.05, 0.05, 0.9], [0.5, 0.1, 0.4]])  # agree, confident other, unsure
    classes, scores, said = combine(det_classes, det_scores, head, mode=mode, min_head_conf=0.8, head_weight=0.0)
    assert classes.tolist() == expected_classes and scores.tolist() == expected_scores and said == decisions
    assert det_classes.tolist() == [0, 1, 1]  # inputs untouched
    with pytest.raises(YolosslError, match="must be one of"):
        combine(det_classes, det_scores, head, mode="vote")


def test_scores_blend_the_two_opinions() -> None:
    det_classes, det_scores = np.array([0, 1]), np.array([0.64, 0.64])
    head = np.array([[0.81, 0.19], [0.01, 0.99]])  # both boxes confirmed, with 0.81 and 0.99
    _, scores, _ = combine(det_classes, det_scores, head, head_weight=0.5)
    assert scores.tolist() == pytest.approx([(0.64 * 0.81) ** 0.5, (0.64 * 0.99) ** 0.5])
    _, unchanged, _ = combine(det_classes, det_scores, head, head_weight=0.0)
    assert unchanged.tolist() == [0.64, 0.64]


def test_head_save_and_load(tmp_path: Path) -> None:
    head = FixMatchHead(crop_classifier(3, 8).eval(), {0: "a", 1: "b", 2: "c"}, size=16, width=8)
    image = cv2.resize((np.random.default_rng(0).random((8, 8, 3)) * 255).astype(np.uint8), (64, 64))
    boxes = np.array([[0, 0, 30, 30], [20, 20, 60, 60]], float)
    head.save(tmp_path / "head.pt")
    again = FixMatchHead.load(tmp_path / "head.pt")
    np.testing.assert_allclose(again.predict_proba(image, boxes), head.predict_proba(image, boxes), atol=1e-6)
    assert again.names == head.names and head.predict_proba(image, np.zeros((0, 4))).shape == (0, 3)
