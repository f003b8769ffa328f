"""Send pseudo-labels to annotation tools for review, and read the corrections back.

One in-memory shape (`annotations.Annotations`) and one module per format, each a writer and a reader
around it: COCO, CVAT for images 1.1, Label Studio, Pascal VOC, YOLO. `export_source` reads a
run's round (or a dataset) and writes a format naming each image as the user's folder does
(`names`), the images linked beside it or served from where they are; `import_annotations` reads
a tool's export, finds each name back among the user's images and writes a YOLO dataset for the
next cycle.

Why ~370 lines here: the two directions share the format table, the image linking and the checks
of what comes back; each format's own code lives in its module.

    >>> export_source(Path("runs/cycle/exp/round_2"), "labelstudio", Path("review/"), review=200)
    >>> import_annotations(Path("export.json"), "labelstudio", Path("reviewed/"), data=Path("data.yaml"))
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import yaml

from yolossl._fs import check_output_dir, fresh_partial_dir, link_file, replace_dir, resolve_inside
from yolossl.boxes import yolo_label_text
from yolossl.data import DatasetSpec, label_path_for, load_data_yaml
from yolossl.errors import YolosslError
from yolossl.export.annotations import AnnotatedImage, Annotations, first_few, image_size, with_distinct_stems
from yolossl.export.coco import read_coco, write_coco
from yolossl.export.cvat import read_cvat, write_cvat
from yolossl.export.files import require_regular_file
from yolossl.export.labelstudio import read_labelstudio, serving_readme, write_labelstudio
from yolossl.export.names import ImageFinder, common_folder, images_under, name_under, named_by_roots, names_readme
from yolossl.export.review import most_worth_review
from yolossl.export.source import load_dataset, load_source, read_kept_thresholds, source_roots, split_roots
from yolossl.export.voc import read_voc, write_voc

logger = logging.getLogger(__name__)

__all__ = ["EXPORT_FORMATS", "IMPORT_FORMATS", "AnnotatedImage", "Annotations", "export_source", "import_annotations"]

# Formats that name a file per image by its stem (YOLO labels, VOC annotations).
_BY_STEM = ("voc", "yolo")
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
    unlabeled: Sequence[Path] = (),
    image_url_prefix: str | None = None,
    copy_images: bool = True,
    exist_ok: bool = False,
) -> Path:
    """Write `source` (a run's round or a data YAML) as `fmt` into the new folder `out` (`exist_ok`: or over an
    earlier yolossl output); return it.

    Images are named by their path under the folder they came from (`unlabeled` overrides a run's
    own folders); they are linked into `out` unless `copy_images` is off or Label Studio tasks
    point at `image_url_prefix` + name instead.
    """
    if fmt not in EXPORT_FORMATS:
        raise YolosslError(f"--format must be one of {', '.join(EXPORT_FORMATS)}, got {fmt!r}")
    _check_image_options(fmt, image_url_prefix, copy_images)
    check_output_dir(out, exist_ok)
    annotations = load_source(source, min_score=min_score, split=split)
    if review is not None:
        annotations = most_worth_review(annotations, _thresholds_beside(source), review)
    roots = source_roots(source, split, unlabeled) or common_folder(annotations.images)
    images, renamed = named_by_roots(annotations.images, roots)
    if renamed:
        logger.warning(
            "%s: %d images have the same name under another folder; named by their id instead: %s",
            source,
            len(renamed),
            first_few(renamed),
        )
    if fmt in _BY_STEM:
        images = with_distinct_stems(images, source)
    annotations = replace(annotations, images=images)
    partial = fresh_partial_dir(out)
    copied = copy_images and image_url_prefix is None
    if copied:
        _link_images(annotations, partial / _IMAGE_DIRS[fmt], source)
    _write(fmt, annotations, partial, image_url_prefix, copied)
    readme = (
        serving_readme(out.resolve(), image_url_prefix) if fmt == "labelstudio" else f"# {fmt} export of {source}\n"
    )
    readme += names_readme(roots, renamed, f"{_IMAGE_DIRS[fmt]}/" if copied else None)
    (partial / "README.md").write_text(readme, encoding="utf-8")
    replace_dir(partial, out)
    logger.info(
        "Exported %d images (%d boxes) as %s to %s",
        len(annotations.images),
        sum(len(i) for i in annotations.images),
        fmt,
        out,
    )
    return out


def _check_image_options(fmt: str, image_url_prefix: str | None, copy_images: bool) -> None:
    """Only Label Studio tasks carry an image URL; every other format but YOLO can go without the images."""
    if image_url_prefix is not None and fmt != "labelstudio":
        raise YolosslError(
            f"--image-url-prefix: only Label Studio tasks carry image URLs; {fmt} names images relative to "
            "your folder, so create the task from your own images and drop --image-url-prefix"
        )
    if image_url_prefix is not None and not image_url_prefix.strip():
        raise YolosslError("--image-url-prefix is empty; give e.g. s3://bucket/cams/ or /data/local-files/?d=cams/")
    if not copy_images and fmt == "yolo":
        raise YolosslError("--no-copy-images: a YOLO dataset needs its images; use coco, cvat or voc for labels only")
    if not copy_images and fmt == "labelstudio" and image_url_prefix is None:
        raise YolosslError(
            "--no-copy-images: Label Studio tasks must say where the images are; add --image-url-prefix PREFIX"
        )


def _link_images(annotations: Annotations, images_dir: Path, source: Path) -> None:
    for image in annotations.images:
        link = resolve_inside(images_dir, image.name, source=source, entry=f"image {image.path}", what="export")
        link.parent.mkdir(parents=True, exist_ok=True)
        link_file(image.path, link, hard_first=True)  # tools may refuse symlinks out of the folder


def _write(fmt: str, annotations: Annotations, out: Path, image_url_prefix: str | None, copied: bool) -> Path:
    if fmt == "coco":
        return write_coco(annotations, _mkdir(out / "annotations"), "instances_default.json")
    if fmt == "cvat":
        return write_cvat(annotations, out, with_images=copied)
    if fmt == "labelstudio":
        return write_labelstudio(annotations, out, image_url_prefix)
    if fmt == "voc":
        return write_voc(annotations, out)
    return _write_yolo(annotations, out)


def _write_yolo(annotations: Annotations, out: Path) -> Path:
    for image in annotations.images:
        _write_label(out / "images", image)
    meta = {"train": "images", "val": "images", "names": annotations.names}  # relative to this YAML
    path = out / "data.yaml"
    path.write_text(
        "# one split: point `val` at your own human-labeled val split before training\n"
        + yaml.safe_dump(meta, sort_keys=False),
        encoding="utf-8",
    )
    return path


def _write_label(images_dir: Path, image: AnnotatedImage) -> None:
    """The image's YOLO label where Ultralytics looks for it (`images/x/a.jpg` -> `labels/x/a.txt`)."""
    label = label_path_for(images_dir / image.name)
    label.parent.mkdir(parents=True, exist_ok=True)
    label.write_text(yolo_label_text(image.classes, image.yolo_rows()[:, 1:5]), encoding="utf-8")


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _thresholds_beside(source: Path) -> dict[int, float | None]:
    for candidate in (source / "thresholds.json", source / "pseudo" / "thresholds.json"):
        if candidate.is_file():
            return read_kept_thresholds(candidate)
    return {}


def import_annotations(
    path: Path,
    fmt: str,
    out: Path,
    images_dir: Path | Sequence[Path] | None = None,
    data: Path | None = None,
    exist_ok: bool = False,
) -> Path:
    """Read an annotation tool's export and write a YOLO dataset in the new folder `out` (`exist_ok`: or over an
    earlier yolossl output); return its data YAML.

    Each image name is looked up under `images_dir`, one folder or several (default: the images beside the file, as our
    exports lay them out) and written under the name found there, subfolders kept; an id name of
    an earlier export maps back to the user's image when `data` or `images_dir` holds it.
    Annotations whose image is nowhere are left out, named in one warning.

    With `data` (the project's data YAML) classes are matched to its names, and the written YAML
    trains on its labeled images plus the imported ones and validates on its val split: ready for
    `yolossl cycle --data out/data.yaml`. Without it, the classes are the file's and val is the
    imported images themselves (said in a warning).
    """
    if fmt not in IMPORT_FORMATS:
        raise YolosslError(f"--format must be one of {', '.join(IMPORT_FORMATS)}, got {fmt!r}")
    if not path.exists():
        raise YolosslError(f"{path}: not found")
    check_output_dir(out, exist_ok)
    spec = load_data_yaml(data) if data else None
    names = spec.names if spec else None
    images_dirs = (images_dir,) if isinstance(images_dir, Path) else tuple(images_dir or ())
    roots = images_dirs or _default_roots(path, fmt)
    annotations = _read(path, fmt, roots[0], names)
    if not annotations.images:
        raise YolosslError(f"{path}: no image to import")
    annotations = _located(annotations, ImageFinder(roots, lambda: _known_images(images_dirs, spec)), path)
    _check(annotations, path)
    annotations = replace(annotations, images=with_distinct_stems(annotations.images, path))
    partial = fresh_partial_dir(out)
    (partial / "images").mkdir()
    (partial / "labels").mkdir()
    for image in annotations.images:
        link = resolve_inside(partial / "images", image.name, source=path, entry=f"image {image.path}", what="--out")
        link.parent.mkdir(parents=True, exist_ok=True)
        link_file(image.path, link)
        _write_label(partial / "images", image)
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


def _known_images(images_dirs: Sequence[Path], spec: DatasetSpec | None) -> list[tuple[Path, str]]:
    """The user's images an id name may stand for: those under `images_dirs` and the data YAML's splits."""
    known = images_under(images_dirs)
    if spec:
        for split in ("train", "val"):
            items = spec.train_items() if split == "train" else spec.val_items()
            roots = split_roots(spec, split)
            known += [(item.path, name_under(item.path, roots) or item.path.name) for item in items]
    return known


def _located(annotations: Annotations, finder: ImageFinder, path: Path) -> Annotations:
    """Each image at the user's file its name finds, under the name found there; the unfound left out in one warning."""
    located, missing = [], []
    for image in annotations.images:
        found = finder.find(image.name, path)
        if found is None and os.path.lexists(image.path):  # where the reader itself found it (a YOLO export)
            found = image.path, image.name
        if found is None:
            missing.append(image.name)
            continue
        image = replace(image, path=found[0], name=found[1])
        if image.width <= 0 or image.height <= 0:  # no box said the image's size (Label Studio)
            image.width, image.height = _size_of(image, path)
        located.append(image)
    where = ", ".join(str(root) for root in finder.roots)
    shown = first_few([repr(name) for name in missing])
    if not located:
        raise YolosslError(f"{path}: no annotated image found under {where}: {shown} (use --images DIR)")
    if missing:
        logger.warning(
            "%s: %d of %d annotated images have no matching image under %s and are left out: %s",
            path,
            len(missing),
            len(annotations.images),
            where,
            shown,
        )
    return replace(annotations, images=located)


def _size_of(image: AnnotatedImage, path: Path) -> tuple[int, int]:
    try:
        return image_size(image.path)
    except YolosslError as e:
        raise YolosslError(f"{path}: image {image.name}: {e}") from e


def _default_roots(path: Path, fmt: str) -> tuple[Path, ...]:
    """Where the images of one of our own exports are, relative to the file given."""
    base = path if path.is_dir() else path.parent
    if fmt == "coco" and base.name == "annotations":
        return (base.parent / "images" / "default",)
    if fmt == "labelstudio":
        return base / "images", base  # our tasks say `images/<name>`; others' may name files beside them
    return (base / {"cvat": "images", "voc": "JPEGImages", "yolo": "images"}.get(fmt, ""),)


def _read(path: Path, fmt: str, images_dir: Path, names: dict[int, str] | None) -> Annotations:
    if fmt == "yolo":
        return _read_yolo(path)
    if fmt == "coco":
        annotations = read_coco(path, images_dir)
        return _renamed(annotations, names, path) if names else annotations
    readers = {"cvat": read_cvat, "labelstudio": read_labelstudio, "voc": read_voc}
    return readers[fmt](path, images_dir, names)


def _read_yolo(data_yaml: Path) -> Annotations:
    """A YOLO export (its data YAML, or the folder holding it as data.yaml)'s train split, named under its folders, all
    of which (and every image and label) lie beside it."""
    if data_yaml.is_dir() and not data_yaml.is_symlink():
        data_yaml = data_yaml / "data.yaml"
    require_regular_file(data_yaml, "a data YAML")
    root = data_yaml.parent
    spec = load_data_yaml(data_yaml)
    for source in spec.train:
        _inside(root, source, data_yaml, "'train:' entry")
    for item in spec.train_items():  # checked before any of them is read
        _inside(root, item.path, data_yaml, "image")
        if item.label:
            _inside(root, item.label, data_yaml, "label")
    annotations = load_dataset(data_yaml, "train")
    images, _ = named_by_roots(annotations.images, split_roots(spec, "train"))
    return replace(annotations, images=images)


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
    """Every image is a regular file and every box lies inside its image (within a pixel of rounding)."""
    for image in annotations.images:
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
