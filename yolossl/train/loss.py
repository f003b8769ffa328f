"""The pseudo-aware detection loss: Ultralytics' own loss, except where a pseudo-label says less than a human one.

A teacher's label file is not a human's: an object it missed is not background, and a box it drew
is not exact. On anchors inside a pseudo-labeled image (the boxes' kinds, see `targets`):

- kept pseudo boxes are class targets, assigned exactly as human ones (Ultralytics' TaskAlignedAssigner);
- inside an ignore region (a box the teacher saw but did not keep) an anchor that no target claims
  gets no class loss at all: no background loss for what may be an object;
- classes with no usable threshold get no background loss anywhere: their objects were never labeled;
- box regression (IoU + DFL) comes only from pseudo boxes that passed the score gate (`LossRules`);
- every term is weighted by `lambda_u`.

A batch of human-labeled images gets Ultralytics' loss to the bit: every weight is then exactly 1.
"""

from __future__ import annotations

from typing import Any

import torch
from ultralytics.utils.loss import v8DetectionLoss
from ultralytics.utils.tal import make_anchors

from yolossl.train.targets import IGNORE, KIND_STRIDE, PSEUDO_AREA, PSEUDO_CLASS_ONLY, TARGET_KINDS, LossRules


class PseudoAwareLoss(v8DetectionLoss):
    """`v8DetectionLoss` reading each box's kind from its class code; installed as the training model's criterion."""

    def __init__(
        self, model: torch.nn.Module, rules: LossRules, tal_topk: int = 10, report_unlabeled: bool = False
    ) -> None:
        super().__init__(model, tal_topk)
        self.lambda_u = rules.lambda_u
        # `u_loss`: the pseudo-labeled images' share of the loss, logged (not optimised) by the online teacher
        self.report_unlabeled = report_unlabeled
        if report_unlabeled:
            self.loss_names = (*self.loss_names, "u_loss")
        self.no_threshold = torch.zeros(self.nc, dtype=torch.bool, device=self.device)
        self.no_threshold[[c for c in rules.no_threshold_classes if 0 <= c < self.nc]] = True

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
        is_target = _any_of(kind, TARGET_KINDS)
        # Rows that are not targets become empty boxes, which the assigner skips like padding (no host sync).
        targets = torch.cat(
            (
                image.view(-1, 1),
                torch.where(is_target, cls, 0).view(-1, 1),
                xywh * is_target.view(-1, 1),
                (kind != PSEUDO_CLASS_ONLY).to(xywh.dtype).view(-1, 1),
            ),
            1,
        )
        targets = self.preprocess(targets, batch_size, scale_tensor=scale)
        gt_labels, gt_bboxes, gt_regress = targets.split((1, 4, 1), 2)
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
        target_scores_sum = target_scores.sum().clamp_(min=1)

        points = anchor_points * stride_tensor
        pseudo = _anchors_inside(points, image, xywh * scale, kind == PSEUDO_AREA, batch_size)
        ignored = _anchors_inside(points, image, xywh * scale, kind == IGNORE, batch_size) & ~fg_mask
        anchor_weight = torch.where(pseudo, self.lambda_u, 1.0).to(torch.float32)  # (b, anchors)
        cls_weight = anchor_weight.unsqueeze(-1).expand(-1, -1, self.nc).clone()
        cls_weight.masked_fill_(ignored.unsqueeze(-1), 0.0)
        cls_weight.masked_fill_(pseudo.unsqueeze(-1) & self.no_threshold, 0.0)

        bce_loss = self.bce(pred_scores, target_scores.to(dtype))  # (bs, num_anchors, nc)
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
                cls_u = (bce_loss * cls_weight)[pseudo].sum() / target_scores_sum
                box_u, dfl_u = box_terms(regress & pseudo)
                items.append(box_u * self.hyp.box + cls_u * self.hyp.cls + dfl_u * self.hyp.dfl)
        return (
            (fg_mask, target_gt_idx, target_bboxes, anchor_points, stride_tensor),
            loss,
            dict(zip(self.loss_names, items, strict=True)),
        )


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
