"""What a cycle reads before its first round: the labeled and val splits checked, the pool scanned and guarded.

Everything here is read and checked before the run folder is made, so a bad input fails in one
line without leaving a half-made run behind.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from yolossl._fs import write_text_atomic
from yolossl.config import CycleConfig
from yolossl.data import DatasetSpec, ImageItem, ImagePool, load_data_yaml, scan_image_folders
from yolossl.errors import YolosslError
from yolossl.labels import SplitReport, check_split, log_split_report
from yolossl.leakage import find_leaks

logger = logging.getLogger(__name__)

DATA_REPORT_FILE = "data_report.json"
REPORT_LIMIT = 1000  # entries per list in data_report.json: enough to act on, never megabytes


@dataclass
class CycleInputs:
    """The labeled split, the val split, the unlabeled pool (val copies left out) and what the checks found."""

    config: CycleConfig
    spec: DatasetSpec
    labeled: list[ImageItem]
    val: list[ImageItem]
    pool: ImagePool
    leaks: dict[str, str]
    reports: list[SplitReport]

    @property
    def names(self) -> dict[int, str]:
        return self.spec.names


def read_inputs(config: CycleConfig, config_path: Path) -> CycleInputs:
    """Load the data YAML, check both splits' labels, scan the pool and leave out copies of val images."""
    if not config.data:
        raise YolosslError(f"{config_path}: 'data' is not set")
    spec = load_data_yaml(config.data)
    labeled, val = spec.train_items(), spec.val_items()
    n_classes = len(spec.names)
    reports = [check_split("train", labeled, spec.train, n_classes), check_split("val", val, spec.val, n_classes)]
    pool = scan_image_folders(config.unlabeled) if config.rounds else ImagePool(folders=())
    leaks = find_leaks(pool.images, val, config.leakage) if config.rounds else {}
    pool.images = [item for item in pool.images if item.id not in leaks]
    if config.rounds and not pool.images:
        raise YolosslError(f"every unlabeled image in {', '.join(config.unlabeled)} is a copy of a val image")
    return CycleInputs(config, spec, labeled, val, pool, leaks, reports)


def log_inputs(inputs: CycleInputs) -> None:
    """The data line, each split's label problems, and the leakage guard's finding."""
    logger.info(
        "Data: %d labeled images, %d unlabeled images, %d classes",
        len(inputs.labeled),
        len(inputs.pool),
        len(inputs.names),
    )
    for report in inputs.reports:
        log_split_report(report)
    if inputs.leaks:
        example = next(iter(inputs.leaks.items()))
        logger.warning(
            "Leakage guard: %d unlabeled images are copies of val images and are left out (e.g. %s = %s)",
            len(inputs.leaks),
            example[0],
            example[1],
        )


def write_data_report(inputs: CycleInputs, run_dir: Path) -> None:
    """`data_report.json`: what the input checks found and did, for the summary and the report."""
    report = {
        "splits": {
            r.split: {
                "images": r.images,
                "counts": r.counts(),
                "issues": [str(i) for i in r.issues[:REPORT_LIMIT]],
                "images_without_label": r.images_without_label[:REPORT_LIMIT],
                "labels_without_image": r.labels_without_image[:REPORT_LIMIT],
            }
            for r in inputs.reports
        },
        "pool": {
            "folders": [str(f) for f in inputs.pool.folders],
            "images": len(inputs.pool.images),
            "non_images_skipped": inputs.pool.skipped,
            "leakage_mode": inputs.config.leakage,
            "leakage_excluded": len(inputs.leaks),
            "leaks": dict(list(inputs.leaks.items())[:REPORT_LIMIT]),
        },
    }
    write_text_atomic(run_dir / DATA_REPORT_FILE, json.dumps(report, indent=2))
