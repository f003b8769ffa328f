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
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from yolossl._fs import fresh_partial_dir, is_ours, link_file, replace_dir
from yolossl.data import ImageItem
from yolossl.errors import YolosslError
from yolossl.label.engine import Detections, Detector, Frame, why_unreadable
from yolossl.label.filters import (
    DROPPED,
    KEPT,
    UNCERTAIN,
    ClassThresholds,
    box_status,
    mask_uncertain,
    thresholds_for_precision,
)
from yolossl.label.record import RECORD_FILE, RecordRow, RecordWriter
from yolossl.label.settings import LabelSettings
from yolossl.labels import check_split, clean_label_file, log_split_report

logger = logging.getLogger(__name__)

_WRITABLE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


class ClassReviewer(Protocol):
    """A second opinion on the class of each candidate box (the FixMatch head implements it)."""

    def review(self, image: np.ndarray, detections: Detections) -> tuple[Detections, list[BoxOpinion]]: ...


@dataclass(frozen=True)
class BoxOpinion:
    """What the reviewer said about one box, for the record."""

    det_class: int
    head_class: int
    head_score: float
    decision: str


@dataclass
class LabelStats:
    """What a labeling pass did: the numbers of the round summary."""

    images: int = 0
    images_with_boxes: int = 0
    kept: int = 0
    uncertain: int = 0
    dropped: int = 0
    masked_images: int = 0
    dropped_images: int = 0
    kept_per_class: dict[int, int] = field(default_factory=dict)
    uncertain_per_class: dict[int, int] = field(default_factory=dict)
    no_label_classes: list[int] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    wall_time_s: float = 0.0

    @property
    def images_per_s(self) -> float:
        return self.images / self.wall_time_s if self.wall_time_s else 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    def add(self, other: LabelStats) -> None:
        """Fold in the counts of another part of the same pool (a Ray shard)."""
        for name in ("images", "images_with_boxes", "kept", "uncertain", "dropped", "masked_images", "dropped_images"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("kept_per_class", "uncertain_per_class"):
            mine = getattr(self, name)
            for cls, n in getattr(other, name).items():
                mine[cls] = mine.get(cls, 0) + n
        self.unreadable.extend(other.unreadable)
        self.no_label_classes = sorted(set(self.no_label_classes) | set(other.no_label_classes))

    @classmethod
    def from_dict(cls, values: dict) -> LabelStats:
        values = dict(values)
        for key in ("kept_per_class", "uncertain_per_class"):
            values[key] = {int(k): v for k, v in values.get(key, {}).items()}
        return cls(**values)


def make_detector(weights: Sequence[str | Path], settings: LabelSettings, export_dir: Path | None = None) -> Detector:
    return Detector(
        weights,
        imgsz=settings.imgsz,
        device=settings.device,
        conf=settings.floor,
        backend=settings.backend,
        tta=settings.tta,
        export_dir=export_dir,
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
        return ClassThresholds.global_conf(n_classes, settings.conf, settings.band_low)

    def val_boxes() -> Iterator:
        frames = detector.run(val, batch=settings.batch, workers=settings.workers, keep_images=reviewer is not None)
        for frame in frames:
            if frame.detections is not None and frame.item.label is not None:
                detections = frame.detections
                if reviewer is not None and frame.image is not None and len(detections):
                    detections, _ = reviewer.review(frame.image, detections)
                yield detections, clean_label_file(frame.item.label, n_classes).rows, frame.shape

    return thresholds_for_precision(val_boxes(), n_classes, settings.target_precision, settings.band_low)


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
    writer = _Writer(root, settings, thresholds, names, reviewer)
    with RecordWriter(root / RECORD_FILE) as writer.record:
        keep_images = settings.uncertain == "mask" or reviewer is not None
        frames = detector.run(images, settings.batch, keep_images, settings.workers, on_progress)
        write_behind(frames, writer.write, ahead=settings.batch)  # one batch behind the model: enough to overlap
    return writer.finish(0.0)


def write_behind(frames: Iterator[Frame], write: Callable[[Frame], None], ahead: int) -> None:
    """`write` each frame, in order, on a thread of its own while the model works on the next batch.

    Label files, record rows and masked JPEGs are mostly system calls and encoding outside the GIL:
    on the model's thread they add their time to every batch. At most `ahead` frames wait (they
    may hold decoded images), and the first error a write raises is raised here.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="yolossl-write") as pool:
        pending: deque[Future[None]] = deque()
        for frame in frames:
            pending.append(pool.submit(write, frame))
            while pending and (len(pending) > ahead or pending[0].done()):
                pending.popleft().result()
        for future in pending:
            future.result()


def finish_output(partial: Path, out_dir: Path, thresholds: ClassThresholds, stats: LabelStats) -> None:
    """Add thresholds.json and stats.json to a finished labeling folder and move it into place."""
    thresholds.save(partial / "thresholds.json")
    (partial / "stats.json").write_text(json.dumps(stats.to_dict(), indent=2))
    replace_dir(partial, out_dir)


class _Writer:
    """Turns frames into label files, image links or masked copies, record rows and counts."""

    def __init__(
        self,
        root: Path,
        settings: LabelSettings,
        thresholds: ClassThresholds,
        names: dict[int, str],
        reviewer: ClassReviewer | None,
    ):
        self.root, self.settings, self.thresholds, self.names = root, settings, thresholds, names
        self.reviewer = reviewer
        self.stats = LabelStats(no_label_classes=thresholds.unreachable)
        self.kept: Counter[int] = Counter()
        self.uncertain: Counter[int] = Counter()
        self._reasons: dict[tuple[str, int], str] = {}
        self.record: RecordWriter

    def write(self, frame: Frame) -> None:
        item = frame.item
        if frame.detections is None:
            logger.warning("%s: %s, skipped", item.path, why_unreadable(item.path))
            self.stats.unreadable.append(str(item.path))
            return
        self.stats.images += 1
        dets = frame.detections
        opinions: list[BoxOpinion] | None = None
        if self.reviewer is not None and frame.image is not None and len(dets):
            dets, opinions = self.reviewer.review(frame.image, dets)
        status = box_status(dets, self.thresholds, len(self.names))
        if self.settings.uncertain == "keep":
            status[status == UNCERTAIN] = DROPPED
        classes = dets.classes.tolist()
        reasons = [self._reason(s, c) for s, c in zip(status.tolist(), classes, strict=True)]
        for k, opinion in enumerate(opinions or []):
            if opinion.decision.startswith("dropped"):
                reasons[k] = opinion.decision
        kept, uncertain = status == KEPT, status == UNCERTAIN
        has_uncertain = bool(uncertain.any())
        if has_uncertain and self.settings.uncertain == "drop-image":
            left_out = "image left out: it has uncertain boxes"
            reasons = [left_out if s == KEPT else r for s, r in zip(status, reasons, strict=True)]
            status[kept] = DROPPED
            kept = status == KEPT
            self.stats.dropped_images += 1
        xywhn = dets.xywhn(frame.shape)
        self._record(frame, dets, xywhn, status, reasons, opinions)
        self.kept.update(dets.classes[kept].tolist())
        self.uncertain.update(dets.classes[uncertain].tolist())
        n_kept, n_uncertain = int(kept.sum()), int(uncertain.sum())
        self.stats.kept += n_kept
        self.stats.uncertain += n_uncertain
        self.stats.dropped += len(dets) - n_kept - n_uncertain
        self.stats.images_with_boxes += n_kept > 0
        if has_uncertain and self.settings.uncertain == "drop-image":
            return
        if not n_kept and not self.settings.empty_label_files:
            return
        write_yolo_labels(self.root / "labels" / f"{item.id}.txt", dets.classes[kept], xywhn[kept])
        if has_uncertain and self.settings.uncertain == "mask" and frame.image is not None:
            masked = mask_uncertain(frame.image, dets.xyxy[uncertain], dets.xyxy[kept])
            self._write_image(item, masked)
            self.stats.masked_images += 1
        else:
            link_file(item.path, self.root / "images" / f"{item.id}{item.path.suffix}")

    def _reason(self, status: str, cls: int) -> str:
        """Why a box of class `cls` got `status`; a handful of distinct texts, so each is made once."""
        key = (status, cls)
        if key not in self._reasons:
            self._reasons[key] = self._explain(status, cls)
        return self._reasons[key]

    def _explain(self, status: str, cls: int) -> str:
        limit = self.thresholds.kept.get(int(cls), float("inf"))
        below = f"score < {limit:.3f}" if limit != float("inf") else "class threshold unreachable on val"
        if status == KEPT:
            return f"score >= {limit:.3f}"
        if status == UNCERTAIN:
            return f"score in [{self.thresholds.band_low:.3f}, {limit:.3f})" if limit != float("inf") else below
        if self.settings.uncertain == "keep":  # no band: everything not kept is simply dropped
            return below
        return f"score < {self.thresholds.band_low:.3f}"

    def _record(
        self,
        frame: Frame,
        dets: Detections,
        xywhn: np.ndarray,
        status: np.ndarray,
        reasons: list[str],
        opinions: list[BoxOpinion] | None,
    ) -> None:
        image_id, image = frame.item.id, str(frame.item.path)
        boxes = zip(dets.classes.tolist(), dets.scores.tolist(), xywhn.tolist(), status.tolist(), reasons, strict=True)
        rows = [
            RecordRow(image_id, image, c, self.names.get(c, str(c)), score, tuple(box), state, reason)
            for c, score, box, state, reason in boxes
        ]
        for k, o in enumerate(opinions or []):
            rows[k] = replace(
                rows[k],
                det_class_id=o.det_class,
                head_class_id=o.head_class,
                head_score=o.head_score,
                head_decision=o.decision,
            )
        self.record.write(rows)

    def _write_image(self, item: ImageItem, image: np.ndarray) -> None:
        suffix = item.path.suffix.lower() if item.path.suffix.lower() in _WRITABLE_SUFFIXES else ".png"
        target = self.root / "images" / f"{item.id}{suffix}"
        if not cv2.imwrite(str(target), image, [cv2.IMWRITE_JPEG_QUALITY, 95]):
            raise YolosslError(f"{target}: could not write the masked copy of {item.path}")

    def finish(self, wall_time_s: float) -> LabelStats:
        self.stats.kept_per_class = {c: self.kept.get(c, 0) for c in self.names}
        self.stats.uncertain_per_class = {c: self.uncertain.get(c, 0) for c in self.names}
        self.stats.wall_time_s = round(wall_time_s, 3)
        return self.stats


def write_yolo_labels(path: Path, classes: np.ndarray, xywhn: np.ndarray) -> None:
    """One `class xc yc w h` line per box, 6 decimals; an empty file for no boxes."""
    rows = zip(classes.tolist(), xywhn.tolist(), strict=True)
    lines = [f"{int(c)} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n" for c, (x, y, w, h) in rows]
    path.write_text("".join(lines), encoding="utf-8")


def training_items(pseudo_dir: Path, keep_empty: bool = False) -> Iterator[ImageItem]:
    """The images of a labeling pass to train on, each with its label file.

    By default only images with at least one kept box: where nothing was kept the model is
    unsure, not sure there is nothing. `keep_empty` adds them as background images.
    """
    for entry in sorted(p for p in (pseudo_dir / "images").iterdir()):
        label = pseudo_dir / "labels" / f"{entry.stem}.txt"
        if label.is_file() and (keep_empty or label.stat().st_size > 0):
            yield ImageItem(entry.stem, entry, label)


def label_folders(
    models: Sequence[str | Path],
    folders: Sequence[str | Path],
    out_dir: Path,
    settings: LabelSettings,
    data: str | Path | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> LabelStats:
    """`yolossl label`: label every image under `folders` into `out_dir` with one model or an ensemble.

    `data` (a data YAML) gives the class names and, for `target_precision`, the val split to pick
    thresholds on. `out_dir` must be new or an earlier output of this command: it is replaced whole.
    """
    from yolossl.data import load_data_yaml, scan_image_folders
    from yolossl.runtime import describe_device

    _check_replaceable(out_dir)
    if settings.target_precision is not None and data is None:
        raise YolosslError("--target-precision picks thresholds on a val split: pass --data data.yaml")
    spec = load_data_yaml(data) if data is not None else None
    pool = scan_image_folders(folders)
    detector = make_detector(models, settings, export_dir=export_dir_for(out_dir))
    logger.info("Labeling %d images on %s", len(pool.images), describe_device(settings.device))
    names = spec.names if spec else detector.names
    if spec and len(spec.names) != len(detector.names):
        raise YolosslError(f"{spec.yaml_path}: {len(spec.names)} classes, but the model has {len(detector.names)}")
    val = spec.val_items() if spec and settings.target_precision is not None else []
    if val:
        log_split_report(check_split("val", val, spec.val, len(names)))
    thresholds = choose_thresholds(detector, val, settings, len(names))
    return label_pool(detector, models, pool.images, out_dir, settings, thresholds, names, on_progress)


def label_pool(
    detector: Detector,
    weights: Sequence[str | Path],
    images: Sequence[ImageItem],
    out_dir: Path,
    settings: LabelSettings,
    thresholds: ClassThresholds,
    names: dict[int, str],
    on_progress: Callable[[int], None] | None = None,
    reviewer: ClassReviewer | None = None,
) -> LabelStats:
    """Label a pool into `out_dir` on the engine `settings.engine` names: this process, or Ray's actors.

    Ray's actors load `weights` themselves; the local engine uses `detector` (already loaded).
    """
    if settings.engine == "ray":
        from yolossl.label.ray_engine import pseudo_label_ray

        return pseudo_label_ray(
            weights, images, out_dir, settings, thresholds, names, reviewer, settings.shard_size, settings.ray_address
        )
    return pseudo_label(detector, images, out_dir, settings, thresholds, names, on_progress, reviewer)


def export_dir_for(out_dir: Path) -> Path:
    """Where `yolossl label --out out_dir` keeps models exported for --backend: beside the output,
    outside it (the output is replaced whole on the next run; the export is reused)."""
    return out_dir.parent / f".{out_dir.name}-export"


def _check_replaceable(out_dir: Path) -> None:
    """Refuse, before any labeling, to replace a folder yolossl did not build: it may hold the user's files."""
    if out_dir.exists() and any(out_dir.iterdir()) and not is_ours(out_dir):
        raise YolosslError(f"{out_dir}: exists and is not an earlier 'yolossl label' output; choose another --out")
