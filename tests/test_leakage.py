from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import pytest

from yolossl.data import load_data_yaml, scan_image_folders
from yolossl.errors import YolosslError
from yolossl.leakage import find_leaks


def _pool_with_copies(tiny_dataset: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    pool = tmp_path / "pool"
    shutil.copytree(tiny_dataset / "unlabeled", pool)
    val_a, val_b = sorted((tiny_dataset / "val" / "images").glob("*.jpg"))[:2]
    shutil.copyfile(val_a, pool / "exact_copy.jpg")
    image = cv2.imread(str(val_b))
    cv2.imwrite(str(pool / "reencoded.png"), cv2.resize(image, (96, 96)))  # another size and format
    return pool, val_a, val_b


def test_hash_finds_byte_identical_copies_only(tiny_dataset: Path, tmp_path: Path) -> None:
    pool, val_a, _ = _pool_with_copies(tiny_dataset, tmp_path)
    items = scan_image_folders([pool]).images
    leaks = find_leaks(items, load_data_yaml(tiny_dataset / "data.yaml").val_items(), "hash")
    exact = next(i.id for i in items if i.path.name == "exact_copy.jpg")
    assert leaks == {exact: str(val_a)}


def test_phash_also_finds_reencoded_copies(tiny_dataset: Path, tmp_path: Path) -> None:
    pytest.importorskip("imagehash", reason="phash is an optional extra: pip install 'yolossl[leakage]'")
    pool, val_a, val_b = _pool_with_copies(tiny_dataset, tmp_path)
    items = scan_image_folders([pool]).images
    leaks = find_leaks(items, load_data_yaml(tiny_dataset / "data.yaml").val_items(), "phash")
    by_name = {i.path.name: i.id for i in items}
    assert leaks == {by_name["exact_copy.jpg"]: str(val_a), by_name["reencoded.png"]: str(val_b)}


def test_off_and_bad_modes(tiny_dataset: Path) -> None:
    val = load_data_yaml(tiny_dataset / "data.yaml").val_items()
    assert find_leaks(val, val, "off") == {}
    assert len(find_leaks(val, val, "hash")) == len(val)  # every val image is its own copy
    with pytest.raises(YolosslError, match="leakage must be one of"):
        find_leaks(val, val, "fuzzy")
