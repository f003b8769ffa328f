from __future__ import annotations

import os
from pathlib import Path

import yaml

from yolossl._fs import fresh_partial_dir
from yolossl.data import ImageItem, load_data_yaml, scan_image_folders
from yolossl.merge import build_round_dataset, mirror_split


def _pseudo_items(tiny_dataset: Path, tmp_path: Path) -> list[ImageItem]:
    """Pool images paired with label files, as the labeling step hands them over."""
    labels = tmp_path / "pseudo"
    labels.mkdir()
    items = []
    for item in scan_image_folders([tiny_dataset / "unlabeled"]).images[:4]:
        label = labels / f"{item.id}.txt"
        label.write_text("1 0.5 0.5 0.25 0.25\n")
        items.append(ImageItem(item.id, item.path, label))
    return items


def test_round_dataset_links_images_and_labels(tiny_dataset: Path, tmp_path: Path) -> None:
    spec = load_data_yaml(tiny_dataset / "data.yaml")
    run = tmp_path / "run"
    val_images = mirror_split(spec.val_items(), run / "val", len(spec.names))
    pseudo = _pseudo_items(tiny_dataset, tmp_path)
    data_yaml = build_round_dataset(run / "round_1", spec.train_items(), pseudo, val_images, spec.names).data_yaml

    meta = yaml.safe_load(data_yaml.read_text())
    assert list(meta) == ["path", "train", "val", "names"]  # no pseudo targets: the YAML Ultralytics always got
    assert not (run / "round_1" / "pseudo_targets.json").exists()
    assert meta["names"] == spec.names
    assert all(Path(meta[k]).is_absolute() for k in ("path", "train", "val"))
    assert Path(meta["val"]) == val_images.resolve()

    dataset = run / "round_1" / "dataset"
    linked = sorted((dataset / "images").rglob("*.jpg"))
    assert len(linked) == 8 + 4
    assert all(p.is_symlink() for p in linked)  # never a copy of the pool
    for item in pseudo:
        link = dataset / "images" / "pseudo" / f"{item.id}.jpg"
        assert os.readlink(link) == str(item.path.resolve())
        label = dataset / "labels" / "pseudo" / f"{item.id}.txt"
        assert label.read_bytes() == item.label.read_bytes()
        assert os.path.samefile(label, item.label)  # our own labels are hard-linked, not copied
    for item in spec.train_items():
        assert (dataset / "labels" / "labeled" / f"{item.id}.txt").read_bytes() == item.label.read_bytes()
    assert len(list((run / "val" / "labels").glob("*.txt"))) == 6


def test_ultralytics_reads_the_round_dataset(tiny_dataset: Path, tmp_path: Path) -> None:
    """Ultralytics' own loader must find every label through the symlinks, and cache inside the run."""
    from ultralytics.cfg import get_cfg
    from ultralytics.data.build import build_yolo_dataset
    from ultralytics.data.utils import check_det_dataset

    spec = load_data_yaml(tiny_dataset / "data.yaml")
    run = tmp_path / "run"
    val_images = mirror_split(spec.val_items(), run / "val", len(spec.names))
    pseudo = _pseudo_items(tiny_dataset, tmp_path)
    data_yaml = build_round_dataset(run / "round_1", spec.train_items(), pseudo, val_images, spec.names).data_yaml

    data = check_det_dataset(str(data_yaml))
    dataset = build_yolo_dataset(get_cfg(overrides={"imgsz": 64}), data["train"], 4, data, mode="val")
    boxes = sum(len(label["cls"]) for label in dataset.labels)
    truth = sum(len(i.label.read_text().splitlines()) for i in spec.train_items())
    assert len(dataset.labels) == 12 and boxes == truth + 4
    assert list(run.rglob("*.cache"))  # the cache went into the run ...
    assert not list(tiny_dataset.rglob("*.cache"))  # ... and never into the user's dataset


def test_rebuilding_a_round_replaces_it_whole(tiny_dataset: Path, tmp_path: Path) -> None:
    spec = load_data_yaml(tiny_dataset / "data.yaml")
    run = tmp_path / "run"
    val_images = mirror_split(spec.val_items(), run / "val", len(spec.names))
    round_dir = run / "round_1"
    build_round_dataset(round_dir, spec.train_items(), _pseudo_items(tiny_dataset, tmp_path), val_images, spec.names)
    stale = round_dir / "dataset" / "labels" / "labeled.cache"
    stale.write_text("stale cache of an earlier attempt")
    (fresh_partial_dir(round_dir / "dataset") / "half.txt").write_text("")  # debris of an interrupted attempt
    build_round_dataset(round_dir, spec.train_items(), [], val_images, spec.names)
    assert not stale.exists()
    assert not (round_dir / "dataset.partial").exists()
    assert not list((round_dir / "dataset" / "images" / "pseudo").iterdir())


def test_labeled_images_can_be_oversampled_without_copies(tiny_dataset: Path, tmp_path: Path) -> None:
    spec = load_data_yaml(tiny_dataset / "data.yaml")
    val_images = mirror_split(spec.val_items(), tmp_path / "run" / "val", len(spec.names))
    built = build_round_dataset(tmp_path / "run" / "round_1", spec.train_items(), [], val_images, spec.names, 3)
    images = sorted((tmp_path / "run" / "round_1" / "dataset" / "images" / "labeled").iterdir())
    labels = sorted((tmp_path / "run" / "round_1" / "dataset" / "labels" / "labeled").iterdir())
    assert built.labeled_images == 8 and len(images) == len(labels) == 24
    assert all(p.is_symlink() for p in images)
    first = spec.train_items()[0]
    for name in (first.id, f"{first.id}~2", f"{first.id}~3"):
        link = images[0].parent / f"{name}.jpg"
        assert os.readlink(link) == str(first.path.resolve())
        assert (labels[0].parent / f"{name}.txt").read_bytes() == first.label.read_bytes()
