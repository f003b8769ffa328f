"""Classification SSL on its own: ImageNet-style class folders, FixMatch against labeled-only.

    train/<class>/*.jpg    labeled images, one folder per class
    unlabeled/**/*.jpg     unlabeled images, any layout
    val/<class>/*.jpg      the same class folders, for accuracy

Both arms use the same network, steps, batch and augmentation of the labeled images; FixMatch
adds the unlabeled ones. Images are resized to a small square.

    >>> result = compare_on_folders(Path("train"), Path("unlabeled"), Path("val"), FixMatchConfig(steps=500))
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from yolossl.data import IMAGE_SUFFIXES
from yolossl.errors import YolosslError
from yolossl.fixmatch.train import FixMatchConfig, StepLog, accuracy, train_fixmatch
from yolossl.images import read_image


@dataclass
class ClassificationResult:
    names: dict[int, str]
    labeled_only_accuracy: float
    fixmatch_accuracy: float
    labeled_only_seconds: float
    fixmatch_seconds: float
    history: list[StepLog]


def read_class_folders(
    root: Path, size: int, names: dict[int, str] | None = None
) -> tuple[np.ndarray, np.ndarray, dict]:
    """(images (N, size, size, 3), class ids, names) of `root/<class>/*`; classes sorted by name."""
    if not root.is_dir():
        raise YolosslError(f"{root}: folder not found")
    found = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not found:
        raise YolosslError(f"{root}: no class folders (expected {root}/<class name>/<images>)")
    if names is not None and found != list(names.values()):
        raise YolosslError(f"{root}: classes {found} differ from the training folders' {list(names.values())}")
    names = names or dict(enumerate(found))
    images, labels = [], []
    for cls, name in names.items():
        files = _images_in(root / name)
        if not files:
            raise YolosslError(f"{root / name}: class folder has no images")
        images.extend(_load(files, size))
        labels += [cls] * len(files)
    return np.stack(images), np.array(labels, dtype=np.int64), names


def read_unlabeled_folder(root: Path, size: int) -> np.ndarray:
    if not root.is_dir():
        raise YolosslError(f"{root}: folder not found")
    files = _images_in(root)
    if not files:
        raise YolosslError(f"{root}: no images")
    return np.stack(_load(files, size))


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def _load(files: list[Path], size: int) -> list[np.ndarray]:
    out = []
    for path in files:
        image = read_image(path)
        if image is None:
            raise YolosslError(f"{path}: not a readable image")
        out.append(cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA))
    return out


def compare_on_folders(
    train: Path, unlabeled: Path, val: Path, config: FixMatchConfig | None = None, size: int = 32
) -> ClassificationResult:
    """Train labeled-only and FixMatch with the same budget; return both val accuracies."""
    config = config or FixMatchConfig()
    images, labels, names = read_class_folders(train, size)
    val_images, val_labels, _ = read_class_folders(val, size, names)
    pool = read_unlabeled_folder(unlabeled, size)
    start = time.perf_counter()
    labeled_only = train_fixmatch(images, labels, None, len(names), replace(config, lambda_u=0.0))
    middle = time.perf_counter()
    semi = train_fixmatch(images, labels, pool, len(names), config)
    end = time.perf_counter()
    return ClassificationResult(
        names=names,
        labeled_only_accuracy=accuracy(labeled_only.model, val_images, val_labels),
        fixmatch_accuracy=accuracy(semi.model, val_images, val_labels),
        labeled_only_seconds=middle - start,
        fixmatch_seconds=end - middle,
        history=semi.history,
    )
