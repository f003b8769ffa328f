"""The FixMatch head: semi-supervised crop classification that double-checks pseudo-label classes.

- `crops`: object crops from images and boxes (context, edges, tiny boxes, grayscale);
- `augment`: FixMatch's weak and strong views (albumentations);
- `model`: the small crop classifier;
- `train`: the FixMatch step, the EMA, the loop;
- `head`: the trained head, and `combine` of detector and head opinions;
- `folders`: classification SSL on ImageNet-style folders (`yolossl fixmatch`).
"""

from __future__ import annotations

from yolossl.fixmatch.crops import extract_crops, labeled_box_crops
from yolossl.fixmatch.folders import ClassificationResult, compare_on_folders
from yolossl.fixmatch.head import COMBINE_MODES, FixMatchHead, combine, fit_head
from yolossl.fixmatch.train import EMA, FixMatchConfig, FixMatchResult, fixmatch_loss, predict_proba, train_fixmatch

__all__ = [
    "COMBINE_MODES",
    "EMA",
    "ClassificationResult",
    "FixMatchConfig",
    "FixMatchHead",
    "FixMatchResult",
    "combine",
    "compare_on_folders",
    "extract_crops",
    "fit_head",
    "fixmatch_loss",
    "labeled_box_crops",
    "predict_proba",
    "train_fixmatch",
]
