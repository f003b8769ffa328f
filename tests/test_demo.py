from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from tests.conftest import TINY
from yolossl.demo import (
    BENCH_CLASS_NAMES,
    CLASS_NAMES,
    DemoSpec,
    _draw_shape,
    draw_scene,
    ensure_demo_dataset,
    write_demo_dataset,
)


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_demo_has_the_promised_splits(tiny_dataset: Path) -> None:
    meta = yaml.safe_load((tiny_dataset / "data.yaml").read_text())
    assert meta["train"] == "labeled/images" and meta["val"] == "val/images"
    assert list(meta["names"].values()) == list(CLASS_NAMES)
    assert len(list((tiny_dataset / "labeled/images").glob("*.jpg"))) == TINY.n_labeled
    assert len(list((tiny_dataset / "labeled/labels").glob("*.txt"))) == TINY.n_labeled
    assert len(list((tiny_dataset / "val/images").glob("*.jpg"))) == TINY.n_val
    assert len(list((tiny_dataset / "unlabeled").glob("*.jpg"))) == TINY.n_unlabeled


def test_unlabeled_truth_is_out_of_the_tools_sight(tiny_dataset: Path) -> None:
    """Ultralytics finds labels by swapping /images/ for /labels/: the pool must have neither."""
    assert not list((tiny_dataset / "unlabeled").rglob("*.txt"))
    assert "images" not in (tiny_dataset / "unlabeled").parts
    truth = sorted(p.stem for p in (tiny_dataset / "unlabeled_truth").glob("*.txt"))
    assert truth == sorted(p.stem for p in (tiny_dataset / "unlabeled").glob("*.jpg"))


def test_labels_are_valid_yolo_boxes(tiny_dataset: Path) -> None:
    rows = np.concatenate([np.loadtxt(p, ndmin=2) for p in (tiny_dataset / "labeled/labels").glob("*.txt")])
    assert rows.shape[1] == 5
    assert set(rows[:, 0].astype(int)) <= set(range(len(CLASS_NAMES)))
    assert (rows[:, 1:] > 0).all() and (rows[:, 1:] <= 1).all()
    # boxes stay inside the image
    assert (rows[:, 1] - rows[:, 3] / 2 >= -1e-6).all() and (rows[:, 1] + rows[:, 3] / 2 <= 1 + 1e-6).all()


def test_same_seed_same_dataset(tmp_path: Path) -> None:
    spec = DemoSpec(n_labeled=3, n_unlabeled=3, n_val=2, size=64, seed=5)
    write_demo_dataset(tmp_path / "a", spec)
    write_demo_dataset(tmp_path / "b", spec)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")


@pytest.mark.parametrize("name", BENCH_CLASS_NAMES)
def test_label_box_is_the_drawn_shape(name: str) -> None:
    """The label must be the tight extent of the pixels the shape painted (±1 px of anti-aliasing)."""
    rng = np.random.default_rng(len(name))
    for _ in range(10):
        canvas = np.zeros((96, 96, 3), np.float64)
        x0, y0, x1, y1 = _draw_shape(rng, canvas, name, (30, 30, 60, 60))
        ys, xs = np.nonzero(canvas.max(axis=2) > 1)
        assert abs(xs.min() - x0) <= 1 and abs(ys.min() - y0) <= 1
        assert abs(xs.max() + 1 - x1) <= 1 and abs(ys.max() + 1 - y1) <= 1


def test_scene_is_an_image_with_a_few_objects() -> None:
    image, labels = draw_scene(np.random.default_rng(3), 128)
    assert image.shape == (128, 128, 3) and image.dtype == np.uint8
    assert 1 <= len(labels) <= 6


def test_ensure_builds_once_and_rebuilds_when_stale(tmp_path: Path) -> None:
    spec = DemoSpec(n_labeled=2, n_unlabeled=2, n_val=2, size=64)
    data_yaml = ensure_demo_dataset(tmp_path / "demo", spec)
    stamp = (tmp_path / "demo" / ".demo_version").stat().st_mtime_ns
    assert ensure_demo_dataset(tmp_path / "demo", spec) == data_yaml
    assert (tmp_path / "demo" / ".demo_version").stat().st_mtime_ns == stamp
    bigger = DemoSpec(n_labeled=3, n_unlabeled=2, n_val=2, size=64)
    ensure_demo_dataset(tmp_path / "demo", bigger)
    assert len(list((tmp_path / "demo/labeled/images").glob("*.jpg"))) == 3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".demo-")]  # no temp folders left


def test_images_decode(tiny_dataset: Path) -> None:
    image = cv2.imread(str(next((tiny_dataset / "unlabeled").glob("*.jpg"))))
    assert image is not None and image.shape == (64, 64, 3)


def test_bench_spec_draws_its_seven_classes(tmp_path: Path) -> None:
    spec = DemoSpec(n_labeled=30, n_unlabeled=0, n_val=2, size=64, seed=7, classes=BENCH_CLASS_NAMES)
    write_demo_dataset(tmp_path / "bench", spec)
    meta = yaml.safe_load((tmp_path / "bench" / "data.yaml").read_text())
    assert list(meta["names"].values()) == list(BENCH_CLASS_NAMES)
    rows = np.concatenate([np.loadtxt(p, ndmin=2) for p in (tmp_path / "bench/labeled/labels").glob("*.txt")])
    assert set(rows[:, 0].astype(int)) == set(range(7))


def test_the_final_test_split_is_drawn_apart_and_read_only_through_final_yaml(tmp_path: Path) -> None:
    """The final split comes from a stream of its own (no other split changes with it), is named only by final.yaml,
    and a bench on data.yaml never lists one of its images; `--final` scores on it and only on it."""
    from dataclasses import replace

    from yolossl.bench import hold_out_test
    from yolossl.data import load_data_yaml
    from yolossl.demo import GLYPHS_SPEC, final_yaml

    plain, with_final = tmp_path / "plain", tmp_path / "bundled"
    write_demo_dataset(plain, replace(TINY, n_test=3))
    write_demo_dataset(with_final, replace(TINY, n_test=3, n_final=4))
    for split in ("labeled", "val", "unlabeled", "test"):
        assert _digest(plain / split) == _digest(with_final / split), split
    finals = {p.read_bytes() for p in (with_final / "final/images").glob("*.jpg")}
    tests = {p.read_bytes() for p in (with_final / "test/images").glob("*.jpg")}
    assert len(finals) == 4 and not finals & tests
    meta = yaml.safe_load((with_final / "data.yaml").read_text())
    assert meta["test"] == "test/images" and "final" not in str(meta)
    assert yaml.safe_load(final_yaml(with_final / "data.yaml").read_text()) == {**meta, "test": "final/images"}

    development = hold_out_test(load_data_yaml(with_final / "data.yaml"), tmp_path / "dev")
    headline = hold_out_test(load_data_yaml(with_final / "final.yaml"), tmp_path / "headline")
    for split in (development, headline):  # val chooses in both, and never holds a final image
        assert not any("/final/images/" in line for line in split.val_list.read_text().splitlines())
    assert all("/test/images/" in line for line in development.test_list.read_text().splitlines())
    assert sorted(Path(p).name for p in headline.test_list.read_text().split()) == sorted(
        p.name for p in (with_final / "final/images").glob("*.jpg")
    )
    assert GLYPHS_SPEC.n_final == 1000 and GLYPHS_SPEC.n_test == 1000
    with pytest.raises(Exception, match="no final test split"):
        final_yaml(plain / "data.yaml")


def test_bench_final_refuses_a_users_data(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from yolossl.cli import app

    result = CliRunner().invoke(app, ["bench", "--final", "--data", str(tmp_path / "d.yaml")])
    assert result.exit_code != 0 and "--final is the bundled dataset's held-back test split" in result.output
