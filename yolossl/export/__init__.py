"""Send pseudo-labels to annotation tools for review, and read the corrections back.

One in-memory shape (`model.Annotations`) and one module per format, each a writer and a reader
around it: COCO, CVAT for images 1.1, Label Studio, Pascal VOC, YOLO. `export_source` reads a
run's round (or a dataset) and writes a format with the images linked beside it;
`import_annotations` reads a tool's export and writes a YOLO dataset for the next cycle.

    >>> export_source(Path("runs/cycle/exp/round_2"), "labelstudio", Path("review/"), review=200)
    >>> import_annotations(Path("export.json"), "labelstudio", Path("reviewed/"), data=Path("data.yaml"))
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import yaml

from yolossl._fs import fresh_partial_dir, link_file, replace_dir, resolve_inside
from yolossl.data import load_data_yaml
from yolossl.errors import YolosslError
from yolossl.export.coco import read_coco, write_coco
from yolossl.export.cvat import read_cvat, write_cvat
from yolossl.export.files import require_regular_file
from yolossl.export.labelstudio import read_labelstudio, write_labelstudio
from yolossl.export.model import AnnotatedImage, Annotations, with_distinct_stems
from yolossl.export.review import most_worth_review
from yolossl.export.source import load_dataset, load_source
from yolossl.export.voc import read_voc, write_voc
from yolossl.labels import format_labels

logger = logging.getLogger(__name__)

__all__ = ["EXPORT_FORMATS", "IMPORT_FORMATS", "AnnotatedImage", "Annotations", "export_source", "import_annotations"]

# Where each format wants its images, relative to the export folder.
_IMAGE_DIRS = {
    "coco": "images/default",
    "cvat": "images",
    "labelstudio": "images",
    "voc": "JPEGImages",
    "yolo": "images",
}
EXPORT_FORMATS = tuple(_IMAGE_DIRS)
IMPORT_FORMATS = ("coco", "cvat", "labelstudio", "voc", "yolo")
_EDGE_TOLERANCE = 1.0  # pixels: tools round; a box reaching further out is an error


def export_source(
    source: Path,
    fmt: str,
    out: Path,
    min_score: float = 0.0,
    split: str = "train",
    review: int | None = None,
) -> Path:
    """Write `source` (a run's round or a data YAML) as `fmt` into the new folder `out`; return it."""
    if fmt not in EXPORT_FORMATS:
        raise YolosslError(f"--format must be one of {', '.join(EXPORT_FORMATS)}, got {fmt!r}")
    if out.exists() and any(out.iterdir()):
        raise YolosslError(f"{out}: exists and is not empty; choose a new --out folder")
    annotations = load_source(source, min_score=min_score, split=split)
    if review is not None:
        annotations = most_worth_review(annotations, _thresholds_beside(source), review)
    annotations = replace(annotations, images=with_distinct_stems(annotations.images, source))
    partial = fresh_partial_dir(out)
    images_dir = partial / _IMAGE_DIRS[fmt]
    images_dir.mkdir(parents=True)
    for image in annotations.images:
        link = resolve_inside(images_dir, image.name, source=source, entry=f"image {image.path}", what="export")
        link_file(image.path, link, hard_first=True)  # tools may refuse symlinks out of the folder
    _WRITERS[fmt](annotations, partial)
    replace_dir(partial, out)
    logger.info(
        "Exported %d images (%d boxes) as %s to %s",
        len(annotations.images),
        sum(len(i) for i in annotations.images),
        fmt,
        out,
    )
    return out


def _write_yolo(annotations: Annotations, out: Path) -> Path:
    labels = out / "labels"
    labels.mkdir()
    for image in annotations.images:
        (labels / f"{Path(image.name).stem}.txt").write_text(format_labels(image.yolo_rows()), encoding="utf-8")
    meta = {"train": "images", "val": "images", "names": annotations.names}  # relative to this YAML
    path = out / "data.yaml"
    path.write_text(
        "# one split: point `val` at your own human-labeled val split before training\n"
        + yaml.safe_dump(meta, sort_keys=False),
        encoding="utf-8",
    )
    return path


_WRITERS: dict[str, Callable[[Annotations, Path], Path]] = {
    "coco": lambda a, out: write_coco(a, _mkdir(out / "annotations"), "instances_default.json"),
    "cvat": write_cvat,
    "labelstudio": write_labelstudio,
    "voc": write_voc,
    "yolo": _write_yolo,
}


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _thresholds_beside(source: Path) -> dict[int, float | None]:
    for candidate in (source / "thresholds.json", source / "pseudo" / "thresholds.json"):
        if candidate.is_file():
            return {int(k): v for k, v in json.loads(candidate.read_text())["kept"].items()}
    return {}


def import_annotations(
    path: Path,
    fmt: str,
    out: Path,
    images_dir: Path | None = None,
    data: Path | None = None,
) -> Path:
    """Read an annotation tool's export and write a YOLO dataset in `out`; return its data YAML.

    With `data` (the project's data YAML) classes are matched to its names, and the written YAML
    trains on its labeled images plus the imported ones and validates on its val split: ready for
    `yolossl cycle --data out/data.yaml`. Without it, the classes are the file's and val is the
    imported images themselves (said in a warning).
    """
    if fmt not in IMPORT_FORMATS:
        raise YolosslError(f"--format must be one of {', '.join(IMPORT_FORMATS)}, got {fmt!r}")
    if not path.exists():
        raise YolosslError(f"{path}: not found")
    if out.exists() and any(out.iterdir()):
        raise YolosslError(f"{out}: exists and is not empty; choose a new --out folder")
    spec = load_data_yaml(data) if data else None
    names = spec.names if spec else None
    images_dir = images_dir or _default_images_dir(path, fmt)
    annotations = _read(path, fmt, images_dir, names)
    if not annotations.images:
        raise YolosslError(f"{path}: no image to import")
    _check(annotations, path)
    annotations = replace(annotations, images=with_distinct_stems(annotations.images, path))
    partial = fresh_partial_dir(out)
    (partial / "images").mkdir()
    (partial / "labels").mkdir()
    for image in annotations.images:
        link = resolve_inside(partial / "images", image.name, source=path, entry=f"image {image.path}", what="--out")
        link_file(image.path, link)
        text = format_labels(image.yolo_rows())
        (partial / "labels" / f"{Path(image.name).stem}.txt").write_text(text, encoding="utf-8")
    meta: dict = {"path": str(out.resolve()), "names": annotations.names}
    if spec:
        meta["train"] = [*(str(p) for p in spec.train), str((out / "images").resolve())]
        meta["val"] = [str(p) for p in spec.val]
    else:
        logger.warning(
            "No --data given: %s validates on the imported images themselves; pass --data to validate "
            "on your val split",
            out / "data.yaml",
        )
        meta["train"] = meta["val"] = "images"
    (partial / "data.yaml").write_text(yaml.safe_dump(meta, sort_keys=False), encoding="utf-8")
    replace_dir(partial, out)
    logger.info(
        "Imported %d images (%d boxes) from %s into %s",
        len(annotations.images),
        sum(len(i) for i in annotations.images),
        path,
        out,
    )
    return out / "data.yaml"


def _default_images_dir(path: Path, fmt: str) -> Path:
    """Where the images of one of our own exports are, relative to the file given."""
    base = path if path.is_dir() else path.parent
    if fmt == "coco" and base.name == "annotations":
        return base.parent / "images" / "default"
    if fmt == "cvat":
        return base / "images"
    if fmt == "voc":
        return base / "JPEGImages"
    return base


def _read(path: Path, fmt: str, images_dir: Path, names: dict[int, str] | None) -> Annotations:
    if fmt == "yolo":
        return _read_yolo(path)
    if fmt == "coco":
        annotations = read_coco(path, images_dir)
        return _renamed(annotations, names, path) if names else annotations
    readers = {"cvat": read_cvat, "labelstudio": read_labelstudio, "voc": read_voc}
    return readers[fmt](path, images_dir, names)


def _read_yolo(data_yaml: Path) -> Annotations:
    """A YOLO export's train split; its folders, images and labels must all lie in the YAML's folder."""
    require_regular_file(data_yaml, "a data YAML")
    root = data_yaml.parent
    spec = load_data_yaml(data_yaml)
    for source in spec.train:
        _inside(root, source, data_yaml, "'train:' entry")
    for item in spec.train_items():  # checked before any of them is read
        _inside(root, item.path, data_yaml, "image")
        if item.label:
            _inside(root, item.label, data_yaml, "label")
    return load_dataset(data_yaml, "train", keep_names=True)


def _inside(root: Path, path: Path, source: Path, entry: str) -> None:
    """The one name rule applied to a path a YAML led us to: relative to `root`, no way out of it."""
    name = Path(os.path.relpath(os.path.abspath(path), os.path.abspath(root))).as_posix()
    resolve_inside(root, name, source=source, entry=f"{entry} {path}", what="dataset folder")


def _renamed(annotations: Annotations, names: dict[int, str], path: Path) -> Annotations:
    """Map the file's class ids to the project's by name; an unknown name is an error."""
    index = {name: k for k, name in names.items()}
    unknown = sorted(set(annotations.names.values()) - set(index))
    if unknown:
        raise YolosslError(f"{path}: unknown class(es) {unknown} (known: {', '.join(index)})")
    mapping = {k: index[name] for k, name in annotations.names.items()}
    for image in annotations.images:
        image.classes = np.array([mapping[int(c)] for c in image.classes], dtype=np.int64)
    return Annotations(names, annotations.images, annotations.model_version)


def _check(annotations: Annotations, path: Path) -> None:
    """Every image exists and every box lies inside its image (within a pixel of rounding)."""
    for image in annotations.images:
        if not image.path.exists():
            raise YolosslError(f"{path}: image {image.name}: file not found at {image.path} (use --images DIR)")
        if not image.path.is_file():
            raise YolosslError(
                f"{path}: image {image.name}: {image.path} is not a regular file (a FIFO, socket or device?)"
            )
        if image.width <= 0 or image.height <= 0:
            raise YolosslError(f"{path}: image {image.name}: no valid width/height")
        for k, (x1, y1, x2, y2) in enumerate(image.xyxy, start=1):
            inside = -_EDGE_TOLERANCE <= x1 < x2 <= image.width + _EDGE_TOLERANCE and (
                -_EDGE_TOLERANCE <= y1 < y2 <= image.height + _EDGE_TOLERANCE
            )
            if not inside:
                raise YolosslError(
                    f"{path}: image {image.name}, box {k}: ({x1:.1f}, {y1:.1f}, {x2:.1f}, {y2:.1f}) "
                    f"is not inside the {image.width}x{image.height} image"
                )
        image.xyxy = image.xyxy.clip(0, [image.width, image.height, image.width, image.height])
