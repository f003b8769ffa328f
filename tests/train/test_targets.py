"""The loss's targets read from a labeling pass: kept boxes, unsure boxes, classes without a threshold."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from yolossl.errors import YolosslError
from yolossl.label import ClassThresholds
from yolossl.label.record import RecordRow, RecordWriter
from yolossl.train.targets import (
    IGNORE,
    KIND_STRIDE,
    PSEUDO_AREA,
    PSEUDO_CLASS_ONLY,
    SOFT_KIND,
    ImageTargets,
    LossRules,
    PseudoTargets,
    load_pseudo_targets,
    save_pseudo_targets,
    targets_from_labeling,
)


def _row(image_id: str, cls: int, score: float, box: tuple[float, ...], status: str) -> RecordRow:
    return RecordRow(image_id, f"/pool/{image_id}.jpg", cls, f"c{cls}", score, box, status, "why")


def test_every_candidate_the_teacher_did_not_keep_is_unsure(tmp_path: Path) -> None:
    with RecordWriter(tmp_path / "record.csv") as record:
        record.write(
            [
                _row("a", 0, 0.9, (0.5, 0.5, 0.2, 0.2), "kept"),
                _row("a", 1, 0.3, (0.2, 0.2, 0.1, 0.1), "uncertain"),
                _row("a", 2, 0.07, (0.8, 0.8, 0.1, 0.1), "dropped"),
                _row("b", 1, 0.95, (0.4, 0.4, 0.3, 0.3), "kept"),
                _row("not-trained", 0, 0.9, (0.5, 0.5, 0.2, 0.2), "kept"),
            ]
        )
    ClassThresholds({0: 0.5, 1: 0.8, 2: math.inf}, 0.1, "precision >= 0.8").save(tmp_path / "thresholds.json")

    targets = targets_from_labeling(tmp_path, ["a", "b", "c"], LossRules(lambda_u=0.5))
    assert targets.rules == LossRules(lambda_u=0.5, no_threshold_classes=(2,))
    assert targets.images == {
        "a": ImageTargets(
            [(0, 0.9, 0.5, 0.5, 0.2, 0.2)], [], [(1, 0.3, 0.2, 0.2, 0.1, 0.1), (2, 0.07, 0.8, 0.8, 0.1, 0.1)]
        ),
        "b": ImageTargets([(1, 0.95, 0.4, 0.4, 0.3, 0.3)], []),
        "c": ImageTargets([], []),  # trained on as background (keep_empty): nothing to ignore
    }
    save_pseudo_targets(targets, tmp_path / "t.json")
    assert load_pseudo_targets(tmp_path / "t.json") == targets


def test_unsure_boxes_encode_as_the_rules_say() -> None:
    """Ignore: ignore regions, as before soft targets; soft: their class at their score; dense: no box (the
    teacher's dense scores teach instead)."""
    image = ImageTargets([(0, 0.9, 0.5, 0.5, 0.2, 0.2)], [(0.1, 0.1, 0.1, 0.1)], [(1, 0.3, 0.2, 0.2, 0.1, 0.1)])
    kinds = {
        unsure: [int(c) // KIND_STRIDE for c in image.encoded(LossRules(unsure=unsure))[0][:, 0]]
        for unsure in ("ignore", "soft", "dense")
    }
    assert kinds == {
        "ignore": [PSEUDO_CLASS_ONLY, IGNORE, IGNORE, PSEUDO_AREA],
        "soft": [PSEUDO_CLASS_ONLY, SOFT_KIND + 300, IGNORE, PSEUDO_AREA],
        "dense": [PSEUDO_CLASS_ONLY, IGNORE, PSEUDO_AREA],
    }


def test_a_targets_file_from_before_soft_targets_still_loads_as_it_trained(tmp_path: Path) -> None:
    """Its `ignore` list held every unsure box, and its rules had no `unsure`: ignore regions, as they were."""
    old = {
        "rules": {"lambda_u": 1.0, "box_min_score": None, "no_threshold_classes": [2]},
        "images_dir": "x",
        "images": {"a": {"kept": [[0, 0.9, 0.5, 0.5, 0.2, 0.2]], "ignore": [[0.2, 0.2, 0.1, 0.1]]}},
    }
    (tmp_path / "t.json").write_text(json.dumps(old))
    loaded = load_pseudo_targets(tmp_path / "t.json")
    assert loaded.rules == LossRules(no_threshold_classes=(2,), unsure="ignore")
    assert loaded.images["a"] == ImageTargets([(0, 0.9, 0.5, 0.5, 0.2, 0.2)], [(0.2, 0.2, 0.1, 0.1)], [])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, r"t.json: not found; the data YAML's 'pseudo_targets' names it$"),
        ("{", r"t.json: not a pseudo-targets file written by yolossl \(JSONDecodeError: "),
        ('{"rules": {}}', r"t.json: not a pseudo-targets file written by yolossl \(KeyError: 'lambda_u'\)$"),
    ],
)
def test_a_missing_or_damaged_targets_file_is_one_line(tmp_path: Path, content: str | None, message: str) -> None:
    if content is not None:
        (tmp_path / "t.json").write_text(content)
    with pytest.raises(YolosslError, match=message):
        load_pseudo_targets(tmp_path / "t.json")


def test_a_pseudo_image_missing_from_the_targets_is_named(tmp_path: Path) -> None:
    targets = PseudoTargets(LossRules(), {}, images_dir=str(tmp_path), source=tmp_path / "t.json")
    label = {"im_file": str(tmp_path / "x1.jpg"), "cls": [], "bboxes": []}
    with pytest.raises(YolosslError, match=r"t.json: no entry for 'x1' \(.*x1.jpg\), a pseudo-labeled image$"):
        targets.mark([label])
    other = {"im_file": str(tmp_path / "labeled" / "y.jpg"), "cls": [[0.0]], "bboxes": [[0.5, 0.5, 0.1, 0.1]]}
    assert targets.mark([other]) == 0 and other["cls"] == [[0.0]]  # human-labeled: untouched
