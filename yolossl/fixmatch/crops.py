"""Object crops for the classification head: a box, a little context, a small square.

A box at the image edge is padded with grey rather than shifted, so the object stays centred; a
tiny box still gives a crop (at least 2 px before resizing); grayscale images become 3 channels.
Labeled crops can be jittered (box shifted and scaled a little) so that the head learns from
boxes as loose as a detector's.

    >>> crops = extract_crops(image, boxes_xyxy, size=32)            # (N, 32, 32, 3) uint8
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from yolossl.data import ImageItem
from yolossl.images import GREY
from yolossl.labels import clean_label_file

CONTEXT = 0.15  # of the box size, on each side: the head sees a little of the surroundings


def extract_crops(
    image: np.ndarray,
    xyxy: np.ndarray,
    size: int = 32,
    jitter: float = 0.0,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """(N, size, size, 3) uint8 crops of `image` (BGR or grayscale) at `xyxy` (N, 4) pixel boxes."""
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    boxes = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    if jitter and len(boxes):
        boxes = _jitter(boxes, jitter, rng or np.random.default_rng())
    crops = np.empty((len(boxes), size, size, 3), dtype=np.uint8)
    for k, box in enumerate(boxes):
        crops[k] = _crop(image, box, size)
    return crops


def _jitter(boxes: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    w = (boxes[:, 2] - boxes[:, 0])[:, None]
    h = (boxes[:, 3] - boxes[:, 1])[:, None]
    shift = rng.uniform(-amount, amount, (len(boxes), 2)) * np.hstack([w, h])
    scale = rng.uniform(1 - amount, 1 + amount, (len(boxes), 1))
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2 + shift
    half = np.hstack([w, h]) * scale / 2
    return np.hstack([centre - half, centre + half])


def _crop(image: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    x1, y1, x2, y2 = box
    side = max(x2 - x1, y2 - y1, 2.0) * (1 + 2 * CONTEXT)  # square, so the aspect ratio survives
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left, top = int(np.floor(cx - side / 2)), int(np.floor(cy - side / 2))
    right, bottom = left + int(np.ceil(side)), top + int(np.ceil(side))
    h, w = image.shape[:2]
    canvas = np.full((bottom - top, right - left, 3), GREY, dtype=np.uint8)
    sx1, sy1, sx2, sy2 = max(left, 0), max(top, 0), min(right, w), min(bottom, h)
    if sx2 > sx1 and sy2 > sy1:
        canvas[sy1 - top : sy2 - top, sx1 - left : sx2 - left] = image[sy1:sy2, sx1:sx2]
    return cv2.resize(
        canvas, (size, size), interpolation=cv2.INTER_AREA if canvas.shape[0] > size else cv2.INTER_LINEAR
    )


def labeled_box_crops(
    items: Sequence[ImageItem], n_classes: int, size: int = 32, jitter: float = 0.1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Crops of every ground-truth box of a labeled split (jittered), and their class ids."""
    from yolossl.images import read_image

    rng = np.random.default_rng(seed)
    crops, labels = [np.zeros((0, size, size, 3), np.uint8)], [np.zeros(0, np.int64)]
    for item in items:
        if item.label is None:
            continue
        rows = clean_label_file(item.label, n_classes).rows
        image = read_image(item.path) if len(rows) else None
        if image is None:
            continue
        h, w = image.shape[:2]
        xc, yc, bw, bh = rows[:, 1] * w, rows[:, 2] * h, rows[:, 3] * w, rows[:, 4] * h
        xyxy = np.stack([xc - bw / 2, yc - bh / 2, xc + bw / 2, yc + bh / 2], axis=1)
        crops.append(extract_crops(image, xyxy, size, jitter, rng))
        labels.append(rows[:, 0].astype(np.int64))
    return np.concatenate(crops), np.concatenate(labels)
