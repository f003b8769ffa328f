"""What the pseudo-aware loss must know about a round's pseudo-labeled images, kept in a file beside its data YAML.

Ultralytics' label files hold `cls xc yc w h` only: they cannot say that a box came from the teacher
(and with what score), nor where the teacher saw something it did not keep. `pseudo_targets.json`
says it, per pseudo-labeled image, and the data YAML names the file (`pseudo_targets:`), so that a
trainer rebuilt from its arguments alone (Ultralytics' multi-GPU re-launch) finds it again.

In the training set every box then carries a *kind* in its class number (`kind * KIND_STRIDE +
class`): the only per-box value that Ultralytics' augmentations (mosaic, affine, flips, crops) move,
clip and filter together with the box itself. A soft target's kind carries the teacher's score too
(`SOFT_KIND + score in thousandths`). The loss reads the kinds back (`yolossl.train.loss`).

    >>> targets = PseudoTargets(LossRules(lambda_u=0.5), {"img1": ImageTargets([(0, 0.9, .5, .5, .2, .2)], [])})
    >>> save_pseudo_targets(targets, Path("round_1/pseudo_targets.json"))
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from yolossl._fs import write_text_atomic
from yolossl.errors import YolosslError
from yolossl.label.filters import KEPT, ClassThresholds
from yolossl.label.record import RECORD_FILE, iter_record

DATA_KEY = "pseudo_targets"  # the data YAML's entry naming the file
FILE_NAME = "pseudo_targets.json"

KIND_STRIDE = 1 << 14  # classes stay below it; every code stays an exact float32 integer (below 2**24)
HUMAN, PSEUDO_BOX, PSEUDO_CLASS_ONLY, IGNORE, PSEUDO_AREA = range(5)
"""Kinds of box: a human label; a pseudo-label that teaches class and box; one that teaches its class
only (box regression gated off); a region where the teacher saw something it did not keep (no
background loss there); the extent of a pseudo-labeled image (its loss follows `LossRules`)."""
SOFT_KIND = 8
SCORE_LEVELS = 1000
"""A soft target (an unsure box teaching its class with the teacher's score as target) is of kind
`SOFT_KIND + round(score * SCORE_LEVELS)`: the score travels with the box, to a thousandth."""
TARGET_KINDS = (HUMAN, PSEUDO_BOX, PSEUDO_CLASS_ONLY)
UNSURE_MODES = ("soft", "ignore", "dense")
"""What the loss does with the teacher's unsure boxes (above the floor, below their class's threshold): soft
class targets at the teacher's score, background weighted by 1 - score; ignore regions (no class loss); or, online
only, no boxes at all: the teacher's dense class scores teach every location of the image (kept boxes still teach
box regression)."""
_WHOLE_IMAGE = (0.5, 0.5, 1.0, 1.0)


def soft_code(cls: int, score: float) -> int:
    """The class code of an unsure box of class `cls` that the teacher scored `score`."""
    return (SOFT_KIND + round(min(max(score, 0.0), 1.0) * SCORE_LEVELS)) * KIND_STRIDE + int(cls)


def is_target_kind(kind: np.ndarray) -> np.ndarray:
    """Which kinds teach a class: human and pseudo boxes, and soft targets."""
    return np.isin(kind, TARGET_KINDS) | (kind >= SOFT_KIND)


@dataclass(frozen=True)
class LossRules:
    """How the loss treats the pseudo-labeled images (human-labeled ones keep Ultralytics' own loss)."""

    lambda_u: float = 1.0
    """Weight of the pseudo-labeled images' loss (class and box terms)."""
    box_min_score: float | None = None
    """Pseudo boxes teach box regression only when the teacher scored them at least this; None: never."""
    no_threshold_classes: tuple[int, ...] = ()
    """Classes the teacher could not label (no usable threshold): no background loss for them on pseudo images."""
    unsure: str = "ignore"
    """The teacher's unsure boxes (`UNSURE_MODES`): soft class targets, or ignore regions."""

    def __post_init__(self) -> None:
        if self.unsure not in UNSURE_MODES:
            raise YolosslError(f"unsure_targets must be one of {', '.join(UNSURE_MODES)}, got {self.unsure!r}")
        if not (math.isfinite(self.lambda_u) and self.lambda_u >= 0):
            raise YolosslError(f"lambda_u must be a number >= 0, got {self.lambda_u}")
        if self.box_min_score is not None and not 0.0 <= self.box_min_score <= 1.0:
            raise YolosslError(
                f"pseudo_box_min_score must be in [0, 1] (or None: no box loss from pseudo-labels), "
                f"got {self.box_min_score}"
            )


@dataclass(frozen=True)
class ImageTargets:
    """One pseudo-labeled image: its kept boxes and unsure boxes `(class, score, xc, yc, w, h)` and its ignore regions
    `(xc, yc, w, h)`, normalised as in YOLO label files."""

    kept: list[tuple[float, ...]]
    ignore: list[tuple[float, ...]]
    unsure: list[tuple[float, ...]] = field(default_factory=list)
    """Boxes the teacher saw above the floor but below their class's threshold: soft targets or ignore regions."""

    def encoded(self, rules: LossRules) -> tuple[np.ndarray, np.ndarray]:
        """Ultralytics' `cls` (n, 1) and `bboxes` (n, 4, xywh) of this image, each class carrying its kind."""
        codes, boxes = [], []
        for cls, score, *box in self.kept:
            regress = rules.box_min_score is not None and score >= rules.box_min_score
            codes.append((PSEUDO_BOX if regress else PSEUDO_CLASS_ONLY) * KIND_STRIDE + int(cls))
            boxes.append(box)
        for cls, score, *box in self.unsure if rules.unsure != "dense" else ():
            codes.append(soft_code(int(cls), score) if rules.unsure == "soft" else IGNORE * KIND_STRIDE)
            boxes.append(box)
        for box in self.ignore:
            codes.append(IGNORE * KIND_STRIDE)
            boxes.append(box)
        codes.append(PSEUDO_AREA * KIND_STRIDE)
        boxes.append(_WHOLE_IMAGE)
        return np.array(codes, dtype=np.float32)[:, None], np.array(boxes, dtype=np.float32).reshape(-1, 4)


@dataclass(frozen=True)
class PseudoTargets:
    """The loss rules and every pseudo-labeled image's targets, by image id (the file's stem in `images_dir`)."""

    rules: LossRules
    images: dict[str, ImageTargets]
    images_dir: str = ""
    """The round dataset's folder of pseudo-labeled images (set by `build_round_dataset`)."""
    source: Path | None = field(default=None, compare=False)

    def mark(self, labels: list[dict[str, Any]]) -> int:
        """Replace the targets of each pseudo-labeled image in Ultralytics' dataset `labels`; return how many.

        Their label files hold the same kept boxes (checked by count): only the kinds and regions are added.
        """
        marked = 0
        for label in labels:
            path = Path(label["im_file"])
            if str(path.parent) != self.images_dir:
                continue
            image = self.images.get(path.stem)
            if image is None:
                raise YolosslError(f"{self.source}: no entry for '{path.stem}' ({path}), a pseudo-labeled image")
            if len(image.kept) != len(label["cls"]):
                raise YolosslError(
                    f"{self.source}: '{path.stem}' has {len(image.kept)} kept boxes here but {len(label['cls'])} in "
                    "its label file; the file belongs to another build of this round's dataset"
                )
            label["cls"], label["bboxes"] = image.encoded(self.rules)
            marked += 1
        return marked


def targets_from_labeling(pseudo_dir: Path, image_ids: Collection[str], rules: LossRules) -> PseudoTargets:
    """The targets of the images `image_ids` from a labeling pass's `record.csv` and `thresholds.json`.

    Kept boxes are targets; every other candidate (uncertain or dropped: the teacher saw it above the
    floor but did not keep it) is unsure (`rules.unsure` decides); classes without a threshold join `rules`.
    """
    thresholds = ClassThresholds.load(pseudo_dir / "thresholds.json")
    images = {image_id: ImageTargets([], []) for image_id in image_ids}
    for row in iter_record(pseudo_dir / RECORD_FILE):
        image = images.get(row.image_id)
        if image is None:
            continue
        (image.kept if row.status == KEPT else image.unsure).append((row.class_id, row.score, *row.xywhn))
    return PseudoTargets(replace(rules, no_threshold_classes=tuple(thresholds.unreachable)), images)


def target_rows(cls: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows of a kind-coded `cls` array that are class targets, and their plain classes."""
    codes = np.asarray(cls).reshape(-1)
    kinds = codes // KIND_STRIDE
    rows = is_target_kind(kinds)
    return rows, codes[rows] - kinds[rows] * KIND_STRIDE


def save_pseudo_targets(targets: PseudoTargets, path: Path) -> None:
    payload = {
        "rules": asdict(targets.rules),
        "images_dir": targets.images_dir,
        "images": {k: {"kept": v.kept, "ignore": v.ignore, "unsure": v.unsure} for k, v in targets.images.items()},
    }
    write_text_atomic(path, json.dumps(payload, separators=(",", ":")))


def load_pseudo_targets(path: Path) -> PseudoTargets:
    """Read a file `save_pseudo_targets` wrote; a missing or damaged one is one line naming it."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        rules = LossRules(
            lambda_u=float(raw["rules"]["lambda_u"]),
            box_min_score=raw["rules"]["box_min_score"],
            no_threshold_classes=tuple(int(c) for c in raw["rules"]["no_threshold_classes"]),
            unsure=raw["rules"].get("unsure", "ignore"),  # files from before soft targets (6 Dec) ignored them
        )
        images = {
            str(k): ImageTargets(
                [tuple(b) for b in v["kept"]], [tuple(b) for b in v["ignore"]], [tuple(b) for b in v.get("unsure", [])]
            )
            for k, v in raw["images"].items()
        }
        return PseudoTargets(rules, images, str(raw["images_dir"]), source=path)
    except FileNotFoundError as e:
        raise YolosslError(f"{path}: not found; the data YAML's '{DATA_KEY}' names it") from e
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise YolosslError(f"{path}: not a pseudo-targets file written by yolossl ({type(e).__name__}: {e})") from e
