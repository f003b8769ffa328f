"""The online teacher's options, in `online.json`, which the round's data YAML names (`online:`).

Ultralytics' multi-GPU launch rebuilds the trainer from its arguments alone: whatever the online
trainer needs beyond them (the unlabeled images, the thresholds, the loss rules) is in this file.
Kept free of torch, so the cycle can write it without importing the training stack.

    >>> save_online_settings(OnlineSettings(unlabeled=("a.jpg", "b.jpg")), Path("round_1/online.json"))
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from yolossl._fs import write_text_atomic
from yolossl.errors import YolosslError
from yolossl.train.targets import LossRules

ONLINE_KEY = "online"  # the data YAML's entry naming the file
ONLINE_FILE = "online.json"
CONTINUE_FILE = "continue.pt"
"""Written next to `last.pt` when an online round stops before the run's last epoch: the student, the teacher, the
optimizer and the epoch, so that the next round continues the same run (`OnlineSettings.continue_from`)."""
TEACHER_LOG = "teacher.csv"
"""Written by the online trainer into its save dir, a row per epoch: epoch, u_loss, kept_<class>, seen_<class>
(the teacher's boxes above the floor, and how many of them became targets), thr_<class> (its threshold),
hard_<class> and soft_<class> (its share of the unlabeled images' class loss from kept and from soft targets; the
rest is background); the report plots it."""


@dataclass(frozen=True)
class OnlineSettings:
    """What the online trainer needs beyond Ultralytics' arguments."""

    unlabeled: tuple[str, ...]
    """The unlabeled images (paths)."""
    rules: LossRules = field(default_factory=LossRules)
    """lambda_u and the regression gate; classes without a threshold are added from the current thresholds."""
    unlabeled_ratio: float = 1.0
    """Unlabeled images per labeled image in each batch."""
    conf: float = 0.25
    """The kept threshold of every class when `target_precision` is None."""
    target_precision: float | None = None
    """Per-class thresholds reaching this precision on val (refreshed each validation)."""
    uncertain_low: float = 0.1
    """The teacher's floor: boxes below are nothing; between it and the threshold, ignore regions."""
    burn_in_epochs: int = 0
    """Epochs of labeled-only training first, for a student that does not start from trained weights."""
    ema_max_decay: float = 0.999
    strong_flip: float = 0.5
    """Probability that the strong view is also mirrored (the teacher's boxes follow)."""
    strong_scale: float = 0.0
    """The strong view's zoom factor lies in 1 ± this (`views.jitter_matrices`)."""
    strong_translate: float = 0.0
    """The strong view's shift is up to ± this share of the width and height."""
    nms_iou: float = 0.7
    continue_from: str | None = None
    """An earlier round's `CONTINUE_FILE`: this round goes on from its epoch, student, teacher and optimizer (one
    run in segments, not a restart). None: the run starts here."""
    stop_epoch: int | None = None
    """This round ends after this epoch of the run (its teacher validated and `CONTINUE_FILE` written); None: at the
    run's last epoch."""

    def __post_init__(self) -> None:
        if not self.unlabeled:
            raise YolosslError("the online teacher needs unlabeled images, got none")
        if not (math.isfinite(self.unlabeled_ratio) and self.unlabeled_ratio > 0):
            raise YolosslError(f"unlabeled_ratio must be a number > 0, got {self.unlabeled_ratio}")
        if not 0.0 <= self.uncertain_low <= self.conf < 1.0:
            raise YolosslError(f"need 0 <= uncertain_low <= conf < 1, got {self.uncertain_low} and {self.conf}")
        if self.burn_in_epochs < 0:
            raise YolosslError(f"burn_in_epochs must be >= 0, got {self.burn_in_epochs}")
        if not 0.0 <= self.ema_max_decay < 1.0:
            raise YolosslError(f"ema_max_decay must be in [0, 1), got {self.ema_max_decay}")
        if not (0.0 <= self.strong_scale < 1.0 and 0.0 <= self.strong_translate <= 0.5):
            raise YolosslError(
                f"need 0 <= strong_scale < 1 and 0 <= strong_translate <= 0.5, got {self.strong_scale} and "
                f"{self.strong_translate}"
            )
        if self.stop_epoch is not None and self.stop_epoch < 1:
            raise YolosslError(f"stop_epoch must be >= 1, got {self.stop_epoch}")


def save_online_settings(settings: OnlineSettings, path: Path) -> None:
    values = asdict(settings)
    values["unlabeled"] = list(settings.unlabeled)
    write_text_atomic(path, json.dumps(values, indent=1))


def load_online_settings(path: Path) -> OnlineSettings:
    """Read what `save_online_settings` wrote; a missing or damaged file is one line naming it."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        rules = raw.pop("rules")
        return OnlineSettings(
            **{**raw, "unlabeled": tuple(raw["unlabeled"])},
            rules=LossRules(
                rules["lambda_u"],
                rules["box_min_score"],
                tuple(rules["no_threshold_classes"]),
                rules.get("unsure", "ignore"),  # settings written before soft targets (6 Dec) ignored the band
            ),
        )
    except FileNotFoundError as e:
        raise YolosslError(f"{path}: not found; the data YAML's '{ONLINE_KEY}' names it") from e
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise YolosslError(f"{path}: not an online settings file written by yolossl ({type(e).__name__}: {e})") from e
