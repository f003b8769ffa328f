"""A cycle round's FixMatch head: trained on this round's crops, then handed to labeling as its reviewer.

Labeled crops come from the labeled split's true boxes; unlabeled ones from the round's detector
candidates on the pool, spread over the pool and capped, so a large pool costs the head a fixed time.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from yolossl.config import CycleConfig
from yolossl.data import ImageItem
from yolossl.fixmatch.crops import extract_crops, labeled_box_crops
from yolossl.fixmatch.head import HeadReviewer, fit_head
from yolossl.fixmatch.train import FixMatchConfig
from yolossl.label.engine import Detector

logger = logging.getLogger(__name__)

MAX_UNLABELED_IMAGES = 2000  # pool images the head takes unlabeled crops from, each round
MAX_UNLABELED_CROPS = 20000


def fit_round_head(
    detector: Detector,
    labeled: Sequence[ImageItem],
    pool: Sequence[ImageItem],
    names: dict[int, str],
    config: CycleConfig,
    uncertain_low: float,
    batch: int,
    device: str,
    save_to: Path,
) -> HeadReviewer:
    """Train this round's head on labeled box crops and the detector's candidates (score >= `uncertain_low`)."""
    crops, labels = labeled_box_crops(labeled, len(names), seed=config.seed)
    unlabeled = _candidate_crops(detector, pool, uncertain_low, batch, config.seed)
    logger.info(
        "FixMatch head: %d labeled crops, %d unlabeled crops, %d steps",
        len(crops),
        0 if unlabeled is None else len(unlabeled),
        config.fixmatch_steps,
    )
    fixmatch = FixMatchConfig(steps=config.fixmatch_steps, tau=config.fixmatch_tau, seed=config.seed, device=device)
    head, _ = fit_head(crops, labels, unlabeled, names, fixmatch)
    head.save(save_to)
    return HeadReviewer(head, config.fixmatch_mode, config.fixmatch_min_conf)


def _candidate_crops(
    detector: Detector, pool: Sequence[ImageItem], uncertain_low: float, batch: int, seed: int
) -> np.ndarray | None:
    """Crops of the candidate boxes on at most MAX_UNLABELED_IMAGES pool images; at most MAX_UNLABELED_CROPS."""
    step = max(1, len(pool) // MAX_UNLABELED_IMAGES)
    crops = [
        extract_crops(frame.image, frame.detections.select(frame.detections.scores >= uncertain_low).xyxy)
        for frame in detector.run(pool[::step], batch, keep_images=True)
        if frame.detections is not None
    ]
    unlabeled = np.concatenate(crops) if crops else None
    if unlabeled is not None and len(unlabeled) > MAX_UNLABELED_CROPS:
        unlabeled = unlabeled[np.random.default_rng(seed).choice(len(unlabeled), MAX_UNLABELED_CROPS, False)]
    return unlabeled
