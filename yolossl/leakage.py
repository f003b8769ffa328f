"""The leakage guard: unlabeled images that are copies of val images never reach training.

A pseudo-labeled copy of a val image would be trained on and then "predicted well" on val: the
metric would reward memorising it. Camera archives and scraped folders contain such copies more
often than one would think. `hash` finds byte-identical files (cheap: only files of a val file's
size are hashed); `phash` also finds re-encoded or resized copies by perceptual hash (decodes
every pool image once; needs `pip install 'yolossl[leakage]'`).

    >>> leaks = find_leaks(pool.images, spec.val_items(), mode="hash")   # {pool id: val path}
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from yolossl._fs import NotARegularFile, open_regular_file, read_regular_file, special_file_kind
from yolossl.config import LEAKAGE_MODES
from yolossl.data import ImageItem
from yolossl.errors import YolosslError

logger = logging.getLogger(__name__)

PHASH_MAX_DISTANCE = 4  # of 64 bits: near-identical (re-encoded, resized), not merely similar


def find_leaks(pool: Sequence[ImageItem], val: Sequence[ImageItem], mode: str = "hash") -> dict[str, str]:
    """Pool images that duplicate a val image: {pool image id: the val image's path}."""
    if mode not in LEAKAGE_MODES:
        raise YolosslError(f"leakage must be one of {', '.join(LEAKAGE_MODES)}, got {mode!r}")
    if mode == "off" or not val:
        return {}
    leaks = _identical_files(pool, val)
    if mode == "phash":
        leaks.update(_near_identical_images([p for p in pool if p.id not in leaks], val))
    return leaks


def _identical_files(pool: Sequence[ImageItem], val: Sequence[ImageItem]) -> dict[str, str]:
    by_size: dict[int, list[Path]] = {}
    for item in val:
        size = _size(item.path)
        if size is not None:
            by_size.setdefault(size, []).append(item.path)
    digests: dict[str, str] = {}
    leaks = {}
    for item in pool:
        candidates = by_size.get(_size(item.path) or -1)
        if not candidates:
            continue
        digest = _sha1(item.path)
        for val_path in candidates:
            key = str(val_path)
            if key not in digests:
                digests[key] = _sha1(val_path)
            if digest is not None and digest == digests[key]:
                leaks[item.id] = key
                break
    return leaks


def _near_identical_images(pool: Sequence[ImageItem], val: Sequence[ImageItem]) -> dict[str, str]:
    try:
        import imagehash
        from PIL import Image

        from yolossl.images import decode_scale, image_header
    except ImportError as e:
        raise YolosslError("leakage 'phash' needs imagehash: pip install 'yolossl[leakage]'") from e

    def phash(path: Path) -> int | None:
        try:
            data = read_regular_file(path)
            header = image_header(data)
            if header is not None and decode_scale(header) is None:
                return None  # too large to decode: the labeling step skips it too, with a warning
            with Image.open(io.BytesIO(data)) as image:
                return int(str(imagehash.phash(image)), 16)
        except (OSError, ValueError, ImportError, NotARegularFile, Image.DecompressionBombError):
            return None  # unreadable images are reported by the labeling step (ImportError: Ultralytics' HEIF hunt)

    val_hashes = [(phash(v.path), str(v.path)) for v in val]
    known = [(h, p) for h, p in val_hashes if h is not None]
    if not known:
        return {}
    table = np.array([h for h, _ in known], dtype=np.uint64)
    leaks = {}
    for item in pool:
        h = phash(item.path)
        if h is None:
            continue
        distances = np.array([bin(x).count("1") for x in np.bitwise_xor(table, np.uint64(h)).tolist()])
        nearest = int(distances.argmin())
        if distances[nearest] <= PHASH_MAX_DISTANCE:
            leaks[item.id] = known[nearest][1]
    return leaks


def _size(path: Path) -> int | None:
    """The size of a regular file; None for what cannot be hashed (a FIFO is named in a warning: it is never read)."""
    kind = special_file_kind(path)
    if kind is not None:
        logger.warning("%s: not a regular file (%s), left out of the leakage check", path, kind)
        return None
    try:
        return path.stat().st_size
    except OSError:
        return None


def _sha1(path: Path) -> str | None:
    digest = hashlib.sha1()
    try:
        with open_regular_file(path) as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except (OSError, NotARegularFile):
        return None
    return digest.hexdigest()
