from __future__ import annotations

import csv
import logging
import shutil
from pathlib import Path

import numpy as np

from yolossl.data import scan_image_folders
from yolossl.label import RECORD_COLUMNS, PredictSettings, pseudo_label, write_yolo_labels

NAMES = {0: "circle", 1: "square", 2: "triangle", 3: "cross", 4: "ring"}
# An untrained-ish model scores everything low: a tiny threshold gives boxes to write.
LOW = PredictSettings(conf=0.001, imgsz=64, batch=4, device="cpu")


def test_label_file_format_is_exact(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    write_yolo_labels(path, np.array([2, 0]), np.array([[0.5, 0.25, 0.1, 0.2], [1 / 3, 2 / 3, 0.123456789, 1.0]]))
    assert path.read_text() == "2 0.500000 0.250000 0.100000 0.200000\n0 0.333333 0.666667 0.123457 1.000000\n"
    write_yolo_labels(path, np.zeros(0), np.zeros((0, 4)))
    assert path.read_text() == ""


def test_every_image_gets_a_label_file_and_every_box_a_record_row(tiny_dataset: Path, tiny_weights: Path, tmp_path):
    pool = scan_image_folders([tiny_dataset / "unlabeled"])
    seen: list[int] = []
    stats = pseudo_label(tiny_weights, pool.images, tmp_path / "pseudo", LOW, NAMES, seen.append)
    labels = tmp_path / "pseudo" / "labels"
    assert sorted(p.stem for p in labels.glob("*.txt")) == sorted(i.id for i in pool.images)
    assert sum(seen) == len(pool) == stats.images == 12

    rows = list(csv.DictReader((tmp_path / "pseudo" / "record.csv").open()))
    lines = [line for p in labels.glob("*.txt") for line in p.read_text().splitlines()]
    assert len(rows) == len(lines) == stats.boxes > 0
    assert tuple(rows[0].keys()) == RECORD_COLUMNS
    assert all(float(r["score"]) >= LOW.conf for r in rows)
    assert sum(stats.boxes_per_class.values()) == stats.boxes
    assert set(stats.boxes_per_class) == set(NAMES)
    # the record and the label files say the same thing
    row = rows[0]
    label_lines = (labels / f"{row['image_id']}.txt").read_text().splitlines()
    assert f"{row['class_id']} {row['x_center']} {row['y_center']} {row['width']} {row['height']}" in label_lines


def test_relabeling_gives_identical_files(tiny_dataset: Path, tiny_weights: Path, tmp_path: Path) -> None:
    pool = scan_image_folders([tiny_dataset / "unlabeled"])
    pseudo_label(tiny_weights, pool.images, tmp_path / "a", LOW, NAMES)
    pseudo_label(tiny_weights, pool.images, tmp_path / "b", LOW, NAMES)
    for path in (tmp_path / "a").rglob("*.*"):
        assert path.read_bytes() == (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes()


def test_high_threshold_still_writes_empty_files(tiny_dataset: Path, tiny_weights: Path, tmp_path: Path) -> None:
    pool = scan_image_folders([tiny_dataset / "unlabeled"])
    strict = PredictSettings(conf=0.999, imgsz=64, batch=4, device="cpu")
    stats = pseudo_label(tiny_weights, pool.images, tmp_path / "p", strict, NAMES)
    assert stats.boxes == 0 and stats.images == 12
    assert all(p.read_text() == "" for p in (tmp_path / "p" / "labels").glob("*.txt"))
    assert len(list((tmp_path / "p" / "labels").glob("*.txt"))) == 12


def test_unreadable_image_is_skipped_and_named(tiny_dataset: Path, tiny_weights: Path, tmp_path: Path, caplog):
    folder = tmp_path / "pool"
    shutil.copytree(tiny_dataset / "unlabeled", folder)
    (folder / "broken.jpg").write_bytes(b"this is not a jpeg")
    (folder / "empty.png").write_bytes(b"")
    pool = scan_image_folders([folder])
    with caplog.at_level(logging.WARNING, logger="yolossl"):
        stats = pseudo_label(tiny_weights, pool.images, tmp_path / "p", LOW, NAMES)
    assert stats.images == 12
    assert sorted(Path(p).name for p in stats.unreadable) == ["broken.jpg", "empty.png"]
    assert "broken.jpg: cannot be read as an image, skipped" in caplog.text


def test_interrupted_output_is_replaced(tiny_dataset: Path, tiny_weights: Path, tmp_path: Path) -> None:
    pool = scan_image_folders([tiny_dataset / "unlabeled"])
    debris = tmp_path / "p.partial" / "labels"
    debris.mkdir(parents=True)
    (debris / "leftover.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    pseudo_label(tiny_weights, pool.images, tmp_path / "p", LOW, NAMES)
    assert not (tmp_path / "p.partial").exists()
    assert not (tmp_path / "p" / "labels" / "leftover.txt").exists()
