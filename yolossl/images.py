"""Reading images the way Ultralytics' trainer does, safely: decoded to BGR with EXIF applied, never past a size cap.

Every module that looks at pixels (the labeling engine, the FixMatch crops, the leakage hash, the
report's samples) reads through here: only regular files are opened (a FIFO would block), an image
whose header promises more than MAX_DECODED_PIXELS is not decoded (JPEGs are decoded at 1/2-1/8
scale instead), and `letterbox` makes the square the model takes, padded with Ultralytics' GREY.

    >>> image = read_image(Path("cam/0001.jpg"), imgsz=640)
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from yolossl._fs import NotARegularFile, special_file_kind

GREY = 114  # Ultralytics' letterbox grey: what its models see as "no content" (padding, masks, crops)
Loaded = tuple[np.ndarray | None, np.ndarray | None, tuple[int, int]]


def load_letterboxed(path: Path, imgsz: int, keep_original: bool = False) -> Loaded:
    """(original or None, letterboxed square as the model takes it or None if unreadable, decoded (h, w)).

    The square is RGB (imgsz, imgsz, 3) uint8, ready to stack into a channels-last batch.
    """
    image = read_image(path, imgsz)
    if image is None:
        return None, None, (0, 0)
    h, w = image.shape[:2]
    return (image if keep_original else None), to_rgb(letterbox(image, imgsz)), (h, w)


def to_rgb(boxed: np.ndarray) -> np.ndarray:
    """The letterboxed BGR square as RGB, the channel order Ultralytics models take (a new array:
    the letterboxed one may be the decoded original, which writers still need in BGR)."""
    return cv2.cvtColor(boxed, cv2.COLOR_BGR2RGB)


def read_image(path: Path, imgsz: int | None = None) -> np.ndarray | None:
    """BGR uint8 like Ultralytics' loaders read it (EXIF orientation applied), or None if not an image.

    With `imgsz`, an image far larger than the model's input (a 12000x9000 archive scan, say) is
    decoded at 1/2, 1/4 or 1/8 scale, which JPEG decoders do almost for free: memory stays bounded
    and nothing the model could see is lost. Boxes are normalised, so labels do not change. An
    image whose header says it would decode past MAX_DECODED_PIXELS is not decoded at all.
    """
    try:
        data = _read_file(path)
    except (OSError, NotARegularFile):
        return None
    if not data.size or _truncated_jpeg(data):
        return None
    header = image_header(data)
    scale = 1
    if header is not None:
        fitting = decode_scale(header)
        if fitting is None:
            return None
        scale = max(fitting, _scale_for_model(header, imgsz) if imgsz else 1)
    image = cv2.imdecode(data, _REDUCED[scale])
    return image if image is not None and image.size else None


def _read_file(path: Path) -> np.ndarray:
    """The file's bytes, refusing a FIFO, socket or device first: reading a FIFO waits for a writer forever."""
    kind = special_file_kind(path)
    if kind is not None:
        raise NotARegularFile(path, kind)
    return np.fromfile(path, dtype=np.uint8)


def _truncated_jpeg(data: np.ndarray) -> bool:
    """A JPEG cut short (start marker, but no end marker near its end): OpenCV would decode a grey-padded half."""
    return bytes(data[:2]) == b"\xff\xd8" and b"\xff\xd9" not in bytes(data[-1024:])


def why_unreadable(path: Path) -> str:
    """A short reason for the warning about an image that `read_image` could not read."""
    try:
        data = _read_file(path)
    except NotARegularFile as e:
        return f"not a regular file ({e.kind})"
    except PermissionError:
        return "no permission to read it"
    except OSError as e:
        return e.strerror or "cannot be opened"
    if not data.size:
        return "empty file (0 bytes)"
    if _truncated_jpeg(data):
        return "truncated JPEG (no end marker)"
    header = image_header(data)
    if header is not None and decode_scale(header) is None:
        fmt, width, height = header
        return f"{width}x{height} {fmt}, more than the {MAX_DECODED_PIXELS} pixels (8192x8192) an image may decode to"
    return "not an image (OpenCV cannot decode it)"


HEAD_BYTES = 1 << 16


def unreadable_reason(path: Path) -> str | None:
    """Why `read_image` would fail on `path`, from its header and its last bytes where they tell (None: readable).

    A pool of 100 000 camera JPEGs is checked in seconds: a known header with a decodable size and a JPEG with its
    end marker are taken as readable without decoding; anything else is decoded once to be sure.
    """
    try:
        if special_file_kind(path) is not None or path.stat().st_size == 0:
            return why_unreadable(path)
        with path.open("rb") as f:
            head = f.read(HEAD_BYTES)
            f.seek(max(0, path.stat().st_size - 1024))
            tail = f.read()
    except OSError:
        return why_unreadable(path)
    if head[:2] == b"\xff\xd8" and b"\xff\xd9" not in tail:
        return "truncated JPEG (no end marker)"
    header = image_header(head)
    if header is not None and decode_scale(header) is not None:
        return None
    return None if read_image(path, 64) is not None else why_unreadable(path)


MAX_DECODED_PIXELS = 1 << 26
"""8192x8192: the most pixels an image is decoded to, 192 MiB in BGR, in each decoding thread.

Every JPEG fits, decoded at 1/2 to 1/8 scale (the largest possible, 65535x65535, is 67.1 M pixels
at 1/8). PNG, TIFF, BMP and WebP decoders cannot scale: past this they are skipped, since a 389 KB
PNG of 20000x20000 would otherwise take 1.2 GB in each of the labeling threads at once."""

_REDUCED = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}

# Formats Pillow reads natively, by their first bytes: their size is known before anything is decoded.
_HEADER_FORMATS = (
    (b"\xff\xd8", "JPEG"),
    (b"\x89PNG", "PNG"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"RIFF", "WEBP"),
)


def image_header(data: bytes | np.ndarray) -> tuple[str, int, int] | None:
    """(format, width, height) read from the header alone; None for another format or a damaged header.

    Pillow's image classes are used directly: `Image.open` raises DecompressionBombError before
    telling a huge image's size, and with Ultralytics imported it is a patched version that looks
    for a HEIF plugin on a file it does not know (an ImportError where that is not installed).
    """
    start = bytes(data[:4])
    fmt = next((name for magic, name in _HEADER_FORMATS if start.startswith(magic)), None)
    if fmt is None:
        return None
    try:
        with _pillow_class(fmt)(io.BytesIO(data)) as header:
            width, height = header.size
    except Exception:  # Pillow's parsers raise SyntaxError, struct.error, OSError... on damaged bytes
        return None
    return fmt, width, height


def _pillow_class(fmt: str) -> Any:
    from PIL import BmpImagePlugin, JpegImagePlugin, PngImagePlugin, TiffImagePlugin, WebPImagePlugin

    return {
        "JPEG": JpegImagePlugin.JpegImageFile,
        "PNG": PngImagePlugin.PngImageFile,
        "BMP": BmpImagePlugin.BmpImageFile,
        "TIFF": TiffImagePlugin.TiffImageFile,
        "WEBP": WebPImagePlugin.WebPImageFile,
    }[fmt]


def decode_scale(header: tuple[str, int, int]) -> int | None:
    """The least of 1, 2, 4, 8 that decodes within MAX_DECODED_PIXELS (only JPEGs scale); None if none does."""
    fmt, width, height = header
    scales = (1, 2, 4, 8) if fmt == "JPEG" else (1,)
    return next((f for f in scales if width * height <= MAX_DECODED_PIXELS * f * f), None)


def _scale_for_model(header: tuple[str, int, int], imgsz: int) -> int:
    """The largest of 8, 4, 2 that keeps the long side at least twice `imgsz` (1 if none does)."""
    long_side = max(header[1:])
    return next((f for f in (8, 4, 2) if long_side / f >= 2 * imgsz), 1)


def letterbox(image: np.ndarray, imgsz: int) -> np.ndarray:
    """Resize keeping the aspect ratio and pad to a centred `imgsz` square: Ultralytics' own LetterBox,
    whose geometry `scale_boxes` inverts."""
    from ultralytics.data.augment import LetterBox

    return LetterBox(new_shape=(imgsz, imgsz), auto=False, center=True, padding_value=GREY)(image=image)
