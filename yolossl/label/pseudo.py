"""The pseudo-labeling step: detect on a pool, sort boxes into kept / uncertain / dropped, write it all.

Writes, into one folder that appears whole or not at all:

    labels/<id>.txt   kept boxes, YOLO format; an empty file when nothing was kept
    images/<id>.ext   a link to the image, or its masked copy when it has uncertain boxes
    record.csv        every candidate box: image, class, score, box, status, reason
    thresholds.json   the per-class thresholds used
    stats.json        the counts of the round summary

    >>> stats = pseudo_label(detector, pool.images, Path("round_1/pseudo"), LabelSettings(), thresholds)
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from yolossl._fs import fresh_partial_dir, replace_dir
from yolossl.data import ImageItem
from yolossl.label.decisions import ClassReviewer
from yolossl.label.engine import Detector
from yolossl.label.filters import (
    ClassThresholds,
    thresholds_for_precision,
)
from yolossl.label.record import RECORD_FILE, RecordWriter
from yolossl.label.settings import LabelSettings, PredictSettings
from yolossl.label.writer import LabelStats, PoolWriter, write_behind
from yolossl.labels import clean_label_file

logger = logging.getLogger(__name__)


def make_detector(weights: Sequence[str | Path], predict: PredictSettings, export_dir: Path | None = None) -> Detector:
    """The detector a labeling pass runs: only the prediction half of its settings concerns it."""
    return Detector(
        weights,
        imgsz=predict.imgsz,
        device=predict.device,
        conf=predict.min_conf,
        backend=predict.backend,
        tta=predict.tta,
        export_dir=export_dir,
        batch=predict.batch,
    )


def choose_thresholds(
    detector: Detector,
    val: Sequence[ImageItem],
    settings: LabelSettings,
    n_classes: int,
    reviewer: ClassReviewer | None = None,
) -> ClassThresholds:
    """One `conf` for all classes, or with `target_precision` per-class thresholds measured on val.

    With a `reviewer`, val boxes are measured after its review, as the pool's boxes will be judged:
    the target precision then holds for what is actually kept. Val labels are read cleaned, as the
    validator sees them: a malformed line is dropped (`check_split` reports it), not fatal mid-run.
    """
    if settings.target_precision is None:
        return ClassThresholds.global_conf(n_classes, settings.conf, settings.uncertain_low)

    def val_boxes() -> Iterator:
        frames = detector.run(val, batch=settings.batch, workers=settings.workers, keep_images=reviewer is not None)
        for frame in frames:
            if frame.detections is not None and frame.item.label is not None:
                detections = frame.detections
                if reviewer is not None and frame.image is not None and len(detections):
                    detections, _ = reviewer.review(frame.image, detections)
                yield detections, clean_label_file(frame.item.label, n_classes).rows, frame.shape

    return thresholds_for_precision(val_boxes(), n_classes, settings.target_precision, settings.uncertain_low)


def pseudo_label(
    detector: Detector,
    images: Sequence[ImageItem],
    out_dir: Path,
    settings: LabelSettings,
    thresholds: ClassThresholds,
    names: dict[int, str],
    on_progress: Callable[[int], None] | None = None,
    reviewer: ClassReviewer | None = None,
) -> LabelStats:
    """Label `images` into `out_dir` (see the module docstring); return the counts.

    With a `reviewer`, every candidate box's class is double-checked before the thresholds apply,
    and both opinions go into the record.
    """
    start = time.perf_counter()
    partial = fresh_partial_dir(out_dir)
    stats = label_into(detector, images, partial, settings, thresholds, names, on_progress, reviewer)
    stats.wall_time_s = round(time.perf_counter() - start, 3)
    finish_output(partial, out_dir, thresholds, stats)
    return stats


def label_into(
    detector: Detector,
    images: Sequence[ImageItem],
    root: Path,
    settings: LabelSettings,
    thresholds: ClassThresholds,
    names: dict[int, str],
    on_progress: Callable[[int], None] | None = None,
    reviewer: ClassReviewer | None = None,
) -> LabelStats:
    """Write `labels/`, `images/` and `record.csv` of `images` into the existing folder `root`.

    The unit of work of both engines: the local one labels the whole pool into one folder, the
    Ray one a shard per folder, merged afterwards in shard order (so both write the same bytes).
    """
    (root / "labels").mkdir(exist_ok=True)
    (root / "images").mkdir(exist_ok=True)
    encoders = min(4, os.cpu_count() or 1) if settings.uncertain == "mask" else 1  # masked copies to encode
    writer = PoolWriter(root, settings.filter, thresholds, names, reviewer, encoders)
    with RecordWriter(root / RECORD_FILE) as writer.record:
        keep_images = settings.uncertain == "mask" or reviewer is not None
        frames = detector.run(images, settings.batch, keep_images, settings.workers, on_progress)
        write_behind(frames, writer.write, ahead=settings.batch)  # one batch behind the model: enough to overlap
    return writer.finish(0.0)


def finish_output(partial: Path, out_dir: Path, thresholds: ClassThresholds, stats: LabelStats) -> None:
    """Add thresholds.json and stats.json to a finished labeling folder and move it into place."""
    thresholds.save(partial / "thresholds.json")
    (partial / "stats.json").write_text(json.dumps(stats.to_dict(), indent=2))
    replace_dir(partial, out_dir)


def training_items(pseudo_dir: Path, keep_empty: bool = False) -> Iterator[ImageItem]:
    """The images of a labeling pass to train on, each with its label file.

    By default only images with at least one kept box: where nothing was kept the model is
    unsure, not sure there is nothing. `keep_empty` adds them as background images.
    """
    for entry in sorted(p for p in (pseudo_dir / "images").iterdir()):
        label = pseudo_dir / "labels" / f"{entry.stem}.txt"
        if label.is_file() and (keep_empty or label.stat().st_size > 0):
            yield ImageItem(entry.stem, entry, label)


def export_dir_for(out_dir: Path) -> Path:
    """Where `yolossl label --out out_dir` keeps models exported for --backend: beside the output,
    outside it (the output is replaced whole on the next run; the export is reused)."""
    return out_dir.parent / f".{out_dir.name}-export"
