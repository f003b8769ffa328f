"""What `yolossl export` reads: a run's round (pseudo-labels with scores) or a YOLO dataset YAML.

>>> annotations = load_source(Path("runs/cycle/exp/round_2"), min_score=0.3)
>>> annotations = load_source(Path("data.yaml"), split="val")
"""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path

import numpy as np

from yolossl._fs import resolve_inside
from yolossl.data import ImageItem, load_data_yaml
from yolossl.errors import YolosslError
from yolossl.export.files import number, read_bounded
from yolossl.export.model import AnnotatedImage, Annotations, image_size
from yolossl.labels import clean_label_file

logger = logging.getLogger(__name__)

EXPORTED_STATUSES = ("kept", "uncertain")  # dropped boxes are noise, not drafts


def load_source(source: Path, min_score: float = 0.0, split: str = "train") -> Annotations:
    """A round folder, its `pseudo/` folder, a `yolossl label` output, or a data YAML."""
    if source.is_file() and source.suffix.lower() in (".yaml", ".yml"):
        return load_dataset(source, split)
    for candidate in (source, source / "pseudo"):
        if (candidate / "record.csv").is_file():
            return load_pseudo_labels(candidate, min_score)
    if (source / "config.yaml").is_file():
        raise YolosslError(f"{source}: a run folder; export one of its rounds, e.g. {source / 'round_1'}")
    raise YolosslError(f"{source}: neither a run's round (no record.csv) nor a data YAML")


def load_pseudo_labels(pseudo_dir: Path, min_score: float = 0.0) -> Annotations:
    """Kept and uncertain boxes of a labeling pass, with scores and statuses, grouped by image.

    An `image_id` that is not a plain relative name is refused (it names the exported file); an
    image that is no longer a regular file is left out with a warning.
    """
    record = pseudo_dir / "record.csv"
    names: dict[int, str] = {}
    by_image: dict[str, list[dict[str, str]]] = {}
    for row_number, row in enumerate(_record_rows(record), start=1):
        names[int(number(row["class_id"], record, f"row {row_number} class_id"))] = row["class_name"]
        if row["status"] in EXPORTED_STATUSES and number(row["score"], record, f"row {row_number} score") >= min_score:
            resolve_inside(pseudo_dir, row["image_id"], source=record, entry=f"row {row_number} image_id")
            by_image.setdefault(row["image"], []).append({**row, "line": str(row_number)})
    names = {**_names_from_thresholds(pseudo_dir), **names}
    images = []
    columns = ("class_id", "x_center", "y_center", "width", "height")
    for image, rows in by_image.items():
        path = Path(image)
        if not path.exists():
            raise YolosslError(f"{record}: image {path} no longer exists")
        if not path.is_file():
            logger.warning("%s: not a regular file (a FIFO, socket, device or folder), left out of the export", path)
            continue
        yolo = np.array([[number(r[k], record, f"row {r['line']} {k}") for k in columns] for r in rows])
        scores = np.array([float(r["score"]) for r in rows])
        name = f"{rows[0]['image_id']}{path.suffix}"
        images.append(AnnotatedImage.from_yolo(path, name, image_size(path), yolo, scores, [r["status"] for r in rows]))
    run, round_name = pseudo_dir.resolve().parent.parent.name, pseudo_dir.resolve().parent.name
    version = f"{run}/{round_name}" if pseudo_dir.name == "pseudo" else pseudo_dir.resolve().name
    return Annotations(dict(sorted(names.items())), images, version)


def _record_rows(record: Path) -> list[dict[str, str]]:
    """The rows of a `record.csv`, checked for the columns an export needs."""
    rows = list(csv.DictReader(io.StringIO(read_bounded(record).decode("utf-8", errors="replace"), newline="")))
    needed = {
        "image",
        "image_id",
        "class_id",
        "class_name",
        "status",
        "score",
        "x_center",
        "y_center",
        "width",
        "height",
    }
    missing = sorted(needed - set(rows[0])) if rows else []
    if missing:
        raise YolosslError(f"{record}: column(s) {', '.join(missing)} missing")
    if any(None in row.values() for row in rows):
        bad = next(k for k, row in enumerate(rows, start=1) if None in row.values())
        raise YolosslError(f"{record}: row {bad}: fewer columns than the header")
    return rows


def _names_from_thresholds(pseudo_dir: Path) -> dict[int, str]:
    """Class ids seen in thresholds.json (names unknown there): so that classes with no box keep their id."""
    path = pseudo_dir / "thresholds.json"
    if not path.is_file():
        return {}
    return {int(k): f"class_{k}" for k in json.loads(path.read_text()).get("kept", {})}


def load_dataset(data_yaml: Path, split: str = "train", keep_names: bool = False) -> Annotations:
    """Human labels of one split of a data YAML (cleaned as a cycle would train on them).

    Images are named by their id (unique across folders) unless `keep_names`, e.g. when reading
    back a YOLO export whose names are already those ids.
    """
    if split not in ("train", "val"):
        raise YolosslError(f"--split must be train or val, got {split!r}")
    spec = load_data_yaml(data_yaml)
    items = spec.train_items() if split == "train" else spec.val_items()
    images = []
    for item in regular_files(items, data_yaml):
        rows = clean_label_file(item.label, len(spec.names)).rows if item.label else np.zeros((0, 5))
        name = item.path.name if keep_names else f"{item.id}{item.path.suffix}"
        images.append(AnnotatedImage.from_yolo(item.path, name, image_size(item.path), rows))
    return Annotations(spec.names, images)


def regular_files(items: list[ImageItem], data_yaml: Path) -> list[ImageItem]:
    """The split's images that are regular files; FIFOs, sockets and devices are left out with a warning."""
    kept = []
    for item in items:
        if item.path.is_file():
            kept.append(item)
        else:
            logger.warning(
                "%s: not a regular file (a FIFO, socket, device or folder), left out (%s)", item.path, data_yaml
            )
    return kept
