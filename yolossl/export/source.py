"""What `yolossl export` reads: a run's round (pseudo-labels with scores) or a YOLO dataset YAML.

>>> annotations = load_source(Path("runs/cycle/exp/round_2"), min_score=0.3)
>>> annotations = load_source(Path("data.yaml"), split="val")
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from yolossl._fs import resolve_inside
from yolossl.config import load_config_file
from yolossl.data import DatasetSpec, load_data_yaml
from yolossl.errors import YolosslError
from yolossl.export.annotations import AnnotatedImage, Annotations, image_size
from yolossl.label.filters import ClassThresholds
from yolossl.label.record import RECORD_FILE, RecordRow, iter_record
from yolossl.labels import clean_label_file

logger = logging.getLogger(__name__)

EXPORTED_STATUSES = ("kept", "uncertain")  # dropped boxes are noise, not drafts


def is_data_yaml(source: Path) -> bool:
    return source.is_file() and source.suffix.lower() in (".yaml", ".yml")


def load_source(source: Path, min_score: float = 0.0, split: str = "train") -> Annotations:
    """A round folder, its `pseudo/` folder, a `yolossl label` output, or a data YAML."""
    if is_data_yaml(source):
        return load_dataset(source, split)
    for candidate in (source, source / "pseudo"):
        if (candidate / RECORD_FILE).is_file():
            return load_pseudo_labels(candidate, min_score)
    if (source / "config.yaml").is_file():
        raise YolosslError(f"{source}: a run folder; export one of its rounds, e.g. {source / 'round_1'}")
    raise YolosslError(f"{source}: neither a run's round (no record.csv) nor a data YAML")


def load_pseudo_labels(pseudo_dir: Path, min_score: float = 0.0) -> Annotations:
    """Kept and uncertain boxes of a labeling pass, with scores and statuses, grouped by image.

    An `image_id` that is not a plain relative name is refused (it names the exported file); an
    image that is no longer a regular file is left out with a warning.
    """
    record = pseudo_dir / RECORD_FILE
    names: dict[int, str] = {}
    by_image: dict[str, list[RecordRow]] = {}
    for row_number, row in enumerate(iter_record(record), start=1):
        names[row.class_id] = row.class_name
        if row.status in EXPORTED_STATUSES and row.score >= min_score:
            resolve_inside(pseudo_dir, row.image_id, source=record, entry=f"row {row_number} image_id")
            by_image.setdefault(row.image, []).append(row)
    names = {**_names_from_thresholds(pseudo_dir), **names}
    images = []
    for image, rows in by_image.items():
        path = Path(image)
        if not path.exists():
            raise YolosslError(f"{record}: image {path} no longer exists")
        if not path.is_file():
            logger.warning("%s: not a regular file (a FIFO, socket, device or folder), left out of the export", path)
            continue
        yolo = np.array([[r.class_id, *r.xywhn] for r in rows], dtype=np.float64)
        scores = np.array([r.score for r in rows])
        name = f"{rows[0].image_id}{path.suffix}"
        images.append(AnnotatedImage.from_yolo(path, name, image_size(path), yolo, scores, [r.status for r in rows]))
    if not images:  # an empty export is not a failure, but it must not look like a success either
        logger.warning(
            "%s: no kept or uncertain box%s in %s, so no image to export (see its thresholds.json: a class out of "
            "reach at the target precision gets no pseudo-label)",
            pseudo_dir,
            f" scoring {min_score} or more" if min_score else "",
            record,
        )
    run, round_name = pseudo_dir.resolve().parent.parent.name, pseudo_dir.resolve().parent.name
    version = f"{run}/{round_name}" if pseudo_dir.name == "pseudo" else pseudo_dir.resolve().name
    return Annotations(dict(sorted(names.items())), images, version)


def _names_from_thresholds(pseudo_dir: Path) -> dict[int, str]:
    """Class ids seen in thresholds.json (names unknown there): so that classes with no box keep their id."""
    path = pseudo_dir / "thresholds.json"
    if not path.is_file():
        return {}
    return {k: f"class_{k}" for k in read_kept_thresholds(path)}


def read_kept_thresholds(path: Path) -> dict[int, float | None]:
    """`thresholds.json`'s kept thresholds: class id -> threshold (None: the class is never labeled)."""
    return {c: (t if math.isfinite(t) else None) for c, t in ClassThresholds.load(path).kept.items()}


def load_dataset(data_yaml: Path, split: str = "train") -> Annotations:
    """Human labels of one split of a data YAML (cleaned as a cycle would train on them), named by image id."""
    if split not in ("train", "val"):
        raise YolosslError(f"--split must be train or val, got {split!r}")
    spec = load_data_yaml(data_yaml)
    items = spec.train_items() if split == "train" else spec.val_items()
    images, issues = [], []
    for item in items:  # FIFOs and devices were left out, with a warning, when the split was listed
        cleaned = clean_label_file(item.label, len(spec.names)) if item.label else None
        rows = cleaned.rows if cleaned else np.zeros((0, 5))
        issues += cleaned.issues if cleaned else []
        images.append(AnnotatedImage.from_yolo(item.path, f"{item.id}{item.path.suffix}", image_size(item.path), rows))
    if issues:  # said: the other formats keep every box, so a count that differs here has a reason
        counts = Counter(f"{issue.problem.split(' (')[0]}, {issue.action}" for issue in issues)
        logger.warning(
            "%s: %d label line(s) cleaned as a cycle trains on them (%s), e.g. %s",
            data_yaml,
            len(issues),
            "; ".join(f"{n} x {what}" for what, n in counts.items()),
            issues[0],
        )
    return Annotations(spec.names, images)


def split_roots(spec: DatasetSpec, split: str) -> tuple[Path, ...]:
    """The folders a split's image names are relative to: its folders, a list's or an image's folder."""
    sources = spec.train if split == "train" else spec.val
    return tuple(source if source.is_dir() else source.parent for source in sources)


def source_roots(source: Path, split: str = "train", unlabeled: Sequence[Path] = ()) -> tuple[Path, ...]:
    """The folders an export names images relative to (empty when unknown).

    A data YAML: its split's folders. A run's round: `unlabeled` when given, else the unlabeled
    folders of the run's config.yaml. A `yolossl label` output: `unlabeled`.
    """
    if is_data_yaml(source):
        return split_roots(load_data_yaml(source), split)
    if unlabeled:
        return tuple(unlabeled)
    for config in (source.parent / "config.yaml", source.parent.parent / "config.yaml"):
        if config.is_file():
            return tuple(Path(folder).expanduser() for folder in load_config_file(config).get("unlabeled", []))
    return ()
