"""What a cycle reads before its first round: the labeled and val splits checked, the pool scanned and guarded.

Everything here is read and checked before the run folder is made, so a bad input fails in one
line without leaving a half-made run behind.
"""

from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from yolossl._fs import write_text_atomic
from yolossl.config import CycleConfig
from yolossl.data import DatasetSpec, ImageItem, ImagePool, load_data_yaml, scan_image_folders
from yolossl.errors import YolosslError
from yolossl.images import unreadable_reason
from yolossl.labels import SplitReport, check_class_ids, check_split, log_split_report
from yolossl.leakage import find_leaks
from yolossl.models import check_model_source
from yolossl.runtime import resolve_device
from yolossl.train import check_train_args

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
    unreadable: dict[str, str] = field(default_factory=dict)
    """Pool images left out because they cannot be read (path: why), found before the first round."""
    test: list[ImageItem] = field(default_factory=list)
    """The data YAML's `test:` images: each round is scored on them, nothing is chosen with them."""

    @property
    def names(self) -> dict[int, str]:
        return self.spec.names


def read_inputs(config: CycleConfig, config_path: Path) -> CycleInputs:
    """Load the data YAML, check its splits' labels, scan the pool and leave out copies of val and test images."""
    if not config.data:
        raise YolosslError(f"{config_path}: 'data' is not set")
    spec = load_data_yaml(config.data)
    labeled, val, test = spec.train_items(), spec.val_items(), spec.test_items()
    n_classes = len(spec.names)
    reports = [check_split("train", labeled, spec.train, n_classes), check_split("val", val, spec.val, n_classes)]
    if spec.test:
        reports.append(check_split("test", test, spec.test, n_classes))
    check_class_ids(reports, spec.yaml_path, n_classes)
    pool = scan_image_folders(config.unlabeled) if config.rounds else ImagePool(folders=())
    # A pool copy of a test image would be trained on and then scored: left out like a copy of val.
    leaks = find_leaks(pool.images, val + test, config.leakage) if config.rounds else {}
    pool.images = [item for item in pool.images if item.id not in leaks]
    if config.rounds and not pool.images:
        raise YolosslError(f"every unlabeled image in {', '.join(config.unlabeled)} is a copy of a val or test image")
    return CycleInputs(config, spec, labeled, val, pool, leaks, reports, test=test)


def check_run_settings(config: CycleConfig) -> None:
    """What Ultralytics would refuse only once the first round trains: the device, the models, the training
    arguments."""
    resolve_device(config.device)
    check_model_source(config.model, "--model")
    if config.start_weights:
        check_model_source(config.start_weights, "--start-weights")
    check_train_args(config.train_args)


def log_inputs(inputs: CycleInputs) -> None:
    """The data line, each split's label problems, and the leakage guard's finding."""
    logger.info(
        "Data: %d labeled images, %d unlabeled images, %d classes%s",
        len(inputs.labeled),
        len(inputs.pool),
        len(inputs.names),
        f", {len(inputs.test)} test images (scored, never chosen on)" if inputs.test else "",
    )
    for report in inputs.reports:
        log_split_report(report)
    shared = {os.path.realpath(i.path) for i in inputs.labeled} & {os.path.realpath(i.path) for i in inputs.val}
    if shared:
        logger.warning(
            "%d of the %d val images are train images too%s: val then scores what was trained on, and the round guard, "
            "the thresholds and best.pt are chosen on it; give val its own images",
            len(shared),
            len(inputs.val),
            " (val is train)" if len(shared) == len(inputs.val) else "",
        )
    if inputs.leaks:
        example = next(iter(inputs.leaks.items()))
        logger.warning(
            "Leakage guard: %d unlabeled images are copies of val or test images and are left out (e.g. %s = %s)",
            len(inputs.leaks),
            example[0],
            example[1],
        )


def check_some_readable(inputs: CycleInputs) -> None:
    """A new run's pool none of whose images can be read: one line before the run folder exists. `all` stops at the
    first readable image (one header read for a pool that is fine); the run checks each (`leave_out_unreadable`)."""
    images = inputs.pool.images
    if images and all(unreadable_reason(item.path) for item in images):
        first = images[0].path
        raise YolosslError(
            f"no unlabeled image in {', '.join(inputs.config.unlabeled)} can be read "
            f"(e.g. {first}: {unreadable_reason(first)})"
        )


def leave_out_unreadable(inputs: CycleInputs, known: dict[str, str] | None = None) -> dict[str, str]:
    """Find the pool images that cannot be read (header checks, in threads), warn once naming each, and leave them
    out of `inputs.pool`. `known`: what an earlier start of the same run found (a resume does not check again)."""
    if known is None:
        with ThreadPoolExecutor(max_workers=min(16, (os.cpu_count() or 1) * 2)) as threads:
            reasons = threads.map(lambda item: unreadable_reason(item.path), inputs.pool.images)
            known = {str(item.path): why for item, why in zip(inputs.pool.images, reasons, strict=True) if why}
        for path, why in known.items():
            logger.warning("Unlabeled image left out: %s (%s)", path, why)
    inputs.pool.images = [item for item in inputs.pool.images if str(item.path) not in known]
    inputs.unreadable = known
    if known and not inputs.pool.images:
        raise YolosslError(f"no unlabeled image in {', '.join(inputs.config.unlabeled)} can be read")
    return known


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
            "unreadable_excluded": len(inputs.unreadable),
            "unreadable": dict(list(inputs.unreadable.items())[:REPORT_LIMIT]),
        },
    }
    write_text_atomic(run_dir / DATA_REPORT_FILE, json.dumps(report, indent=2))
