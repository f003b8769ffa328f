"""The one in-memory shape every format converts to and from: images with their boxes.

Boxes are corners in pixels of the image as stored (before any EXIF rotation, as annotation tools
show it), class ids index `Annotations.names`. Pseudo-labels also carry a score and a status
(kept / uncertain); human labels have neither.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

import numpy as np

from yolossl.boxes import xywhn_to_xyxy, xyxy_to_xywhn
from yolossl.errors import YolosslError, first_line
from yolossl.export.files import require_regular_file

logger = logging.getLogger(__name__)


@dataclass
class AnnotatedImage:
    """One image and its boxes."""

    path: Path
    name: str  # the file name the formats refer to (unique within an export)
    width: int
    height: int
    classes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    xyxy: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    scores: np.ndarray | None = None
    status: list[str] | None = None

    def __post_init__(self) -> None:
        n = len(self.classes)
        if self.xyxy.shape != (n, 4):
            raise ValueError(f"xyxy must be ({n}, 4), got {self.xyxy.shape}")
        if self.scores is not None and self.scores.shape != (n,):
            raise ValueError(f"scores must be ({n},), got {self.scores.shape}")
        if self.status is not None and len(self.status) != n:
            raise ValueError(f"status must have {n} entries, got {len(self.status)}")

    def __len__(self) -> int:
        return len(self.classes)

    def yolo_rows(self) -> np.ndarray:
        """(N, 5) `class xc yc w h`, normalised: the YOLO label of this image."""
        xywhn = xyxy_to_xywhn(self.xyxy, (float(self.height), float(self.width)))
        return np.concatenate([self.classes[:, None].astype(np.float64), xywhn], axis=1)

    @classmethod
    def from_yolo(
        cls,
        path: Path,
        name: str,
        size: tuple[int, int],
        rows: np.ndarray,
        scores: np.ndarray | None = None,
        status: list[str] | None = None,
    ) -> AnnotatedImage:
        """From normalised YOLO rows (N, 5) and the image's (width, height)."""
        w, h = size
        rows = np.asarray(rows, dtype=np.float64).reshape(-1, 5)
        xyxy = xywhn_to_xyxy(rows[:, 1:5]) * np.array([w, h, w, h], dtype=np.float64)
        return cls(path, name, w, h, rows[:, 0].astype(np.int64), xyxy, scores, status)


@dataclass
class Annotations:
    """A set of annotated images and the class names their ids refer to."""

    names: dict[int, str]
    images: list[AnnotatedImage]
    model_version: str = ""  # where predictions came from (run/round); empty for human labels

    @property
    def is_prediction(self) -> bool:
        return any(image.scores is not None for image in self.images)


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) as decoders show the image: EXIF rotations by 90 degrees swap the sides.

    Only the header is read; a FIFO, a non-image or a decompression bomb is one line naming the file.
    """
    from PIL import Image

    require_regular_file(path, "an image")
    try:
        with Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(0x0112, 1)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise YolosslError(f"{path}: cannot read the image's size ({first_line(e)})") from e
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def with_distinct_stems(images: list[AnnotatedImage], source: Path) -> list[AnnotatedImage]:
    """The images renamed where needed so that no two in one folder share a stem (said in a warning).

    Ultralytics finds an image's label by its path without suffix (`images/x/a.jpg` ->
    `labels/x/a.txt`), and VOC names each annotation file so: `x/a.jpg` and `x/a.png` would share
    one label file and one would be lost. `x/a.jpg` and `y/a.jpg` do not clash.
    """
    used: set[str] = set()
    result, renamed = [], []
    for image in images:
        original = PurePosixPath(image.name)
        name = original
        k = 0
        while name.with_suffix("").as_posix() in used:
            k += 1
            name = original.with_name(f"{original.stem}-{k}{original.suffix}")
        used.add(name.with_suffix("").as_posix())
        if name != original:
            renamed.append(f"{image.name} -> {name}")
        result.append(replace(image, name=name.as_posix()))
    if renamed:
        logger.warning(
            "%s: %d images share a file stem with another; renamed so each has its own label file: %s",
            source,
            len(renamed),
            first_few(renamed),
        )
    return result


def first_few(items: list[str], limit: int = 5) -> str:
    """The first `limit` items, comma-separated, with ', ...' when there are more: enough for one warning line."""
    return ", ".join(items[:limit]) + (", ..." if len(items) > limit else "")
