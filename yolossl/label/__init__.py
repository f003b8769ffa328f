"""Pseudo-labeling: the detector engine, the box filters, and the step that writes a pool's labels.

- `engine`: batched, threaded, streaming inference on any Ultralytics backend (`Detector`, `Detections`).
- `settings`: what labeling is asked to do (`LabelSettings`), checked in one place.
- `filters`: per-class thresholds, the uncertain band and its masking (`ClassThresholds`).
- `fusion`: weighted boxes fusion of TTA views and ensemble members.
- `record`: `record.csv`, every candidate box and its fate: the columns and one typed reader.
- `pseudo`: the step itself: labels, image links or masked copies, the per-box record, the counts.
"""

from __future__ import annotations

from yolossl.label.engine import Detections, Detector, Frame
from yolossl.label.filters import ClassThresholds
from yolossl.label.pseudo import (
    LabelStats,
    choose_thresholds,
    label_pool,
    make_detector,
    pseudo_label,
    training_items,
    write_yolo_labels,
)
from yolossl.label.record import RECORD_COLUMNS, RecordRow, read_record
from yolossl.label.settings import LabelSettings

__all__ = [
    "RECORD_COLUMNS",
    "ClassThresholds",
    "Detections",
    "Detector",
    "Frame",
    "LabelSettings",
    "LabelStats",
    "RecordRow",
    "choose_thresholds",
    "label_pool",
    "make_detector",
    "pseudo_label",
    "read_record",
    "training_items",
    "write_yolo_labels",
]
