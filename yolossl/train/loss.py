"""The pseudo-aware detection loss: Ultralytics' own loss, except where a pseudo-label says less than a human one.

A teacher's label file is not a human's: an object it missed is not background, and a box it drew
is not exact. On anchors inside a pseudo-labeled image (the boxes' kinds, see `targets`):

- kept pseudo boxes are class targets, assigned exactly as human ones (Ultralytics' TaskAlignedAssigner);
- soft targets (boxes the teacher scored `s` between its floor and the class's threshold) are assigned
  the same way, but teach their class at the teacher's confidence: the box's best anchor gets target
  `s`, its other anchors proportionally less (as a human box's anchors follow its best one). Where
  the teacher is unsure, an anchor that no target claims learns background on that class weighted
  by `1 - s`: how sure the teacher is that the place is background (Soft Teacher; Efficient Teacher's
  soft band);
- inside an ignore region (a box the teacher saw but that the student's view mostly cut off, or the
  unsure band when `LossRules.unsure` is "ignore") an anchor that no target claims gets no class loss
  at all: no background loss for what may be an object;
- with ignore regions, classes with no usable threshold get no background loss anywhere: their objects were never
  labeled (with soft targets they are, softly, and the teacher's certainty weights their background as any class's);
- box regression (IoU + DFL) comes only from pseudo boxes that passed the score gate (`LossRules`),
  never from soft targets;
- with dense targets (online only: the batch carries `teacher_scores`), every anchor of a pseudo-labeled image
  takes the teacher's class scores at that place as its class target (0 below the floor), instead of the
  boxes' (Dense Teacher); kept boxes still teach box regression from the score gate up;
- every term is weighted by `lambda_u`.

A batch of human-labeled images gets Ultralytics' loss to the bit: every weight is then exactly 1.
"""

from __future__ import annotations

from typing import Any

import torch
from ultralytics.utils.loss import v8DetectionLoss
from ultralytics.utils.tal import make_anchors

from yolossl.errors import YolosslError
from yolossl.train.targets import (
    IGNORE,
    KIND_STRIDE,
    PSEUDO_AREA,
    PSEUDO_CLASS_ONLY,
    SCORE_LEVELS,
    SOFT_KIND,
    TARGET_KINDS,
    LossRules,
)


class PseudoAwareLoss(v8DetectionLoss):
    """`v8DetectionLoss` reading each box's kind from its class code; installed as the training model's criterion."""

    def __init__(
        self, model: torch.nn.Module, rules: LossRules, tal_topk: int = 10, report_unlabeled: bool = False
    ) -> None:
        super().__init__(model, tal_topk)
        if self.nc >= KIND_STRIDE:
            raise YolosslError(f"the pseudo-aware loss handles up to {KIND_STRIDE} classes, the model has {self.nc}")
        self.lambda_u = rules.lambda_u
        # `u_loss`: the pseudo-labeled images' share of the loss, logged (not optimised) by the online teacher
        self.report_unlabeled = report_unlabeled
        if report_unlabeled:
            self.loss_names = (*self.loss_names, "u_loss")
        self.unsure = rules.unsure
        self.no_threshold = torch.zeros(self.nc, dtype=torch.bool, device=self.device)
        self.set_no_threshold(rules.no_threshold_classes)
        self.unlabeled_by_class = UnlabeledClassLoss(self.nc, self.device)

    def set_no_threshold(self, classes: tuple[int, ...]) -> None:
        """The classes the teacher has no threshold for: no background loss for them on pseudo images. With soft
        targets none: there the teacher's own certainty weights every class's background, and a class whose boxes
        all teach as soft targets must also learn where it is not (else its scores only ever rise)."""
        self.no_threshold[:] = False
        if self.unsure == "ignore":
            self.no_threshold[[c for c in classes if 0 <= c < self.nc]] = True

    def get_assigned_targets_and_loss(self, preds: dict[str, torch.Tensor], batch: dict[str, Any], **assign_kwargs):
        """Ultralytics' computation (same order of operations), with per-anchor weights on the class and box terms."""
        loss = torch.zeros(3, device=self.device)  # box, cls, dfl
        pred_distri = preds["boxes"].permute(0, 2, 1).contiguous()
        pred_scores = preds["scores"].permute(0, 2, 1).contiguous()
        anchor_points, stride_tensor = make_anchors(preds["feats"], self.stride, 0.5)

        dtype = pred_scores.dtype
        batch_size = pred_scores.shape[0]
        imgsz = torch.tensor(preds["feats"][0].shape[2:], device=self.device, dtype=dtype) * self.stride[0]
        scale = imgsz[[1, 0, 1, 0]]

        image, kind, cls, xywh = _decode(batch, self.device)
        soft = kind >= SOFT_KIND
        is_target = _any_of(kind, TARGET_KINDS) | soft
        score = torch.where(soft, (kind - SOFT_KIND).to(xywh.dtype) / SCORE_LEVELS, -1.0)  # -1: not a soft target
        # Rows that are not targets become empty boxes, which the assigner skips like padding (no host sync).
        targets = torch.cat(
            (
                image.view(-1, 1),
                torch.where(is_target, cls, 0).view(-1, 1),
                xywh * is_target.view(-1, 1),
                ((kind != PSEUDO_CLASS_ONLY) & ~soft).to(xywh.dtype).view(-1, 1),
                score.view(-1, 1),
            ),
            1,
        )
        targets = self.preprocess(targets, batch_size, scale_tensor=scale)
        gt_labels, gt_bboxes, gt_regress, gt_score = targets.split((1, 4, 1, 1), 2)
        mask_gt = gt_bboxes.sum(2, keepdim=True).gt_(0.0)

        pred_bboxes = self.bbox_decode(anchor_points, pred_distri)  # xyxy, (b, h*w, 4)
        _, target_bboxes, target_scores, fg_mask, target_gt_idx = self.assigner(
            pred_scores.detach().sigmoid(),
            (pred_bboxes.detach() * stride_tensor).type(gt_bboxes.dtype),
            anchor_points * stride_tensor,
            gt_labels,
            gt_bboxes,
            mask_gt,
            **assign_kwargs,
        )
        target_scores, soft_anchor = _soft_targets(target_scores, fg_mask, target_gt_idx, gt_score)

        points = anchor_points * stride_tensor
        boxes = xywh * scale
        pseudo = _anchors_inside(points, image, boxes, kind == PSEUDO_AREA, batch_size)
        cls_targets = target_scores
        if "teacher_scores" in batch:  # dense targets: every anchor of an unlabeled image takes the teacher's scores
            dense = torch.zeros_like(target_scores)
            dense[batch["n_l"] :] = batch["teacher_scores"].to(dense.dtype)
            cls_targets = torch.where(pseudo.unsqueeze(-1), dense, target_scores)
            soft_anchor = pseudo & (dense.amax(-1) > 0)
        target_scores_sum = cls_targets.sum().clamp_(min=1)
        ignored = _anchors_inside(points, image, boxes, kind == IGNORE, batch_size) & ~fg_mask
        anchor_weight = torch.where(pseudo, self.lambda_u, 1.0).to(torch.float32)  # (b, anchors)
        cls_weight = anchor_weight.unsqueeze(-1).expand(-1, -1, self.nc).clone()
        cls_weight.masked_fill_(ignored.unsqueeze(-1), 0.0)
        cls_weight.masked_fill_(pseudo.unsqueeze(-1) & self.no_threshold & (cls_targets == 0), 0.0)
        if self.unsure == "soft":  # (the other modes have no soft rows: the product would be 0, at a cost)
            unsure = _unsure_background(points, image, boxes, cls, torch.where(soft, score, 0.0), batch_size, self.nc)
            cls_weight *= torch.where(fg_mask.unsqueeze(-1), 1.0, 1.0 - unsure)  # exactly 1 where no soft target is

        bce_loss = self.bce(pred_scores, cls_targets.to(dtype))  # (bs, num_anchors, nc)
        if self.class_weights is not None:
            bce_loss *= self.class_weights
        loss[1] = (bce_loss * cls_weight).sum() / target_scores_sum

        regress = fg_mask & _gathered(gt_regress, target_gt_idx)

        def box_terms(anchors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            """Ultralytics' IoU and DFL terms over `anchors`, each weighted as its image is."""
            weighted = target_scores * anchor_weight.unsqueeze(-1)
            return self.bbox_loss(
                pred_distri,
                pred_bboxes,
                anchor_points,
                target_bboxes / stride_tensor,
                weighted,
                target_scores_sum,
                anchors,
                imgsz,
                stride_tensor,
            )

        loss[0], loss[2] = box_terms(regress)

        loss[0] *= self.hyp.box
        loss[1] *= self.hyp.cls
        loss[2] *= self.hyp.dfl
        items = list(loss.detach())
        if self.report_unlabeled:
            with torch.no_grad():
                cls_terms = bce_loss * cls_weight * (self.hyp.cls / target_scores_sum)
                self.unlabeled_by_class.add(cls_terms, cls_targets, pseudo, soft_anchor)
                box_u, dfl_u = box_terms(regress & pseudo)
                items.append(box_u * self.hyp.box + cls_terms[pseudo].sum() + dfl_u * self.hyp.dfl)
        return (
            (fg_mask, target_gt_idx, target_bboxes, anchor_points, stride_tensor),
            loss,
            dict(zip(self.loss_names, items, strict=True)),
        )


class UnlabeledClassLoss:
    """Per class, the unlabeled images' class loss on anchors taught that class by a kept (hard) pseudo box and by a
    soft target, and their whole class loss (background included): the online teacher's per-class log.

    Summed on the device step by step (no host sync), read and reset once an epoch.
    """

    def __init__(self, nc: int, device: torch.device) -> None:
        self.by_class = torch.zeros(2, nc, device=device)  # hard, soft
        self.total = torch.zeros((), device=device)

    def add(self, cls_terms: torch.Tensor, target_scores: torch.Tensor, pseudo: torch.Tensor, soft: torch.Tensor):
        """One step's class-loss terms (b, anchors, nc), already weighted and normalised as the loss is."""
        taught = (target_scores > 0) & pseudo.unsqueeze(-1)
        self.by_class[0] += (cls_terms * (taught & ~soft.unsqueeze(-1))).sum((0, 1))
        self.by_class[1] += (cls_terms * (taught & soft.unsqueeze(-1))).sum((0, 1))
        self.total += (cls_terms * pseudo.unsqueeze(-1)).sum()

    def shares(self) -> tuple[list[float], list[float]]:
        """Each class's share of the unlabeled class loss from hard and from soft targets (the rest: background)."""
        total = float(self.total)
        if total <= 0:
            return [0.0] * self.by_class.shape[1], [0.0] * self.by_class.shape[1]
        hard, soft = (self.by_class / total).tolist()
        return hard, soft

    def sum_across_ranks(self) -> None:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(self.by_class)
            dist.all_reduce(self.total)

    def reset(self) -> None:
        self.by_class.zero_()
        self.total.zero_()


def _soft_targets(
    target_scores: torch.Tensor, fg_mask: torch.Tensor, target_gt_idx: torch.Tensor, gt_score: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The assigner's targets with each soft box's anchors rescaled so that its best anchor's target is the teacher's
    score; and which anchors (b, anchors) a soft box claims. Other anchors' targets are left exactly as they were."""
    if gt_score.shape[1] == 0:
        return target_scores, torch.zeros_like(fg_mask)
    anchor_score = gt_score.squeeze(-1).gather(1, target_gt_idx)  # (b, anchors)
    soft_anchor = fg_mask & (anchor_score >= 0)
    quality = target_scores.amax(-1) * fg_mask  # the assigner's target of each anchor's box class
    peak = torch.zeros_like(anchor_score).scatter_reduce_(1, target_gt_idx, quality, "amax")
    scale = anchor_score / peak.gather(1, target_gt_idx).clamp(min=1e-9)
    return target_scores * torch.where(soft_anchor, scale, 1.0).unsqueeze(-1), soft_anchor


def _unsure_background(
    points: torch.Tensor,
    image: torch.Tensor,
    xywh: torch.Tensor,
    cls: torch.Tensor,
    score: torch.Tensor,
    batch_size: int,
    nc: int,
) -> torch.Tensor:
    """(batch, anchors, nc): the teacher's scores of the soft boxes that each anchor centre lies in, per class, summed
    (at most 1); 0 where there is none. One matrix product, as `_anchors_inside`: no host sync, deterministic."""
    lt, rb = xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2
    inside = ((points > lt[:, None]) & (points < rb[:, None])).all(-1)  # (boxes, anchors)
    rows = (image.long() * nc + cls.long().clamp(0, nc - 1)).view(1, -1)
    by_row = (torch.arange(batch_size * nc, device=points.device).view(-1, 1) == rows) * score.view(1, -1)
    with torch.autocast(points.device.type, enabled=False):  # scores, not counts: full precision under AMP
        summed = by_row.float() @ inside.float()  # (batch * nc, anchors)
    return summed.view(batch_size, nc, -1).transpose(1, 2).clamp_(max=1.0)


def _decode(batch: dict[str, Any], device: torch.device) -> tuple[torch.Tensor, ...]:
    """The batch's boxes as (image index, kind, class, xywh normalised), on `device`."""
    codes = batch["cls"].view(-1).to(device)
    kind = torch.div(codes, KIND_STRIDE, rounding_mode="floor")
    return batch["batch_idx"].view(-1).to(device), kind, codes - kind * KIND_STRIDE, batch["bboxes"].to(device)


def _any_of(kind: torch.Tensor, kinds: tuple[int, ...]) -> torch.Tensor:
    found = torch.zeros_like(kind, dtype=torch.bool)
    for k in kinds:
        found |= kind == k
    return found


def _anchors_inside(
    points: torch.Tensor, image: torch.Tensor, xywh: torch.Tensor, rows: torch.Tensor, batch_size: int
) -> torch.Tensor:
    """(batch, anchors): whether each anchor centre lies inside one of its image's boxes among `rows` (pixels).

    A matrix product sums the boxes per image: deterministic on CUDA (no atomic adds) and no host sync.
    """
    lt, rb = xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2
    inside = ((points > lt[:, None]) & (points < rb[:, None])).all(-1) & rows[:, None]  # (boxes, anchors)
    of_image = image.view(1, -1) == torch.arange(batch_size, device=image.device).view(-1, 1)  # (batch, boxes)
    return (of_image.to(points.dtype) @ inside.to(points.dtype)) > 0


def _gathered(gt_flag: torch.Tensor, target_gt_idx: torch.Tensor) -> torch.Tensor:
    """Each anchor's assigned box's flag, (batch, anchors) bool; no boxes at all: all False."""
    if gt_flag.shape[1] == 0:
        return torch.zeros_like(target_gt_idx, dtype=torch.bool)
    return gt_flag.squeeze(-1).gather(1, target_gt_idx) > 0
