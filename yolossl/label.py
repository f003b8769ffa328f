"""Pseudo-labeling: predict on a pool of images, keep confident boxes, write YOLO labels and a record.

Images are decoded in background threads while the model works on the previous batch, and
results go to disk as they come, so memory does not grow with the pool. An image that cannot be
read is skipped with a warning that names it; it never stops the run.

    >>> stats = pseudo_label(Path("best.pt"), pool.images, Path("round_1/pseudo"), PredictSettings(conf=0.5))
"""

from __future__ import annotations

import csv
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from yolossl._fs import fresh_partial_dir, replace_dir
from yolossl.data import ImageItem

logger = logging.getLogger(__name__)

RECORD_COLUMNS = ("image_id", "image", "class_id", "class_name", "score", "x_center", "y_center", "width", "height")


@dataclass(frozen=True)
class PredictSettings:
    """How to run the detector on the pool; names follow Ultralytics' predict arguments."""

    conf: float = 0.5
    imgsz: int = 640
    batch: int = 16
    device: str = "cpu"


@dataclass
class LabelStats:
    """What a labeling pass kept: the numbers of the round summary."""

    images: int = 0
    images_with_boxes: int = 0
    boxes: int = 0
    boxes_per_class: dict[int, int] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Prediction:
    """The detector's boxes for one image: class ids, scores and normalised `xc yc w h`."""

    item: ImageItem
    classes: np.ndarray
    scores: np.ndarray
    xywhn: np.ndarray


def pseudo_label(
    weights: Path,
    images: Sequence[ImageItem],
    out_dir: Path,
    settings: PredictSettings,
    names: dict[int, str],
    on_progress: Callable[[int], None] | None = None,
) -> LabelStats:
    """Write `out_dir/labels/<id>.txt` for every readable image and `out_dir/record.csv` of every kept box.

    Images whose boxes all score below `settings.conf` get an empty label file, so "looked at,
    found nothing" is never confused with "not looked at". The folder appears complete or not at
    all: it is written under a temporary name and renamed at the end.
    """
    partial = fresh_partial_dir(out_dir)
    (partial / "labels").mkdir()
    stats = LabelStats()
    per_class: Counter[int] = Counter()
    with open(partial / "record.csv", "w", newline="", encoding="utf-8") as record_file:
        record = csv.writer(record_file)
        record.writerow(RECORD_COLUMNS)
        for prediction in predict_images(weights, images, settings, stats.unreadable, on_progress):
            write_yolo_labels(partial / "labels" / f"{prediction.item.id}.txt", prediction.classes, prediction.xywhn)
            for cls, score, (x, y, w, h) in zip(prediction.classes, prediction.scores, prediction.xywhn, strict=True):
                record.writerow(
                    [
                        prediction.item.id,
                        prediction.item.path,
                        int(cls),
                        names.get(int(cls), str(cls)),
                        f"{score:.5f}",
                        f"{x:.6f}",
                        f"{y:.6f}",
                        f"{w:.6f}",
                        f"{h:.6f}",
                    ]
                )
            stats.images += 1
            stats.images_with_boxes += bool(len(prediction.classes))
            stats.boxes += len(prediction.classes)
            per_class.update(int(c) for c in prediction.classes)
    stats.boxes_per_class = {cls: per_class.get(cls, 0) for cls in names}
    replace_dir(partial, out_dir)
    return stats


def write_yolo_labels(path: Path, classes: np.ndarray, xywhn: np.ndarray) -> None:
    """One `class xc yc w h` line per box, 6 decimals; an empty file for no boxes."""
    lines = [f"{int(c)} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n" for c, (x, y, w, h) in zip(classes, xywhn, strict=True)]
    path.write_text("".join(lines), encoding="utf-8")


def predict_images(
    weights: Path,
    images: Sequence[ImageItem],
    settings: PredictSettings,
    unreadable: list[str],
    on_progress: Callable[[int], None] | None = None,
) -> Iterator[Prediction]:
    """Yield the kept boxes of each readable image, in order; unreadable paths are appended to `unreadable`."""
    from yolossl.train import load_model

    model = load_model(weights)
    batches = [images[i : i + settings.batch] for i in range(0, len(images), settings.batch)]
    for batch, decoded in _prefetch(batches):
        readable = [(item, image) for item, image in zip(batch, decoded, strict=True) if image is not None]
        for item, image in zip(batch, decoded, strict=True):
            if image is None:
                logger.warning("%s: cannot be read as an image, skipped", item.path)
                unreadable.append(str(item.path))
        if readable:
            results = model.predict(
                [image for _, image in readable],
                conf=settings.conf,
                imgsz=settings.imgsz,
                device=settings.device,
                batch=len(readable),
                verbose=False,
            )
            for (item, _), result in zip(readable, results, strict=True):
                boxes = result.boxes
                yield Prediction(
                    item=item,
                    classes=boxes.cls.cpu().numpy().astype(np.int64),
                    scores=boxes.conf.cpu().numpy().astype(np.float64),
                    xywhn=boxes.xywhn.cpu().numpy().astype(np.float64),
                )
        if on_progress:
            on_progress(len(batch))


def _prefetch(batches: list[Sequence[ImageItem]]) -> Iterator[tuple[Sequence[ImageItem], list[np.ndarray | None]]]:
    """Decode batch i+1 in background threads while the caller works on batch i."""
    with ThreadPoolExecutor(max_workers=max(2, min(8, os.cpu_count() or 2))) as pool:

        def submit(batch: Sequence[ImageItem]) -> list[Future]:
            return [pool.submit(_read_image, item.path) for item in batch]

        pending = submit(batches[0]) if batches else []
        for i, batch in enumerate(batches):
            current = pending
            pending = submit(batches[i + 1]) if i + 1 < len(batches) else []
            yield batch, [future.result() for future in current]


def _read_image(path: Path) -> np.ndarray | None:
    """BGR uint8 (EXIF orientation applied), or None when the file is not a readable image."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError:
        return None
    return cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
