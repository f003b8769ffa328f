"""Writing one labeling pass: each frame's boxes sorted, labels and image links (or masked copies) written, counted.

The writer is the one place a box's fate is written down: its label line, its `record.csv` row
(`label.record`), its share of the counts (`LabelStats`). A class reviewer (the FixMatch head)
gives its opinion before the thresholds apply; `write_behind` keeps writing off the model's thread.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from yolossl._fs import link_file
from yolossl.boxes import Detections, yolo_label_text
from yolossl.data import ImageItem
from yolossl.errors import YolosslError
from yolossl.images import why_unreadable
from yolossl.label.decisions import BoxOpinion, ClassReviewer, decide, decision_chain
from yolossl.label.engine import Frame
from yolossl.label.filters import ClassThresholds, mask_uncertain
from yolossl.label.record import RecordRow, RecordWriter
from yolossl.label.settings import FilterSettings

logger = logging.getLogger(__name__)

_WRITABLE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


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


class PoolWriter:
    """Turns frames into label files, image links or masked copies, record rows and counts.

    Masked copies are encoded on `encoders` threads of their own (JPEG encoding releases the GIL): one thread
    encoding a full-size copy per image cannot keep up with a GPU. At most `encoders` copies wait at a time.
    """

    def __init__(
        self,
        root: Path,
        filtering: FilterSettings,
        thresholds: ClassThresholds,
        names: dict[int, str],
        reviewer: ClassReviewer | None,
        encoders: int = 1,
    ):
        self.root, self.filtering, self.thresholds, self.names = root, filtering, thresholds, names
        self.encoders = ThreadPoolExecutor(encoders, thread_name_prefix="yolossl-encode") if encoders > 1 else None
        self.encoding: deque[Future[None]] = deque()
        self.max_encoding = encoders
        self.steps = decision_chain(filtering, thresholds, len(names), reviewer)
        self.stats = LabelStats(no_label_classes=thresholds.unreachable)
        self.kept: Counter[int] = Counter()
        self.uncertain: Counter[int] = Counter()
        self.record: RecordWriter

    def write(self, frame: Frame) -> None:
        item = frame.item
        if frame.detections is None:
            logger.warning("%s: %s, skipped", item.path, why_unreadable(item.path))
            self.stats.unreadable.append(str(item.path))
            return
        self.stats.images += 1
        d = decide(self.steps, frame.detections, frame.image)
        dets, kept, uncertain = d.detections, d.kept, d.uncertain
        self.stats.dropped_images += d.image_left_out
        xywhn = dets.xywhn(frame.shape)
        self._record(frame, dets, xywhn, d.status, d.reasons, d.opinions)
        self.kept.update(dets.classes[kept].tolist())
        self.uncertain.update(dets.classes[uncertain].tolist())
        n_kept, n_uncertain = int(kept.sum()), int(uncertain.sum())
        self.stats.kept += n_kept
        self.stats.uncertain += n_uncertain
        self.stats.dropped += len(dets) - n_kept - n_uncertain
        self.stats.images_with_boxes += n_kept > 0
        if d.image_left_out:
            return
        if not n_kept and not self.filtering.empty_label_files:
            return
        write_yolo_labels(self.root / "labels" / f"{item.id}.txt", dets.classes[kept], xywhn[kept])
        if uncertain.any() and self.filtering.uncertain == "mask" and frame.image is not None:
            masked = mask_uncertain(frame.image, dets.xyxy[uncertain], dets.xyxy[kept])
            self._write_image(item, masked)
            self.stats.masked_images += 1
        else:
            link_file(item.path, self.root / "images" / f"{item.id}{item.path.suffix}")

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
        if self.encoders is None:
            _encode(target, image, item.path)
            return
        self.encoding.append(self.encoders.submit(_encode, target, image, item.path))
        while self.encoding and (len(self.encoding) > self.max_encoding or self.encoding[0].done()):
            self.encoding.popleft().result()

    def finish(self, wall_time_s: float) -> LabelStats:
        """The counts, once every masked copy is on disk (the first encoding error is raised here)."""
        if self.encoders is not None:
            try:
                while self.encoding:
                    self.encoding.popleft().result()
            finally:
                self.encoders.shutdown(wait=True)
        self.stats.kept_per_class = {c: self.kept.get(c, 0) for c in self.names}
        self.stats.uncertain_per_class = {c: self.uncertain.get(c, 0) for c in self.names}
        self.stats.wall_time_s = round(wall_time_s, 3)
        return self.stats


def _encode(target: Path, image: np.ndarray, source: Path) -> None:
    if not cv2.imwrite(str(target), image, [cv2.IMWRITE_JPEG_QUALITY, 95]):
        raise YolosslError(f"{target}: could not write the masked copy of {source}")


def write_yolo_labels(path: Path, classes: np.ndarray, xywhn: np.ndarray) -> None:
    """One `class xc yc w h` line per box, 6 decimals; an empty file for no boxes."""
    path.write_text(yolo_label_text(classes, xywhn), encoding="utf-8")
