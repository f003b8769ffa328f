from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from yolossl.data import image_id, label_path_for, load_data_yaml, read_yolo_labels, scan_image_folders
from yolossl.errors import YolosslError


def _write_yaml(path: Path, meta: dict) -> Path:
    path.write_text(yaml.safe_dump(meta))
    return path


def test_reads_the_demo_yaml(tiny_dataset: Path) -> None:
    spec = load_data_yaml(tiny_dataset / "data.yaml")
    assert spec.root == tiny_dataset.resolve()
    assert spec.names == {0: "circle", 1: "square", 2: "triangle", 3: "cross", 4: "ring"}
    items = spec.train_items()
    assert len(items) == 8
    assert all(item.label is not None and item.label.is_file() for item in items)
    assert all(item.label == label_path_for(item.path) for item in items)
    assert len(spec.val_items()) == 6


@pytest.mark.parametrize(
    ("names", "expected"),
    [(["a", "b"], {0: "a", 1: "b"}), ({0: "a", 1: "b"}, {0: "a", 1: "b"}), ({"1": "b", "0": "a"}, {0: "a", 1: "b"})],
)
def test_names_as_list_or_dict(tiny_dataset: Path, names: object, expected: dict) -> None:
    path = _write_yaml(tiny_dataset / "d.yaml", {"train": "labeled/images", "val": "val/images", "names": names})
    assert load_data_yaml(path).names == expected


def test_train_as_list_of_dirs_and_txt(tiny_dataset: Path) -> None:
    images = sorted((tiny_dataset / "labeled/images").glob("*.jpg"))
    (tiny_dataset / "more.txt").write_text("\n".join(f"./labeled/images/{p.name}" for p in images[:3]) + "\n")
    path = _write_yaml(
        tiny_dataset / "d.yaml",
        {"path": str(tiny_dataset), "train": ["val/images", "more.txt"], "val": "val/images", "names": ["a"]},
    )
    items = load_data_yaml(path).train_items()
    assert len(items) == 6 + 3
    assert {i.path.name for i in items[-3:]} == {p.name for p in images[:3]}
    assert all(i.label is not None for i in items)


def test_relative_path_is_resolved_against_the_yaml(tiny_dataset: Path, tmp_path: Path, monkeypatch) -> None:
    """Ultralytics tries the working directory first; where that fails we try the YAML's folder."""
    monkeypatch.chdir("/")
    (tmp_path / "cfg").mkdir()
    meta = {"path": f"../{tiny_dataset.name}", "train": "labeled/images", "val": "val/images", "names": ["a"]}
    path = _write_yaml(tmp_path / "cfg" / "d.yaml", meta)
    assert load_data_yaml(path).root == tiny_dataset.resolve()


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({"train": "labeled/images", "names": ["a"]}, "'val:' is missing"),
        ({"train": "labeled/images", "val": "nowhere", "names": ["a"]}, "'val:' entry nowhere not found"),
        ({"train": "labeled/images", "val": "val/images"}, "'names:' is missing"),
        ({"train": "labeled/images", "val": "val/images", "names": {0: "a", 2: "c"}}, "ids must be 0..1"),
        ({"path": "missing", "train": "a", "val": "b", "names": ["a"]}, "'path: missing' does not exist"),
    ],
)
def test_bad_yaml_names_the_file_and_the_problem(tiny_dataset: Path, meta: dict, message: str) -> None:
    path = _write_yaml(tiny_dataset / "bad.yaml", meta)
    with pytest.raises(YolosslError, match=message) as info:
        load_data_yaml(path)
    assert str(path) in str(info.value)


def test_missing_and_malformed_yaml(tmp_path: Path) -> None:
    with pytest.raises(YolosslError, match="data YAML not found"):
        load_data_yaml(tmp_path / "nope.yaml")
    (tmp_path / "broken.yaml").write_text("train: [unclosed\n")
    with pytest.raises(YolosslError, match="not valid YAML"):
        load_data_yaml(tmp_path / "broken.yaml")


def test_label_path_follows_ultralytics() -> None:
    assert label_path_for(Path("/d/images/train/a.jpg")) == Path("/d/labels/train/a.txt")
    assert label_path_for(Path("/images/x/images/b.PNG")) == Path("/images/x/labels/b.txt")
    assert label_path_for(Path("/flat/c.jpg")) == Path("/flat/c.txt")


def test_scan_is_recursive_sorted_and_counts_non_images(tiny_dataset: Path, tmp_path: Path) -> None:
    pool_dir = tmp_path / "pool"
    (pool_dir / "sub").mkdir(parents=True)
    sources = sorted((tiny_dataset / "unlabeled").glob("*.jpg"))
    shutil.copy(sources[0], pool_dir / "b.jpg")
    shutil.copy(sources[1], pool_dir / "sub" / "a.JPG")
    (pool_dir / "notes.txt").write_text("not an image")
    (pool_dir / ".hidden").write_text("ignored quietly")
    pool = scan_image_folders([pool_dir])
    assert [i.path.relative_to(pool_dir).as_posix() for i in pool.images] == ["b.jpg", "sub/a.JPG"]
    assert pool.skipped == 1


def test_same_file_name_in_two_folders_gets_two_ids(tiny_dataset: Path, tmp_path: Path) -> None:
    source = next((tiny_dataset / "unlabeled").glob("*.jpg"))
    for cam in ("cam_a", "cam_b"):
        (tmp_path / cam).mkdir()
        shutil.copy(source, tmp_path / cam / "img001.jpg")
    pool = scan_image_folders([tmp_path / "cam_a", tmp_path / "cam_b", tmp_path / "cam_a"])
    ids = [i.id for i in pool.images]
    assert len(ids) == 2 and len(set(ids)) == 2  # the repeated folder adds nothing
    assert all(i.startswith("img001-") for i in ids)
    assert image_id(tmp_path / "cam_a" / "img001.jpg") == ids[0]  # stable


def test_scan_errors(tmp_path: Path) -> None:
    with pytest.raises(YolosslError, match="no unlabeled folder"):
        scan_image_folders([])
    with pytest.raises(YolosslError, match="unlabeled folder not found"):
        scan_image_folders([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(YolosslError, match="no images found"):
        scan_image_folders([tmp_path / "empty"])


def test_read_yolo_labels(tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_text("0 0.5 0.5 0.2 0.2\r\n3 0.1 0.2 0.05 0.05\n\n")
    np.testing.assert_allclose(read_yolo_labels(good), [[0, 0.5, 0.5, 0.2, 0.2], [3, 0.1, 0.2, 0.05, 0.05]])
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert read_yolo_labels(empty).shape == (0, 5)
    bad = tmp_path / "bad.txt"
    bad.write_text("0 0.5 0.5 0.2\n")
    with pytest.raises(YolosslError, match="5 columns"):
        read_yolo_labels(bad)


def test_reading_never_writes(tiny_dataset: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in tiny_dataset.rglob("*")}
    spec = load_data_yaml(tiny_dataset / "data.yaml")
    spec.train_items(), spec.val_items(), scan_image_folders([tiny_dataset / "unlabeled"])
    assert {p: p.stat().st_mtime_ns for p in tiny_dataset.rglob("*")} == before
    assert os.access(tiny_dataset, os.W_OK)
