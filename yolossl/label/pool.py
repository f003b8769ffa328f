"""Labeling a whole pool: `yolossl label`'s entry point, and the one place that picks this process or Ray.

Above both engines (`pseudo` labels in this process, `ray_engine` over an actor pool), so neither
imports the other.

    >>> stats = label_folders(["best.pt"], ["/mnt/cams"], Path("pseudo/"), LabelSettings(imgsz=640))
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from yolossl._fs import check_output_dir
from yolossl.data import ImageItem
from yolossl.errors import YolosslError
from yolossl.label.decisions import ClassReviewer
from yolossl.label.engine import Detector
from yolossl.label.filters import ClassThresholds
from yolossl.label.pseudo import choose_thresholds, export_dir_for, make_detector, pseudo_label
from yolossl.label.settings import LabelSettings
from yolossl.label.writer import LabelStats
from yolossl.labels import check_split, log_split_report

logger = logging.getLogger(__name__)


def label_folders(
    models: Sequence[str | Path],
    folders: Sequence[str | Path],
    out_dir: Path,
    settings: LabelSettings,
    data: str | Path | None = None,
    on_progress: Callable[[int], None] | None = None,
    exist_ok: bool = False,
) -> LabelStats:
    """`yolossl label`: label every image under `folders` into `out_dir` with one model or an ensemble.

    `data` (a data YAML) gives the class names and, for `target_precision`, the val split to pick
    thresholds on. `out_dir` must be new or empty; with `exist_ok` also an earlier yolossl output, replaced whole.
    """
    from yolossl.data import load_data_yaml, scan_image_folders
    from yolossl.runtime import describe_device

    check_output_dir(out_dir, exist_ok)
    if settings.target_precision is not None and data is None:
        raise YolosslError("--target-precision picks thresholds on a val split: pass --data data.yaml")
    spec = load_data_yaml(data) if data is not None else None
    pool = scan_image_folders(folders)
    detector = make_detector(models, settings.predict, export_dir=export_dir_for(out_dir))
    logger.info("Labeling %d images on %s", len(pool.images), describe_device(settings.device))
    names = spec.names if spec else detector.names
    if spec and len(spec.names) != len(detector.names):
        raise YolosslError(f"{spec.yaml_path}: {len(spec.names)} classes, but the model has {len(detector.names)}")
    val = spec.val_items() if spec and settings.target_precision is not None else []
    if val:
        log_split_report(check_split("val", val, spec.val, len(names)))
    thresholds = choose_thresholds(detector, val, settings, len(names))
    return label_pool(detector, pool.images, out_dir, settings, thresholds, names, on_progress)


def label_pool(
    detector: Detector,
    images: Sequence[ImageItem],
    out_dir: Path,
    settings: LabelSettings,
    thresholds: ClassThresholds,
    names: dict[int, str],
    on_progress: Callable[[int], None] | None = None,
    reviewer: ClassReviewer | None = None,
) -> LabelStats:
    """Label a pool into `out_dir` on the engine `settings.engine` names: this process, or Ray's actors.

    Ray's actors load the files `detector` loaded (the weights, or the models it exported for the backend: no actor
    exports its own); the local engine uses `detector` itself.
    """
    if settings.engine == "ray":
        from yolossl.label.ray_engine import pseudo_label_ray

        return pseudo_label_ray(
            detector.sources,
            images,
            out_dir,
            settings,
            thresholds,
            names,
            reviewer,
            settings.shard_size,
            settings.ray_address,
        )
    return pseudo_label(detector, images, out_dir, settings, thresholds, names, on_progress, reviewer)
