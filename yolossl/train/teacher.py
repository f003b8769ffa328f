"""The online teacher: its boxes on a batch, and which of them become targets.

The teacher is the trainer's EMA, on the fitted schedule every yolossl training uses (`ema.ema_schedule`:
it follows the student within the run), capped lower (`OnlineSettings.ema_max_decay`).

- `teacher_boxes`: the EMA model's boxes on a batch (its NMS; torchvision is imported first so that
  NMS is torchvision's kernel, not Ultralytics' Python fallback).
- `image_targets`: boxes at or above their class's threshold are targets; the rest (above the floor)
  are unsure, exactly as the offline labeling pass sorts them: soft targets or ignore regions, as the
  loss rules say (`LossRules.unsure`).

    >>> boxes = teacher_boxes(trainer.ema.ema, weak, conf=0.1, iou=0.7)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
import torchvision  # noqa: F401  (Ultralytics' NMS uses its kernel only once it is imported)
from ultralytics.utils.nms import non_max_suppression

from yolossl.boxes import Detections
from yolossl.label.filters import ClassThresholds, thresholds_for_precision
from yolossl.train.targets import ImageTargets
from yolossl.train.views import map_boxes, maps_in_view, visible_share

MIN_VISIBLE_SHARE = 0.5
"""A teacher's box whose area the student's view keeps less of than this is an ignore region there, not a target."""


@torch.no_grad()
def teacher_predictions(teacher: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The teacher's dense predictions (b, 4 + classes, anchors): boxes (xywh, pixels) and class scores, before NMS."""
    weights = next(teacher.parameters())
    preds = teacher(images.to(weights.dtype))
    return (preds[0] if isinstance(preds, (list, tuple)) else preds).float()


def nms_boxes(preds: torch.Tensor, conf: float, iou: float) -> list[torch.Tensor]:
    """Per image, the boxes (n, 6: x1 y1 x2 y2 score class, pixels) scoring above `conf`, after NMS, on the CPU.

    Ultralytics' NMS goes image by image, waiting for the device ~3 times each on a GPU. Its candidates are moved to
    the host first (`candidates_first`: two syncs for the batch) and its own NMS runs there, unchanged: the same
    rows in the same order, so the same boxes.
    """
    return non_max_suppression(candidates_first(preds, conf).cpu(), conf_thres=conf, iou_thres=iou, max_det=300)


def candidates_first(preds: torch.Tensor, conf: float) -> torch.Tensor:
    """`preds` (b, 4 + classes, anchors) cut to the anchors Ultralytics' NMS keeps first (a class score above `conf`),
    in their order, padded with other anchors to the largest count in the batch (its filter drops those again)."""
    candidates = preds[:, 4:].amax(1) > conf
    k = int(candidates.sum(1).max())
    if k == 6:  # a last dimension of 6 reads to Ultralytics as an end-to-end model's (b, boxes, 6) output
        k = 7
    k = min(k, preds.shape[2])
    order = candidates.to(torch.uint8).argsort(dim=1, descending=True, stable=True)[:, :k]
    return preds.gather(2, order.unsqueeze(1).expand(-1, preds.shape[1], -1))


def teacher_boxes(teacher: torch.nn.Module, images: torch.Tensor, conf: float, iou: float) -> list[torch.Tensor]:
    """The teacher's boxes per image (n, 6: x1 y1 x2 y2 score class, pixels), above `conf`, after NMS."""
    return nms_boxes(teacher_predictions(teacher, images), conf, iou)


def dense_targets(
    preds: torch.Tensor, matrices: torch.Tensor, strides: list[float], height: int, width: int, floor: float
) -> torch.Tensor:
    """The teacher's class scores (b, anchors, classes) at the student's anchors (its view, `matrices`): each score at
    or above `floor` is that class's target there, lower ones 0 (background), as Dense Teacher regresses the student's
    scores on the teacher's. `preds` are `teacher_predictions` on the weak view; anchors in the head's order."""
    scores = preds[:, 4:]
    levels, start = [], 0
    for stride in strides:
        h, w = round(height / stride), round(width / stride)
        level = scores[:, :, start : start + h * w].reshape(len(scores), -1, h, w)
        levels.append(maps_in_view(level, matrices, stride).flatten(2))
        start += h * w
    moved = torch.cat(levels, 2).transpose(1, 2)
    return torch.where(moved >= floor, moved, 0.0)


def kept_mask(boxes: torch.Tensor, kept_thresholds: torch.Tensor) -> torch.Tensor:
    """Which boxes (n, 6) reach their class's kept threshold; the others (above the floor) are the unsure band."""
    return boxes[:, 4] >= kept_thresholds.to(boxes.device)[boxes[:, 5].long()]


def image_targets(
    boxes: torch.Tensor, kept: torch.Tensor, width: int, height: int, visible: torch.Tensor | None = None
) -> ImageTargets:
    """One image's boxes (n, 6, pixels) as kept targets, unsure boxes and (those not `visible`) ignore regions,
    normalised; empty boxes are dropped."""
    rows, kept = boxes.detach().float().cpu(), kept.cpu()
    visible = torch.ones_like(kept) if visible is None else visible.cpu()
    solid = (rows[:, 2] - rows[:, 0] >= 1) & (rows[:, 3] - rows[:, 1] >= 1)
    rows, kept, visible = rows[solid], kept[solid], visible[solid]
    xywhn = _xywhn(rows[:, :4], width, height)

    def scored(which: torch.Tensor) -> list[tuple[float, ...]]:
        return [(row[5], row[4], *box) for row, box in zip(rows[which].tolist(), xywhn[which].tolist(), strict=True)]

    kept = kept & visible
    return ImageTargets(scored(kept), [tuple(box) for box in xywhn[~visible].tolist()], scored(~kept & visible))


def student_targets(
    boxes: torch.Tensor, kept: torch.Tensor, matrix: torch.Tensor, width: int, height: int
) -> ImageTargets:
    """The teacher's boxes on the weak view (n, 6, pixels) as targets in the student's view (`matrix`, see `views`).

    An object that view moved mostly out of the image is an ignore region: what is left of it may look like
    another class, and it is not background either.
    """
    seen = map_boxes(boxes[:, :4], torch.eye(3), width, height)  # clipped to the image the teacher saw
    visible = visible_share(seen, matrix, width, height) >= MIN_VISIBLE_SHARE
    moved = torch.cat([map_boxes(seen, matrix, width, height), boxes[:, 4:]], 1)
    return image_targets(moved, kept, width, height, visible)


def _xywhn(xyxy: torch.Tensor, width: int, height: int) -> torch.Tensor:
    scale = torch.tensor([width, height, width, height], dtype=xyxy.dtype)
    return torch.cat([(xyxy[:, :2] + xyxy[:, 2:]) / 2, xyxy[:, 2:] - xyxy[:, :2]], 1) / scale


@dataclass
class KeptShare:
    """Per class, how many of the teacher's boxes (above the floor) became targets: FixMatch's mask ratio, per class."""

    n_classes: int
    seen: np.ndarray = field(init=False)
    kept: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.seen = np.zeros(self.n_classes, dtype=np.int64)
        self.kept = np.zeros(self.n_classes, dtype=np.int64)

    def add(self, classes: torch.Tensor, kept: torch.Tensor) -> None:
        """Count one image's teacher boxes: their classes and which were kept."""
        classes = classes.long().cpu().numpy()
        self.seen += np.bincount(classes, minlength=self.n_classes)[: self.n_classes]
        self.kept += np.bincount(classes[kept.cpu().numpy()], minlength=self.n_classes)[: self.n_classes]

    def sum_across_ranks(self, device: torch.device) -> None:
        """Under DDP: every rank's counts added up (each rank labeled its own unlabeled batches), on every rank."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        counts = torch.from_numpy(np.stack([self.seen, self.kept])).to(device)  # NCCL reduces CUDA tensors only
        dist.all_reduce(counts)
        self.seen, self.kept = (row.cpu().numpy() for row in counts)

    def counts(self, names: dict[int, str]) -> dict[str, int]:
        """`kept_<name>` and `seen_<name>` of every class: a row of the teacher's log."""
        kept = {f"kept_{names[c]}": int(self.kept[c]) for c in range(self.n_classes)}
        return {**kept, **{f"seen_{names[c]}": int(self.seen[c]) for c in range(self.n_classes)}}

    def describe(self, names: dict[int, str]) -> str:
        """`name kept/seen (share)` per class that the teacher saw at all."""
        parts = [
            f"{names[c]} {self.kept[c]}/{self.seen[c]} ({self.kept[c] / self.seen[c]:.0%})"
            for c in range(self.n_classes)
            if self.seen[c]
        ]
        return ", ".join(parts) or "no boxes above the floor"


def thresholds_on_val(
    teacher: torch.nn.Module,
    batches: Iterator[dict],
    n_classes: int,
    target_precision: float,
    uncertain_low: float,
    iou: float,
    device: torch.device,
) -> ClassThresholds:
    """Per-class thresholds reaching `target_precision` on val, from the teacher's boxes on Ultralytics' val batches.

    The same rule as the offline labeling pass (`thresholds_for_precision`), measured on the letterboxed
    val images the validator sees (their labels are normalised to the same images).
    """

    def val_boxes() -> Iterator[tuple[Detections, np.ndarray, tuple[int, int]]]:
        for batch in batches:
            images = batch["img"].to(device).float() / 255
            shape = (images.shape[2], images.shape[3])
            truth = torch.cat([batch["cls"].view(-1, 1), batch["bboxes"]], 1).cpu().numpy()
            owner = batch["batch_idx"].view(-1).cpu().numpy()
            for i, boxes in enumerate(teacher_boxes(teacher, images, uncertain_low, iou)):
                rows = boxes.float().cpu().numpy()
                detections = Detections(rows[:, :4].astype(np.float64), rows[:, 4], rows[:, 5].astype(np.int64))
                yield detections, truth[owner == i], shape

    return thresholds_for_precision(val_boxes(), n_classes, target_precision, uncertain_low)
