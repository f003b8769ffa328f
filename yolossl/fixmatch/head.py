"""The FixMatch head: a crop classifier that gives every candidate box a second opinion on its class.

Labeled crops come from ground-truth boxes (a little jitter, so that they look like a detector's
boxes), unlabeled crops from the detector's candidates on the pool. `combine` then merges the two
opinions per box:

- the head agrees: the box keeps its class and score;
- the head confidently names another class (probability >= `min_head_conf`): `relabel` gives the
  box the head's class, `drop` removes it (score 0);
- the head is unsure: the detector's class stands.

Scores blend both opinions: det_score ** (1 - head_weight) * p_head(kept class) ** head_weight, so a
box the head confirms gains score and one it doubts loses it (head_weight 0: the detector's scores).

    >>> head = fit_head(train_crops, train_labels, pool_crops, names, FixMatchConfig(steps=800))
    >>> classes, scores, decisions = combine(det.classes, det.scores, head.predict_proba(image, det.xyxy))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from yolossl.boxes import Detections
from yolossl.errors import YolosslError
from yolossl.fixmatch.crops import extract_crops
from yolossl.fixmatch.model import crop_classifier
from yolossl.fixmatch.train import FixMatchConfig, FixMatchResult, predict_proba, train_fixmatch
from yolossl.label.decisions import BoxOpinion

COMBINE_MODES = ("relabel", "drop")


@dataclass
class FixMatchHead:
    """A trained crop classifier and what it needs to classify boxes of new images."""

    model: torch.nn.Module
    names: dict[int, str]
    size: int = 32
    width: int = 16

    def predict_proba(self, image: np.ndarray, xyxy: np.ndarray) -> np.ndarray:
        """(N, n_classes) probabilities for the boxes `xyxy` (N, 4 pixels) of `image`."""
        if not len(xyxy):
            return np.zeros((0, len(self.names)), dtype=np.float32)
        return predict_proba(self.model, extract_crops(image, xyxy, self.size))

    def save(self, path: Path) -> None:
        state = {"state_dict": self.model.state_dict(), "names": self.names, "size": self.size, "width": self.width}
        torch.save(state, path)

    @classmethod
    def load(cls, path: Path, device: str = "cpu") -> FixMatchHead:
        state = torch.load(path, map_location="cpu", weights_only=False)
        model = crop_classifier(len(state["names"]), state["width"])
        model.load_state_dict(state["state_dict"])
        return cls(model.to(device).eval(), state["names"], state["size"], state["width"])


def fit_head(
    labeled: np.ndarray,
    labels: np.ndarray,
    unlabeled: np.ndarray | None,
    names: dict[int, str],
    config: FixMatchConfig | None = None,
) -> tuple[FixMatchHead, FixMatchResult]:
    """Train the head with FixMatch on crops (N, S, S, 3); the result holds the losses and mask ratios."""
    config = config or FixMatchConfig()
    if not len(labeled):
        raise YolosslError("the FixMatch head needs labeled boxes to learn from; the labeled split has none")
    result = train_fixmatch(labeled, labels, unlabeled, len(names), config)
    return FixMatchHead(result.model, dict(names), labeled.shape[1], config.width), result


def combine(
    det_classes: np.ndarray,
    det_scores: np.ndarray,
    head_probs: np.ndarray,
    mode: str = "relabel",
    min_head_conf: float = 0.8,
    head_weight: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(classes, scores, decision per box) after taking the head's opinion into account."""
    if mode not in COMBINE_MODES:
        raise YolosslError(f"--fixmatch-mode must be one of {', '.join(COMBINE_MODES)}, got {mode!r}")
    classes, scores = det_classes.copy(), det_scores.copy()
    decisions = []
    if not len(classes):
        return classes, scores, decisions
    head_classes, head_conf = head_probs.argmax(1), head_probs.max(1)
    for k, (det, head, conf) in enumerate(zip(det_classes, head_classes, head_conf, strict=True)):
        if head == det:
            decisions.append("agree")
        elif conf < min_head_conf:
            decisions.append("head unsure")
        elif mode == "relabel":
            classes[k] = head
            decisions.append(f"relabeled {int(det)}->{int(head)}")
        else:
            scores[k] = 0.0
            decisions.append(f"dropped: head says {int(head)}")
    kept = scores > 0
    agreement = head_probs[np.arange(len(classes)), classes]
    scores[kept] = scores[kept] ** (1 - head_weight) * agreement[kept] ** head_weight
    return classes, scores, decisions


@dataclass
class HeadReviewer:
    """The head as the labeling step's class reviewer: `combine` applied to every image's candidates."""

    head: FixMatchHead
    mode: str = "relabel"
    min_head_conf: float = 0.8
    head_weight: float = 0.5

    def review(self, image: np.ndarray, detections: Detections) -> tuple[Detections, list[BoxOpinion]]:
        probs = self.head.predict_proba(image, detections.xyxy)
        classes, scores, decisions = combine(
            detections.classes, detections.scores, probs, self.mode, self.min_head_conf, self.head_weight
        )
        opinions = [
            BoxOpinion(int(d), int(p.argmax()), float(p.max()), decision)
            for d, p, decision in zip(detections.classes, probs, decisions, strict=True)
        ]
        return Detections(detections.xyxy, scores, classes), opinions
