"""Pseudo-labeling: the detector engine, the box filters, and the step that writes a pool's labels.

- `engine`: batched, threaded, streaming inference on any Ultralytics backend (`Detector`, `Detections`).
- `settings`: what labeling is asked to do (`LabelSettings`), checked in one place.
- `filters`: per-class thresholds, the uncertain band and its masking (`ClassThresholds`).
- `decisions`: each box kept, uncertain or dropped, and why, as a chain of steps.
- `fusion`: weighted boxes fusion of TTA views and ensemble members.
- `record`: `record.csv`, every candidate box and its fate: the columns and one typed reader.
- `pseudo`: the step itself: thresholds chosen on val, a pool labeled into a folder that appears whole.
- `writer`: each frame's boxes sorted and written (labels, links or masked copies, record rows, counts).
- `pool`: a whole pool (`yolossl label`), on this process or on Ray (`ray_engine`).
"""

from __future__ import annotations

from yolossl.boxes import Detections
from yolossl.label.engine import Detector, Frame
from yolossl.label.filters import ClassThresholds
from yolossl.label.pool import label_folders, label_pool
from yolossl.label.pseudo import choose_thresholds, make_detector, pseudo_label, training_items
from yolossl.label.record import RECORD_COLUMNS, RecordRow, read_record
from yolossl.label.settings import LabelSettings
from yolossl.label.writer import LabelStats, write_yolo_labels

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
    "label_folders",
    "label_pool",
    "make_detector",
    "pseudo_label",
    "read_record",
    "training_items",
    "write_yolo_labels",
]
