"""Reading what the user gives us: data YAMLs, YOLO labels and folders of unlabeled images.

Everything here reads; nothing writes. Paths are resolved the way Ultralytics resolves them, so
the images we list are the images its trainer would see.

    >>> spec = load_data_yaml("data.yaml")
    >>> pool = scan_image_folders(["cams/a", "cams/b"])
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from yolossl._fs import read_regular_file, special_file_kind
from yolossl._yaml import load_yaml_file
from yolossl.errors import YolosslError

logger = logging.getLogger(__name__)

# The extensions Ultralytics' loaders accept (ultralytics.data.utils.IMG_FORMATS), kept here so
# that scanning a folder does not import the training engine.
IMAGE_SUFFIXES = frozenset(
    {".avif", ".bmp", ".dng", ".heic", ".heif", ".jp2", ".jpeg", ".jpg", ".mpo", ".png", ".tif", ".tiff", ".webp"}
)


@dataclass(frozen=True)
class ImageItem:
    """One image with a stable id; `label` is its YOLO label file when it has one.

    The id is the file's stem plus a short hash of its absolute path: readable, stable across
    runs, and unique when two folders both hold `img001.jpg`.
    """

    id: str
    path: Path
    label: Path | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """A parsed Ultralytics data YAML: where the images are and what the classes are called."""

    yaml_path: Path
    root: Path
    train: tuple[Path, ...]
    val: tuple[Path, ...]
    names: dict[int, str]
    test: tuple[Path, ...] = ()
    """`test:` of the YAML: only ever scored, never used to choose a threshold, a round or a checkpoint."""

    def train_items(self) -> list[ImageItem]:
        """The labeled training images, each with its label file (None for a background image)."""
        return list_split_images(self.train, self.yaml_path)

    def val_items(self) -> list[ImageItem]:
        """The human-labeled validation images: the only split any metric is computed on."""
        return list_split_images(self.val, self.yaml_path)

    def test_items(self) -> list[ImageItem]:
        """The held-out test images (none without `test:`): every reported figure, no decision."""
        return list_split_images(self.test, self.yaml_path) if self.test else []


@dataclass
class ImagePool:
    """The unlabeled images of one or more folders, in a stable order."""

    folders: tuple[Path, ...]
    images: list[ImageItem] = field(default_factory=list)
    skipped: int = 0  # files that were not images

    def __len__(self) -> int:
        return len(self.images)


def load_data_yaml(path: str | Path) -> DatasetSpec:
    """Parse a data YAML, resolving `path`, `train`, `val` and the optional `test` like Ultralytics does.

    `train`/`val` may be a folder, a `.txt` of image paths, or a list of either; `names` a list
    or a dict. A missing `path` means the YAML's own folder.
    """
    yaml_path = Path(path)
    meta = load_yaml_file(yaml_path, "data YAML")
    if not isinstance(meta, dict):
        raise YolosslError(f"{yaml_path}: expected a mapping with 'train', 'val' and 'names'")
    for key in ("train", "val"):
        if not meta.get(key):
            raise YolosslError(f"{yaml_path}: '{key}:' is missing; both 'train' and 'val' are required")
    root = _dataset_root(meta.get("path"), yaml_path)
    names = _parse_names(meta, yaml_path)
    return DatasetSpec(
        yaml_path=yaml_path.resolve(),
        root=root,
        train=_resolve_sources(meta["train"], root, yaml_path, "train"),
        val=_resolve_sources(meta["val"], root, yaml_path, "val"),
        names=names,
        test=_resolve_sources(meta["test"], root, yaml_path, "test") if meta.get("test") else (),
    )


def _dataset_root(path_value: object, yaml_path: Path) -> Path:
    if not path_value:
        return yaml_path.resolve().parent
    root = Path(str(path_value)).expanduser()
    if root.is_absolute():
        return root
    # Ultralytics tries the working directory; a path relative to the YAML is what users mean more often.
    for candidate in (Path.cwd() / root, yaml_path.resolve().parent / root):
        if _exists(candidate):
            return candidate.resolve()
    raise YolosslError(
        f"{yaml_path}: 'path: {path_value}' does not exist (relative to the working directory or the YAML)"
    )


def _parse_names(meta: dict, yaml_path: Path) -> dict[int, str]:
    names = meta.get("names")
    if names is None:
        nc = meta.get("nc")
        if not isinstance(nc, int) or nc < 1:
            raise YolosslError(f"{yaml_path}: 'names:' is missing (a list or a dict of class names)")
        return {i: f"class_{i}" for i in range(nc)}
    if isinstance(names, list):
        parsed = dict(enumerate(names))
    elif isinstance(names, dict):
        try:
            parsed = {int(k): v for k, v in names.items()}
        except (TypeError, ValueError) as e:
            raise YolosslError(f"{yaml_path}: 'names:' keys must be class ids 0..N-1") from e
    else:
        raise YolosslError(f"{yaml_path}: 'names:' must be a list or a dict, got {type(names).__name__}")
    if sorted(parsed) != list(range(len(parsed))):
        raise YolosslError(f"{yaml_path}: 'names:' ids must be 0..{len(parsed) - 1}, got {sorted(parsed)}")
    if "nc" in meta and meta["nc"] != len(parsed):
        raise YolosslError(f"{yaml_path}: 'nc: {meta['nc']}' does not match the {len(parsed)} names")
    return {k: str(v) for k, v in sorted(parsed.items())}


def _resolve_sources(value: object, root: Path, yaml_path: Path, key: str) -> tuple[Path, ...]:
    entries = value if isinstance(value, list) else [value]
    sources = []
    for entry in entries:
        source = Path(str(entry)).expanduser()
        source = source if source.is_absolute() else root / source
        if not _exists(source):
            raise YolosslError(f"{yaml_path}: '{key}:' entry {entry} not found at {source}")
        sources.append(source)
    return tuple(sources)


def _exists(path: Path) -> bool:
    """`path.exists()`, False for a name no file can have (too long, a NUL byte) rather than an exception."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def list_split_images(sources: Iterable[Path], yaml_path: Path) -> list[ImageItem]:
    """Images of a split (folders searched recursively, `.txt` lists read) with their labels."""
    paths: list[Path] = []
    for source in sources:
        if source.is_dir():
            paths.extend(_walk_images(source)[0])
        elif source.suffix.lower() == ".txt":
            paths.extend(_read_image_list(source))
        elif source.suffix.lower() in IMAGE_SUFFIXES:
            paths.append(source)
        else:
            raise YolosslError(f"{yaml_path}: {source} is neither a folder, an image nor a .txt list of images")
    paths = _regular_files(paths)
    if not paths:
        raise YolosslError(f"{yaml_path}: no images found in {', '.join(str(s) for s in sources)}")
    items = []
    for image in paths:
        label = label_path_for(image)  # a FIFO or device here stays: its reader says it is skipped
        items.append(ImageItem(image_id(image), image, label if label.exists() and not label.is_dir() else None))
    return items


def _regular_files(paths: list[Path]) -> list[Path]:
    """`paths` without FIFOs, sockets and devices, each named in a warning: reading one may block or never end."""
    kept = []
    for path in paths:
        kind = special_file_kind(path)
        if kind is None:
            kept.append(path)
        else:
            logger.warning("%s: not a regular file (%s), skipped", path, kind)
    return kept


def _read_image_list(list_file: Path) -> list[Path]:
    """Image paths of a `.txt` list; a relative line is relative to the list's folder, else the working directory."""
    paths = []
    for line in list_file.read_text(encoding="utf-8-sig").splitlines():
        line = line.strip()
        if not line or Path(line).suffix.lower() not in IMAGE_SUFFIXES:
            continue
        path = Path(line)
        if not path.is_absolute():
            beside_list = list_file.parent / path
            path = beside_list if _exists(beside_list) or line.startswith("./") else Path.cwd() / path
        paths.append(Path(os.path.normpath(path)))
    return paths


def label_path_for(image: Path) -> Path:
    """Where Ultralytics looks for an image's label: the last `/images/` becomes `/labels/`, suffix `.txt`."""
    sep = os.sep
    text = str(image)
    marker = f"{sep}images{sep}"
    if marker in text:
        head, tail = text.rsplit(marker, 1)
        text = f"{head}{sep}labels{sep}{tail}"
    return Path(text).with_suffix(".txt")


def image_id(path: Path) -> str:
    """A stable, unique, file-name-safe id: `<stem>-<8 hex of the absolute path's sha1>`."""
    digest = hashlib.sha1(os.path.abspath(path).encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"{path.stem}-{digest}"


def scan_image_folders(folders: Sequence[str | Path]) -> ImagePool:
    """List every image under `folders` (recursively, sorted), counting the files that are not images."""
    if not folders:
        raise YolosslError("no unlabeled folder given: pass --unlabeled DIR (repeatable)")
    resolved = []
    for folder in folders:
        folder = Path(folder).expanduser()
        if folder.is_file():
            raise YolosslError(f"{folder}: a file, not a folder; images are taken from folders (give its folder)")
        if not folder.is_dir():
            raise YolosslError(f"{folder}: unlabeled folder not found")
        resolved.append(folder)
    pool = ImagePool(folders=tuple(resolved))
    seen: set[str] = set()
    for folder in resolved:
        images, skipped = _walk_images(folder)
        regular = _regular_files(images)
        pool.skipped += skipped + len(images) - len(regular)
        for path in regular:
            item = ImageItem(image_id(path), path)
            if item.id in seen:  # the same folder given twice
                continue
            seen.add(item.id)
            pool.images.append(item)
    if pool.skipped:
        logger.warning("Skipped %d files that are not images in %s", pool.skipped, ", ".join(map(str, resolved)))
    if not pool.images:
        raise YolosslError(f"no images found in {', '.join(map(str, resolved))}")
    return pool


def _walk_images(folder: Path) -> tuple[list[Path], int]:
    images, skipped = [], 0
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            if Path(name).suffix.lower() in IMAGE_SUFFIXES:
                images.append(Path(dirpath) / name)
            elif not name.startswith("."):
                skipped += 1
    return images, skipped


def read_yolo_labels(path: Path) -> np.ndarray:
    """A YOLO label file as an (N, 5) float array of `class xc yc w h`; empty for a background image."""
    text = read_regular_file(path).decode("utf-8")
    rows = [line.split() for line in text.splitlines() if line.strip()]
    if not rows:
        return np.zeros((0, 5), dtype=np.float64)
    if any(len(row) != 5 for row in rows):
        raise YolosslError(f"{path}: every label line needs 5 columns 'class xc yc w h'")
    try:
        return np.array(rows, dtype=np.float64)
    except ValueError as e:
        raise YolosslError(f"{path}: label values must be numbers ({e})") from e
