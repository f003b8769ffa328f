"""The bundled demo dataset: procedural shapes, made on the spot, no download.

Five shape classes in random colours on cluttered, textured backgrounds. Colour says nothing
about the class, and unlabeled distractor strokes look like parts of shapes, so a nano model
trained from scratch on the 100 labeled images learns the task only partly: there is room for
the unlabeled pool to help. Everything is drawn from one seed, so the dataset is the same on
every machine.

    >>> data_yaml = ensure_demo_dataset("datasets/demo")
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from yolossl.config import CycleConfig
from yolossl.errors import YolosslError
from yolossl.glyphs import GLYPH_CLASSES, draw_glyph_scene

logger = logging.getLogger(__name__)

CLASS_NAMES = ("circle", "square", "triangle", "cross", "ring")
# The benchmark adds look-alikes a nano model confuses at small sizes: hexagon/circle, star/cross.
BENCH_CLASS_NAMES = (*CLASS_NAMES, "hexagon", "star")
DEMO_DIR = Path("datasets/demo")
BENCH_DIR = Path("datasets/bench")
_VERSION = 3  # bump when the drawing changes, so stale copies are rebuilt


@dataclass(frozen=True)
class DemoSpec:
    """Sizes of the demo splits; the defaults are the bundled demo."""

    n_labeled: int = 100
    n_unlabeled: int = 1000
    n_val: int = 200
    size: int = 128
    seed: int = 0
    classes: tuple[str, ...] = CLASS_NAMES
    scene: str = "shapes"
    """shapes (`draw_scene`) or glyphs (`yolossl.glyphs`: ten look-alike digits, label-bound)."""
    n_test: int = 0
    """A `test:` split, drawn from a random stream of its own: the other splits are the same with or without it."""
    n_final: int = 0
    """A final test split (`final/`, named as `test:` by `final.yaml`), from a stream of its own again: read only by
    headline runs (`yolossl bench --final`), never to choose anything; `test:` is the development test split."""


# The benchmark dataset of `yolossl bench`: every training image labeled (the bench hides labels
# itself), seven classes with look-alikes, its own seed.
BENCH_SPEC = DemoSpec(n_labeled=1000, n_unlabeled=0, n_val=200, seed=7, classes=BENCH_CLASS_NAMES)
# The label-bound benchmark (`yolossl bench --dataset glyphs`): ten look-alike digits whose variety
# a hundred labels cannot cover; small images so that every arm fits a CPU budget.
GLYPHS_DIR = Path("datasets/glyphs")
GLYPHS_SPEC = DemoSpec(
    n_labeled=1100,
    n_unlabeled=0,
    n_val=150,
    size=96,
    seed=11,
    classes=GLYPH_CLASSES,
    scene="glyphs",
    n_test=1000,
    n_final=1000,
)
FINAL_YAML = "final.yaml"
"""Beside a bundled bench's data.yaml: the same splits, its final test split as `test:`."""
OWN_STREAMS = {"test": 1, "final": 2}
"""Splits drawn from a random stream of their own ([seed, k]): adding one changes no other split."""


def ensure_demo_dataset(root: str | Path = DEMO_DIR, spec: DemoSpec = DemoSpec()) -> Path:
    """Return `root/data.yaml`, building the dataset first if it is missing or stale.

    The folder is built in a temporary sibling and renamed into place, so an interrupted build
    never leaves a half-written dataset behind.
    """
    root = Path(root)
    data_yaml = root / "data.yaml"
    if _is_current(root, spec):
        return data_yaml
    if root.exists():
        logger.info("Rebuilding the demo dataset in %s (made by another version)", root)
        shutil.rmtree(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
    try:
        write_demo_dataset(tmp, spec)
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return data_yaml


def ensure_bench_dataset(root: str | Path = BENCH_DIR) -> Path:
    """The `yolossl bench` dataset (see BENCH_SPEC), built once; returns its data YAML."""
    return ensure_demo_dataset(root, BENCH_SPEC)


def ensure_glyphs_dataset(root: str | Path = GLYPHS_DIR) -> Path:
    """The label-bound `yolossl bench --dataset glyphs` dataset (see GLYPHS_SPEC), built once; returns its data YAML."""
    return ensure_demo_dataset(root, GLYPHS_SPEC)


def final_yaml(data_yaml: Path) -> Path:
    """A bundled bench's data YAML with its final test split as `test:` (`DemoSpec.n_final`)."""
    final = data_yaml.with_name(FINAL_YAML)
    if not final.is_file():
        raise YolosslError(f"{data_yaml.parent}: this bundled dataset has no final test split")
    return final


def write_demo_dataset(root: Path, spec: DemoSpec = DemoSpec()) -> None:
    """Draw every split into `root` and write its data YAML.

    The unlabeled pool is a flat folder of images; its true labels go to `unlabeled_truth/`,
    a folder no data YAML points at, so benchmarks can score pseudo-labels without the tool
    ever seeing them.
    """
    rng = np.random.default_rng(spec.seed)
    splits = {
        "labeled": (spec.n_labeled, root / "labeled/images", root / "labeled/labels"),
        "val": (spec.n_val, root / "val/images", root / "val/labels"),
        "unlabeled": (spec.n_unlabeled, root / "unlabeled", root / "unlabeled_truth"),
    }
    if spec.n_test:
        splits["test"] = (spec.n_test, root / "test/images", root / "test/labels")
    if spec.n_final:
        splits["final"] = (spec.n_final, root / "final/images", root / "final/labels")
    streams = {split: np.random.default_rng([spec.seed, k]) for split, k in OWN_STREAMS.items()}
    for split, (count, image_dir, label_dir) in splits.items():
        image_dir.mkdir(parents=True, exist_ok=True)
        label_dir.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            draw = draw_glyph_scene if spec.scene == "glyphs" else draw_scene
            image, labels = draw(streams.get(split, rng), spec.size, spec.classes)
            stem = f"{split}_{i:05d}"
            cv2.imwrite(str(image_dir / f"{stem}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 92])
            (label_dir / f"{stem}.txt").write_text(
                "".join(f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n" for c, x, y, w, h in labels)
            )
    meta = {
        "train": "labeled/images",
        "val": "val/images",
        **({"test": "test/images"} if spec.n_test else {}),
        "names": dict(enumerate(spec.classes)),
    }
    (root / "data.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    if spec.n_final:
        (root / FINAL_YAML).write_text(yaml.safe_dump({**meta, "test": "final/images"}, sort_keys=False))
    (root / ".demo_version").write_text(f"{_VERSION} {spec}\n")


def _is_current(root: Path, spec: DemoSpec) -> bool:
    stamp = root / ".demo_version"
    return stamp.is_file() and stamp.read_text().strip() == f"{_VERSION} {spec}"


def draw_scene(
    rng: np.random.Generator, size: int, classes: tuple[str, ...] = CLASS_NAMES
) -> tuple[np.ndarray, list[tuple[int, float, float, float, float]]]:
    """Draw one image and return it with its YOLO labels (class, xc, yc, w, h normalised)."""
    image = _background(rng, size)
    _draw_distractors(rng, image)
    placed: list[tuple[int, int, int, int]] = []
    labels = []
    for _ in range(int(rng.integers(2, 7))):
        cls = int(rng.integers(len(classes)))
        box = _place(rng, size, placed)
        if box is None:
            continue
        placed.append(box)
        x0, y0, x1, y1 = _draw_shape(rng, image, classes[cls], box)
        labels.append((cls, (x0 + x1) / 2 / size, (y0 + y1) / 2 / size, (x1 - x0) / size, (y1 - y0) / size))
    image = cv2.GaussianBlur(image, (3, 3), float(rng.uniform(0.1, 0.9)))
    noise = rng.normal(0, rng.uniform(3, 10), image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8), labels


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Low-frequency coloured texture: smooth noise on a random gradient."""
    coarse = rng.uniform(0, 255, (4, 4, 3)).astype(np.float32)
    texture = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    base = rng.uniform(40, 200, 3)
    image = 0.55 * base + 0.45 * texture
    return np.clip(image, 0, 255)


def _draw_distractors(rng: np.random.Generator, image: np.ndarray) -> None:
    """Unlabeled strokes and arcs: parts of shapes, so edges alone do not mean an object."""
    size = image.shape[0]
    for _ in range(int(rng.integers(2, 7))):
        color = _colour(rng)
        if rng.random() < 0.5:
            p0 = tuple(int(v) for v in rng.integers(0, size, 2))
            p1 = tuple(int(v) for v in rng.integers(0, size, 2))
            cv2.line(image, p0, p1, color, int(rng.integers(1, 3)), cv2.LINE_AA)
        else:
            center = tuple(int(v) for v in rng.integers(0, size, 2))
            radius = int(rng.integers(5, 16))
            start = float(rng.uniform(0, 360))
            cv2.ellipse(image, center, (radius, radius), 0, start, start + rng.uniform(60, 150), color, 2, cv2.LINE_AA)


def _colour(rng: np.random.Generator) -> tuple[float, float, float]:
    return tuple(float(v) for v in rng.uniform(0, 255, 3))


def _place(
    rng: np.random.Generator, size: int, placed: list[tuple[int, int, int, int]]
) -> tuple[int, int, int, int] | None:
    """A square box of 12–34 px that overlaps no placed box by more than a sliver."""
    for _ in range(20):
        side = int(rng.integers(12, 35))
        x0, y0 = (int(v) for v in rng.integers(0, size - side, 2))
        box = (x0, y0, x0 + side, y0 + side)
        if all(_iou(box, other) < 0.1 for other in placed):
            return box
    return None


def _iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def _draw_shape(
    rng: np.random.Generator, image: np.ndarray, name: str, box: tuple[int, int, int, int]
) -> tuple[float, float, float, float]:
    """Draw the shape `name` inside `box`, rotated at random; return the drawn shape's tight extent."""
    x0, y0, x1, y1 = box
    cx, cy, r = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2
    color = _colour(rng)
    if name == "circle":
        cv2.circle(image, (round(cx), round(cy)), round(r), color, -1, cv2.LINE_AA)
        return float(x0), float(y0), float(x1), float(y1)
    if name == "ring":
        thickness = max(2, round(r * 0.35))
        cv2.circle(image, (round(cx), round(cy)), round(r - thickness / 2), color, thickness, cv2.LINE_AA)
        return float(x0), float(y0), float(x1), float(y1)
    polygon = np.round(_polygon(name, cx, cy, r, rng.uniform(0, 2 * math.pi)))
    cv2.fillPoly(image, [polygon.astype(np.int32)], color, cv2.LINE_AA)
    (px0, py0), (px1, py1) = polygon.min(0), polygon.max(0) + 1
    return float(px0), float(py0), float(px1), float(py1)


def _polygon(name: str, cx: float, cy: float, r: float, angle: float) -> np.ndarray:
    """Vertices of a rotated shape, scaled so that its extent fills the box of half-side r."""
    if name == "square":
        unit = np.array([(-1, -1), (1, -1), (1, 1), (-1, 1)], float)
    elif name == "triangle":
        unit = np.array([(math.cos(a), math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)])
    elif name == "hexagon":
        unit = np.array([(math.cos(k * math.pi / 3), math.sin(k * math.pi / 3)) for k in range(6)])
    elif name == "star":  # five points, inner radius 0.45
        radii = [1.0 if k % 2 == 0 else 0.45 for k in range(10)]
        unit = np.array(
            [
                (r * math.cos(k * math.pi / 5 - math.pi / 2), r * math.sin(k * math.pi / 5 - math.pi / 2))
                for k, r in enumerate(radii)
            ]
        )
    else:  # cross: a plus sign of arm width 0.5
        w = 0.3
        unit = np.array(
            [
                (-w, -1),
                (w, -1),
                (w, -w),
                (1, -w),
                (1, w),
                (w, w),
                (w, 1),
                (-w, 1),
                (-w, w),
                (-1, w),
                (-1, -w),
                (-w, -w),
            ],
            float,
        )
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    points = unit @ rot.T
    points -= (points.max(0) + points.min(0)) / 2
    points *= r / np.abs(points).max()
    return points + np.array([cx, cy])


# Cycle settings for the demo: small images and a round 0 long enough for a nano model to learn
# the shapes from scratch on a CPU; the default online run is then 90 epochs over the labeled images
# (3 rounds of 30), sized so that install and run take about a quarter of an hour on two cores.
# `nbs` = batch: with 100 labeled images, Ultralytics' default nbs=64 leaves ~2 optimizer steps per epoch.
DEMO_CYCLE_DEFAULTS = {
    "imgsz": 128,
    "epochs": 60,
    "round_epochs": 2,
    "batch": 16,
    "train_args": {"nbs": 16},
}


def with_demo_settings(config: CycleConfig, given: Collection[str] | None = None) -> CycleConfig:
    """`config` with the demo's CPU-sized settings filled in for the options the user did not give.

    `given`: the options the user chose (`yolossl cycle` knows: `config.given_options`), so an explicit
    `--imgsz 640` trains at 640 even though 640 is the default. None (the API, `run_cycle(CycleConfig())`): an
    option left at its default counts as not given. `train_args` are merged, the user's winning.
    """
    if given is None:
        defaults = CycleConfig()
        given = {key for key in DEMO_CYCLE_DEFAULTS if getattr(config, key) != getattr(defaults, key)}
    values = config.to_dict()
    for key, demo_value in DEMO_CYCLE_DEFAULTS.items():
        if key == "train_args":
            values[key] = {**demo_value, **config.train_args}
        elif key not in given:
            values[key] = demo_value
    return CycleConfig(**values)


# Training settings of `yolossl bench` on the benchmark dataset: round 0 long enough to converge on
# the labeled fraction (the supervised arm, which keeps training, shows whether it has), and no
# per-epoch validation (each training still ends with one), to fit CPU budgets.
BENCH_TRAINING_DEFAULTS = {
    "imgsz": 128,
    "epochs": 300,
    "round_epochs": 5,
    "batch": 16,
    "workers": 0,
    "train_args": {"nbs": 16, "val": False},
}


# `yolossl bench --dataset glyphs`: round 0 trained until the labels saturate (the labels-alone baseline every
# arm must beat), short rounds, small images. The window is about the wall-matched labels-alone arm's length
# (benchmarks/RESULTS.md: 73-112 epochs), the gain above the training-seed spread (up to 0.03 here).
GLYPHS_TRAINING_DEFAULTS = {
    **BENCH_TRAINING_DEFAULTS,
    "imgsz": 96,
    "epochs": 120,
    "saturate_epochs": 600,
    "saturate_window": 120,
    "saturate_min_gain": 0.03,
    "saturate_every": 10,
    "round_epochs": 2,
}


@dataclass(frozen=True)
class BenchDataset:
    """A bundled benchmark: how to build it, the share of its training images that keep labels, its settings."""

    ensure: Callable[[], Path]
    label_fraction: float
    training: dict[str, Any]


BENCH_DATASETS = {
    "shapes": BenchDataset(ensure_bench_dataset, 0.1, BENCH_TRAINING_DEFAULTS),
    "glyphs": BenchDataset(ensure_glyphs_dataset, 100 / 1100, GLYPHS_TRAINING_DEFAULTS),
}
