"""A label-bound scene: ten look-alike digit glyphs, each drawn in its own font, size, slant and colour.

`yolossl bench --dataset glyphs` draws it (see `yolossl.demo.GLYPHS_SPEC`). Why digits: 3/8, 5/6,
1/7, 0/6/9 look alike, and OpenCV's eight Hershey fonts (upright and italic, always present, so every
machine draws the same images) give each class natural variation in shape that a hundred labeled
images cannot cover. Letters drawn the same way are unlabeled distractors, so strokes alone do not
mean an object. Objects span several sizes on a textured background.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

GLYPH_CLASSES = ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9")
_DISTRACTORS = "ACEHKMNTUVWXYZ"
_FONTS = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_PLAIN,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
    cv2.FONT_HERSHEY_COMPLEX_SMALL,
    cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
    cv2.FONT_HERSHEY_SCRIPT_COMPLEX,
)
_MIN_SIDE, _MAX_SIDE = 12, 36  # glyph height in pixels at the dataset's image size (96)


def draw_glyph_scene(
    rng: np.random.Generator, size: int, classes: tuple[str, ...] = GLYPH_CLASSES
) -> tuple[np.ndarray, list[tuple[int, float, float, float, float]]]:
    """One image and its YOLO labels (class, xc, yc, w, h normalised): 2–5 digits, 0–2 unlabeled letters."""
    image = _textured_background(rng, size)
    occupied = np.zeros((size, size), bool)
    labels = []
    for _ in range(int(rng.integers(0, 3))):
        _draw_glyph(rng, image, occupied, str(rng.choice(list(_DISTRACTORS))))
    for _ in range(int(rng.integers(2, 6))):
        cls = int(rng.integers(len(classes)))
        box = _draw_glyph(rng, image, occupied, classes[cls])
        if box is not None:
            x0, y0, x1, y1 = box
            labels.append((cls, (x0 + x1) / 2 / size, (y0 + y1) / 2 / size, (x1 - x0) / size, (y1 - y0) / size))
    image = cv2.GaussianBlur(image, (3, 3), float(rng.uniform(0.1, 0.8)))
    noise = rng.normal(0, rng.uniform(2, 8), image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8), labels


def _textured_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Smooth colour noise at two scales plus a few faint lines: texture without objects."""
    image = np.zeros((size, size, 3), np.float32)
    for cells, weight in ((3, 0.6), (int(rng.integers(8, 16)), 0.4)):
        coarse = rng.uniform(0, 255, (cells, cells, 3)).astype(np.float32)
        image += weight * cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    for _ in range(int(rng.integers(0, 4))):
        p0, p1 = (tuple(int(v) for v in rng.integers(0, size, 2)) for _ in range(2))
        cv2.line(image, p0, p1, tuple(float(v) for v in rng.uniform(0, 255, 3)), 1, cv2.LINE_AA)
    return np.clip(image, 0, 255)


def _draw_glyph(
    rng: np.random.Generator, image: np.ndarray, occupied: np.ndarray, text: str
) -> tuple[int, int, int, int] | None:
    """Draw `text` slanted, rotated and stretched where nothing else is; return its tight box (None: no room)."""
    mask = _glyph_mask(rng, text, int(rng.integers(_MIN_SIDE, _MAX_SIDE + 1)))
    h, w = mask.shape
    size = image.shape[0]
    if h >= size or w >= size:
        return None
    for _ in range(20):
        y, x = int(rng.integers(0, size - h)), int(rng.integers(0, size - w))
        if not occupied[y : y + h, x : x + w].any():
            break
    else:
        return None
    occupied[max(0, y - 1) : y + h + 1, max(0, x - 1) : x + w + 1] = True
    region = image[y : y + h, x : x + w]
    colour = _contrasting(rng, region.mean((0, 1)))
    alpha = mask[..., None]
    region[:] = region * (1 - alpha) + colour * alpha
    ys, xs = np.nonzero(mask > 0.3)
    return x + int(xs.min()), y + int(ys.min()), x + int(xs.max()) + 1, y + int(ys.max()) + 1


def _glyph_mask(rng: np.random.Generator, text: str, height: int) -> np.ndarray:
    """The glyph as an anti-aliased alpha mask in [0, 1], `height` pixels tall before the warp, cropped tight."""
    font = int(rng.choice(_FONTS)) | (cv2.FONT_ITALIC if rng.random() < 0.3 else 0)
    scale = 2.0
    thickness = int(rng.integers(2, 7))
    (tw, th), base = cv2.getTextSize(text, font, scale, thickness)
    pad = 4 * thickness
    canvas = np.zeros((th + base + 2 * pad, tw + 2 * pad), np.uint8)
    cv2.putText(canvas, text, (pad, pad + th), font, scale, 255, thickness, cv2.LINE_AA)
    angle = math.radians(rng.uniform(-15, 15))
    shear = rng.uniform(-0.25, 0.25)
    stretch = rng.uniform(0.75, 1.3)
    linear = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]) @ np.array(
        [[stretch, shear], [0, 1.0]]
    )
    ys, xs = np.nonzero(canvas)
    glyph_h = ys.max() - ys.min() + 1
    linear *= height / glyph_h
    corners = np.array([[0, 0], [canvas.shape[1], 0], [0, canvas.shape[0]], [canvas.shape[1], canvas.shape[0]]])
    moved = corners @ linear.T
    offset = -moved.min(0)
    out_w, out_h = (np.ceil(moved.max(0) + offset)).astype(int) + 1
    warped = cv2.warpAffine(
        canvas, np.hstack([linear, offset[:, None]]), (int(out_w), int(out_h)), flags=cv2.INTER_AREA
    )
    ys, xs = np.nonzero(warped > 32)
    tight = warped[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    return tight.astype(np.float32) / 255.0


def _contrasting(rng: np.random.Generator, under: np.ndarray) -> np.ndarray:
    """A random colour at least 80 grey levels away from the mean colour underneath."""
    for _ in range(20):
        colour = rng.uniform(0, 255, 3)
        if np.abs(colour - under).mean() >= 80:
            return colour
    return 255.0 - under
