from __future__ import annotations

import csv
import logging
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from yolossl.boxes import Detections
from yolossl.cli import app
from yolossl.data import scan_image_folders
from yolossl.errors import YolosslError
from yolossl.images import GREY, read_image
from yolossl.label import (
    RECORD_COLUMNS,
    ClassThresholds,
    Detector,
    LabelSettings,
    pseudo_label,
    training_items,
    write_yolo_labels,
)
from yolossl.label.engine import Frame
from yolossl.label.pool import label_folders
from yolossl.label.writer import write_behind

NAMES = {0: "circle", 1: "square", 2: "triangle", 3: "cross", 4: "ring"}


@pytest.fixture
def pool(tiny_dataset: Path):
    return scan_image_folders([tiny_dataset / "unlabeled"]).images


class ScriptedDetector:
    """Stands in for the model: every image gets the same hand-made boxes, so each status is known."""

    # (x1, y1, x2, y2, score, class) in pixels of the 64 px demo images
    BOXES = np.array(
        [
            [4, 4, 20, 20, 0.90, 0],  # kept (>= 0.6)
            [30, 30, 50, 50, 0.50, 1],  # uncertain
            [10, 40, 20, 60, 0.20, 2],  # uncertain
            [40, 5, 60, 15, 0.07, 3],  # dropped (< 0.1)
        ]
    )

    def run(self, items, batch=16, keep_images=False, workers=None, on_progress=None):
        for i, item in enumerate(items):
            image = read_image(item.path)
            rows = self.BOXES if i % 3 else self.BOXES[1:]  # every third image has no kept box
            dets = Detections(rows[:, :4].copy(), rows[:, 4].copy(), rows[:, 5].astype(np.int64))
            yield Frame(item, image.shape[:2], dets, image if keep_images else None)
            if on_progress:
                on_progress(1)


SCRIPTED = {"conf": 0.6, "uncertain_low": 0.1, "min_conf": 0.05, "imgsz": 64, "batch": 4, "device": "cpu"}


def _scripted(pool, out: Path, **changes):
    settings = LabelSettings(**{**SCRIPTED, **changes})
    thresholds = ClassThresholds.global_conf(len(NAMES), settings.conf, settings.uncertain_low)
    return pseudo_label(ScriptedDetector(), pool, out, settings, thresholds, NAMES)


def _record(out: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((out / "record.csv").open()))


def test_label_file_format_is_exact(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    write_yolo_labels(path, np.array([2, 0]), np.array([[0.5, 0.25, 0.1, 0.2], [1 / 3, 2 / 3, 0.123456789, 1.0]]))
    assert path.read_text() == "2 0.500000 0.250000 0.100000 0.200000\n0 0.333333 0.666667 0.123457 1.000000\n"
    write_yolo_labels(path, np.zeros(0), np.zeros((0, 4)))
    assert path.read_text() == ""


def test_every_candidate_is_recorded_with_its_status_and_reason(pool, tmp_path) -> None:
    out = tmp_path / "p"
    stats = _scripted(pool, out)
    rows = _record(out)
    assert tuple(rows[0]) == RECORD_COLUMNS
    first = [r for r in rows if r["image_id"] == pool[1].id]
    assert [(r["class_name"], r["status"], r["reason"]) for r in first] == [
        ("circle", "kept", "score >= 0.600"),
        ("square", "uncertain", "score in [0.100, 0.600)"),
        ("triangle", "uncertain", "score in [0.100, 0.600)"),
        ("cross", "dropped", "score < 0.100"),
    ]
    assert first[0]["x_center"] == "0.187500" and first[0]["width"] == "0.250000"  # 4..20 px of 64
    assert (stats.images, stats.kept, stats.uncertain, stats.dropped) == (12, 8, 24, 12)
    assert stats.kept_per_class == {0: 8, 1: 0, 2: 0, 3: 0, 4: 0} and stats.uncertain_per_class[1] == 12
    assert stats.images_with_boxes == 8


def test_labels_hold_the_kept_boxes_and_every_image_gets_a_file(pool, tmp_path) -> None:
    out = tmp_path / "p"
    _scripted(pool, out)
    assert sorted(p.stem for p in (out / "labels").glob("*.txt")) == sorted(i.id for i in pool)
    assert (out / "labels" / f"{pool[1].id}.txt").read_text() == "0 0.187500 0.187500 0.250000 0.250000\n"
    assert (out / "labels" / f"{pool[0].id}.txt").read_text() == ""  # looked at, nothing kept
    assert (out / "thresholds.json").is_file() and (out / "stats.json").is_file()


def test_mask_paints_uncertain_boxes_in_a_copy(pool, tmp_path, tiny_dataset) -> None:
    before = {p: p.read_bytes() for p in (tiny_dataset / "unlabeled").iterdir()}
    out = tmp_path / "p"
    stats = _scripted(pool, out, uncertain="mask")
    assert stats.masked_images == 12
    copy = out / "images" / f"{pool[1].id}.jpg"
    assert not copy.is_symlink()
    masked, original = cv2.imread(str(copy)), cv2.imread(str(pool[1].path))
    assert np.abs(masked[32:48, 32:48].astype(int) - GREY).max() <= 3  # inside the uncertain square box
    assert np.abs(original[32:48, 32:48].astype(int) - GREY).mean() > 20  # ... which was not grey before
    # the kept box is intact, but for JPEG re-encoding noise
    assert np.abs(masked[6:18, 6:18].astype(int) - original[6:18, 6:18]).mean() < 6
    assert {p: p.read_bytes() for p in (tiny_dataset / "unlabeled").iterdir()} == before  # originals untouched


def test_masked_copies_encoded_on_several_threads_are_the_same_bytes(pool, tmp_path, monkeypatch) -> None:
    """Masked JPEGs are encoded on up to 4 threads (one cannot keep up with a GPU): the same files as on one."""
    import yolossl.label.pseudo

    outputs = {}
    for cores in (1, 4):
        monkeypatch.setattr(yolossl.label.pseudo.os, "cpu_count", lambda cores=cores: cores)
        stats = _scripted(pool, tmp_path / f"p{cores}", uncertain="mask")
        assert stats.masked_images == 12
        outputs[cores] = {f.name: f.read_bytes() for f in (tmp_path / f"p{cores}" / "images").iterdir()}
    assert outputs[4] == outputs[1] and len(outputs[1]) == len(pool)


def test_keep_links_every_image_and_drops_the_band(pool, tmp_path) -> None:
    out = tmp_path / "p"
    stats = _scripted(pool, out, uncertain="keep")
    assert stats.uncertain == 0 and stats.dropped == 36 and stats.masked_images == 0
    assert all(os.path.islink(p) for p in (out / "images").iterdir())
    assert {r["reason"] for r in _record(out) if r["status"] == "dropped"} == {"score < 0.600"}


def test_drop_image_leaves_out_images_with_uncertain_boxes(pool, tmp_path) -> None:
    out = tmp_path / "p"
    stats = _scripted(pool, out, uncertain="drop-image")
    assert stats.dropped_images == 12 and stats.kept == 0
    assert not list((out / "labels").iterdir()) and not list(training_items(out))
    circles = {r["reason"] for r in _record(out) if r["class_name"] == "circle"}
    assert circles == {"image left out: it has uncertain boxes"}


def test_no_empty_label_files_writes_none_for_images_without_kept_boxes(pool, tmp_path) -> None:
    out = tmp_path / "p"
    _scripted(pool, out, empty_label_files=False)
    assert len(list((out / "labels").iterdir())) == 8


def test_training_items_are_the_images_with_kept_boxes(pool, tmp_path) -> None:
    out = tmp_path / "p"
    _scripted(pool, out)
    items = list(training_items(out))
    assert sorted(i.id for i in items) == sorted(i.id for n, i in enumerate(pool) if n % 3)
    assert all(i.path.parent == out / "images" and i.label.read_text() for i in items)
    everything = list(training_items(out, keep_empty=True))  # the empty ones too, as background images
    assert len(everything) == 12 and sum(not i.label.read_text() for i in everything) == 4


def test_relabeling_with_the_model_is_byte_identical(tiny_weights, pool, tmp_path) -> None:
    settings = LabelSettings(conf=0.002, uncertain_low=0.001, min_conf=0.001, imgsz=64, batch=4)
    for out in (tmp_path / "a", tmp_path / "b"):
        detector = Detector([tiny_weights], imgsz=64, conf=settings.min_conf)
        thresholds = ClassThresholds.global_conf(len(NAMES), settings.conf, settings.uncertain_low)
        stats = pseudo_label(detector, pool, out, settings, thresholds, NAMES)
    assert stats.kept > 0
    files = [p for p in (tmp_path / "a").rglob("*") if p.is_file() and p.name != "stats.json"]  # stats hold timings
    assert len(files) > 24
    for path in files:
        assert path.read_bytes() == (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes(), path


def test_unreadable_images_are_skipped_and_named(tiny_weights, tiny_dataset, tmp_path, caplog) -> None:
    folder = tmp_path / "pool"
    shutil.copytree(tiny_dataset / "unlabeled", folder)
    (folder / "broken.jpg").write_bytes(b"this is not a jpeg")
    (folder / "empty.png").write_bytes(b"")
    items = scan_image_folders([folder]).images
    detector = Detector([tiny_weights], imgsz=64, conf=0.01)
    thresholds = ClassThresholds.global_conf(len(NAMES), 0.25, 0.1)
    with caplog.at_level(logging.WARNING, logger="yolossl"):
        stats = pseudo_label(detector, items, tmp_path / "p", LabelSettings(imgsz=64), thresholds, NAMES)
    assert stats.images == 12
    assert sorted(Path(p).name for p in stats.unreadable) == ["broken.jpg", "empty.png"]
    assert "broken.jpg: not an image (OpenCV cannot decode it), skipped" in caplog.text
    assert "pi-heif" not in caplog.text  # no plugin hunt for a file that is no image at all
    assert "empty.png: empty file (0 bytes), skipped" in caplog.text


def test_label_folders_guards_the_output_and_needs_val_for_precision(tiny_weights, tiny_dataset, tmp_path) -> None:
    mine = tmp_path / "my_stuff"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    settings = LabelSettings(imgsz=64, batch=4)
    with pytest.raises(YolosslError, match="exists and is not empty; choose a new --out folder"):
        label_folders([tiny_weights], [tiny_dataset / "unlabeled"], mine, settings)
    with pytest.raises(YolosslError, match="was not built by yolossl"):
        label_folders([tiny_weights], [tiny_dataset / "unlabeled"], mine, settings, exist_ok=True)
    assert (mine / "notes.txt").read_text() == "precious"
    with pytest.raises(YolosslError, match="pass --data"):
        label_folders([tiny_weights], [tiny_dataset / "unlabeled"], tmp_path / "o", LabelSettings(target_precision=0.9))


def test_target_precision_picks_thresholds_on_val(tiny_weights, tiny_dataset, tmp_path) -> None:
    settings = LabelSettings(target_precision=0.5, min_conf=0.001, uncertain_low=0.001, imgsz=64, batch=4)
    out = tmp_path / "o"
    label_folders([tiny_weights], [tiny_dataset / "unlabeled"], out, settings, data=tiny_dataset / "data.yaml")
    thresholds = ClassThresholds.load(out / "thresholds.json")
    assert thresholds.rule == "precision >= 0.5 per class on val" and set(thresholds.kept) == set(NAMES)


def test_a_malformed_val_line_is_reported_and_dropped_not_fatal(tiny_weights, tiny_dataset, tmp_path, caplog) -> None:
    """Thresholds are picked on val labels as the validator reads them: one bad line must not stop a run."""
    settings = LabelSettings(target_precision=0.5, min_conf=0.001, uncertain_low=0.001, imgsz=64, batch=4)
    data = tiny_dataset / "data.yaml"
    label_folders([tiny_weights], [tiny_dataset / "unlabeled"], tmp_path / "clean", settings, data=data)
    label = sorted((tiny_dataset / "val" / "labels").glob("*.txt"))[0]
    broken = label.read_text() + "1 0.5 0.5 0.2\n"  # four columns
    label.write_text(broken)
    bad_line = broken.count("\n")
    with caplog.at_level(logging.WARNING, logger="yolossl"):
        label_folders([tiny_weights], [tiny_dataset / "unlabeled"], tmp_path / "broken", settings, data=data)
    assert f"{label}:{bad_line}: " in caplog.text
    assert label.read_text() == broken  # the user's file is reported, never rewritten
    clean = ClassThresholds.load(tmp_path / "clean" / "thresholds.json")
    dropped = ClassThresholds.load(tmp_path / "broken" / "thresholds.json")
    assert dropped.kept == clean.kept and dropped.uncertain_low == clean.uncertain_low


def test_the_label_command(tiny_weights, tiny_dataset, tmp_path) -> None:
    out = tmp_path / "o"
    args = [
        "label",
        str(tiny_dataset / "unlabeled"),
        "--model",
        str(tiny_weights),
        "--out",
        str(out),
        "--imgsz",
        "64",
        "--conf",
        "0.01",
        "--uncertain",
        "keep",
        "--device",
        "cpu",
    ]
    result = CliRunner().invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output + result.stderr
    assert "Labeled 12 images" in result.output and "img/s" in result.output
    assert len(list((out / "labels").glob("*.txt"))) == 12
    result = CliRunner().invoke(app, [*args[:-2], "--uncertain", "sometimes"])
    assert result.exit_code == 2 and "--uncertain must be one of" in result.stderr


def test_thresholds_are_measured_after_the_class_reviewer(tiny_weights, tiny_dataset) -> None:
    """With the FixMatch head on, val precision must be that of the reviewed boxes the pool will get."""
    from yolossl.data import load_data_yaml
    from yolossl.label import Detector
    from yolossl.label.decisions import BoxOpinion
    from yolossl.label.pseudo import choose_thresholds

    class EverythingIsACircle:
        calls = 0

        def review(self, image: np.ndarray, detections: Detections) -> tuple[Detections, list[BoxOpinion]]:
            self.calls += 1
            circles = np.zeros_like(detections.classes)
            return Detections(detections.xyxy, detections.scores, circles), [
                BoxOpinion(int(c), 0, 1.0, "relabeled") for c in detections.classes
            ]

    settings = LabelSettings(target_precision=0.01, min_conf=0.001, uncertain_low=0.001, imgsz=64, batch=4)
    detector = Detector([tiny_weights], imgsz=64, conf=settings.min_conf)
    val = load_data_yaml(tiny_dataset / "data.yaml").val_items()
    reviewer = EverythingIsACircle()
    thresholds = choose_thresholds(detector, val, settings, len(NAMES), reviewer)
    assert reviewer.calls > 0
    assert set(thresholds.unreachable) >= {1, 2, 3, 4}  # no box of theirs survives the review


def test_write_behind_keeps_order_and_raises_the_first_error() -> None:
    import threading

    written: list[int] = []
    threads: set[str] = set()

    def write(frame: int) -> None:
        threads.add(threading.current_thread().name)
        if frame == 7:
            raise OSError("disk full")
        written.append(frame)

    write_behind(iter(range(5)), write, ahead=2)
    assert written == [0, 1, 2, 3, 4]
    assert threads and threading.current_thread().name not in threads  # off the model's thread
    written.clear()
    with pytest.raises(OSError, match="disk full"):
        write_behind(iter(range(20)), write, ahead=2)
    assert written[:7] == list(range(7)) and 7 not in written
