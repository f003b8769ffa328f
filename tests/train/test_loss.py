"""The pseudo-aware loss on hand-built predictions: what it gives up, where; human images keep Ultralytics' loss."""

from __future__ import annotations

import pytest
import torch
from ultralytics.cfg import get_cfg
from ultralytics.nn.tasks import DetectionModel
from ultralytics.utils.loss import v8DetectionLoss
from ultralytics.utils.tal import make_anchors

from yolossl.train.loss import PseudoAwareLoss
from yolossl.train.targets import (
    IGNORE,
    KIND_STRIDE,
    PSEUDO_AREA,
    PSEUDO_BOX,
    PSEUDO_CLASS_ONLY,
    ImageTargets,
    LossRules,
)

NC, IMGSZ = 3, 64
WHOLE = (0.5, 0.5, 1.0, 1.0)


@pytest.fixture(scope="module")
def model() -> DetectionModel:
    model = DetectionModel("yolo11n.yaml", nc=NC, verbose=False)
    model.args = get_cfg()
    return model


def _preds(model: DetectionModel, batch_size: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random head outputs of the right shapes for `batch_size` images of IMGSZ; `scores` is a leaf with grad."""
    g = torch.Generator().manual_seed(seed)
    sizes = [IMGSZ // int(s) for s in model.stride]
    feats = [torch.zeros(batch_size, 1, n, n) for n in sizes]
    anchors = sum(n * n for n in sizes)
    head = model.model[-1]
    boxes = torch.randn(batch_size, 4 * head.reg_max, anchors, generator=g)
    scores = torch.randn(batch_size, NC, anchors, generator=g).requires_grad_()
    return {"boxes": boxes, "scores": scores, "feats": feats}


def _batch(*rows: tuple[int, int, int, tuple[float, ...]]) -> dict[str, torch.Tensor]:
    """Rows of (image, kind, class, xywh normalised) as Ultralytics' collated batch."""
    return {
        "batch_idx": torch.tensor([float(r[0]) for r in rows]),
        "cls": torch.tensor([[float(r[1] * KIND_STRIDE + r[2])] for r in rows]),
        "bboxes": torch.tensor([list(r[3]) for r in rows], dtype=torch.float32).view(-1, 4),
    }


def _anchor_centres(model: DetectionModel, preds: dict[str, torch.Tensor]) -> torch.Tensor:
    points, strides = make_anchors(preds["feats"], model.stride, 0.5)
    return points * strides  # pixels


def _inside(points: torch.Tensor, xywh: tuple[float, ...]) -> torch.Tensor:
    x, y, w, h = (v * IMGSZ for v in xywh)
    return (
        (points[:, 0] > x - w / 2)
        & (points[:, 0] < x + w / 2)
        & (points[:, 1] > y - h / 2)
        & (points[:, 1] < y + h / 2)
    )


def _cls_grad(criterion, preds, batch) -> torch.Tensor:
    """d(class loss)/d(scores), (batch, classes, anchors)."""
    preds["scores"].grad = None
    _, loss, _ = criterion.get_assigned_targets_and_loss(preds, batch)
    loss[1].backward()
    return preds["scores"].grad


def test_a_human_labeled_batch_gets_ultralytics_own_loss_exactly(model) -> None:
    batch = _batch((0, 0, 1, (0.3, 0.3, 0.3, 0.4)), (0, 0, 2, (0.7, 0.6, 0.2, 0.2)), (1, 0, 0, (0.5, 0.5, 0.5, 0.5)))
    rules = LossRules(lambda_u=0.3, box_min_score=0.9, no_threshold_classes=(2,))
    preds = _preds(model)
    ours, ours_items = PseudoAwareLoss(model, rules)(preds, batch)
    theirs, their_items = v8DetectionLoss(model)(preds, batch)
    assert torch.equal(ours, theirs) and ours.sum() > 0
    assert list(ours_items) == list(their_items) == ["box_loss", "cls_loss", "dfl_loss"]


def test_an_object_under_an_ignore_region_adds_no_background_loss(model) -> None:
    ignore = (0.3, 0.3, 0.3, 0.3)  # an object the teacher saw but did not keep
    kept = (0.75, 0.75, 0.3, 0.3)
    batch = _batch((0, PSEUDO_CLASS_ONLY, 0, kept), (0, IGNORE, 0, ignore), (0, PSEUDO_AREA, 0, WHOLE))
    preds = _preds(model, batch_size=1)
    under = _inside(_anchor_centres(model, preds), ignore)
    assert under.sum() > 5

    grad = _cls_grad(PseudoAwareLoss(model, LossRules()), preds, batch)
    assert torch.all(grad[0][:, under] == 0)
    assert torch.all(grad[0][:, ~under].abs().sum(0) > 0)  # background loss everywhere else
    plain = _cls_grad(v8DetectionLoss(model), preds, _batch((0, 0, 0, kept)))  # the label file alone
    assert torch.all(plain[0][:, under].abs().sum(0) > 0)  # what the ignore region takes away


def test_a_class_with_no_threshold_adds_no_background_loss_on_pseudo_images(model) -> None:
    kept = (0.5, 0.5, 0.4, 0.4)
    batch = _batch(
        (0, PSEUDO_CLASS_ONLY, 0, kept),
        (0, PSEUDO_AREA, 0, WHOLE),
        (1, 0, 0, kept),  # a human-labeled image: every class keeps its background loss
    )
    preds = _preds(model)
    grad = _cls_grad(PseudoAwareLoss(model, LossRules(no_threshold_classes=(2,))), preds, batch)
    assert torch.all(grad[0, 2] == 0)
    assert torch.all(grad[0, 1] != 0) and torch.all(grad[1, 2] != 0)


def test_gated_pseudo_boxes_add_no_box_or_dfl_loss(model) -> None:
    box = (0.5, 0.5, 0.4, 0.4)
    preds = _preds(model, batch_size=1)
    gated = PseudoAwareLoss(model, LossRules())(
        preds, _batch((0, PSEUDO_CLASS_ONLY, 1, box), (0, PSEUDO_AREA, 0, WHOLE))
    )
    taught = PseudoAwareLoss(model, LossRules())(preds, _batch((0, PSEUDO_BOX, 1, box), (0, PSEUDO_AREA, 0, WHOLE)))
    assert gated[1]["box_loss"] == 0 and gated[1]["dfl_loss"] == 0 and gated[1]["cls_loss"] > 0
    assert taught[1]["box_loss"] > 0 and taught[1]["dfl_loss"] > 0
    assert gated[1]["cls_loss"] == taught[1]["cls_loss"]


def test_lambda_u_scales_the_pseudo_images_loss(model) -> None:
    batch = _batch((0, PSEUDO_BOX, 1, (0.5, 0.5, 0.4, 0.4)), (0, PSEUDO_AREA, 0, WHOLE))
    preds = _preds(model, batch_size=1)
    full, _ = PseudoAwareLoss(model, LossRules(lambda_u=1.0))(preds, batch)
    quarter, _ = PseudoAwareLoss(model, LossRules(lambda_u=0.25))(preds, batch)
    torch.testing.assert_close(quarter, full * 0.25)


@pytest.mark.parametrize(("gate", "kinds"), [(None, [2, 2]), (0.9, [2, 1]), (0.0, [1, 1])])
def test_the_score_gate_decides_which_pseudo_boxes_teach_regression(gate, kinds: list[int]) -> None:
    image = ImageTargets(
        kept=[(1, 0.5, 0.5, 0.5, 0.2, 0.2), (0, 0.95, 0.2, 0.2, 0.1, 0.1)], ignore=[(0.8, 0.8, 0.1, 0.1)]
    )
    cls, boxes = image.encoded(LossRules(box_min_score=gate))
    assert cls[:, 0].tolist() == [
        kinds[0] * KIND_STRIDE + 1,
        kinds[1] * KIND_STRIDE,
        IGNORE * KIND_STRIDE,
        PSEUDO_AREA * KIND_STRIDE,
    ]
    assert boxes.tolist()[-1] == [0.5, 0.5, 1.0, 1.0] and boxes.shape == (4, 4)


class _Recorded(torch.nn.BCEWithLogitsLoss):
    """The loss's BCE, keeping the class targets it was given."""

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        self.targets = targets.detach().clone()
        return super().forward(logits, targets)


def _encoded_batch(image: ImageTargets, rules: LossRules) -> dict[str, torch.Tensor]:
    """One pseudo-labeled image's targets as a batch of one."""
    codes, boxes = image.encoded(rules)
    return {"batch_idx": torch.zeros(len(codes)), "cls": torch.from_numpy(codes), "bboxes": torch.from_numpy(boxes)}


def _soft_batch(score: float, cls: int, box: tuple[float, ...]) -> dict[str, torch.Tensor]:
    return _encoded_batch(ImageTargets(kept=[], ignore=[], unsure=[(cls, score, *box)]), LossRules(unsure="soft"))


@pytest.mark.parametrize("score", [0.15, 0.42, 0.7])
def test_a_soft_box_at_teacher_score_s_gives_class_target_s(model, score: float) -> None:
    criterion = PseudoAwareLoss(model, LossRules(unsure="soft"))
    criterion.bce = _Recorded(reduction="none")
    box = (0.5, 0.5, 0.4, 0.4)
    _, _, items = criterion.get_assigned_targets_and_loss(_preds(model, batch_size=1), _soft_batch(score, 1, box))
    targets = criterion.bce.targets[0]  # (anchors, classes)
    claimed = targets.sum(-1) > 0
    assert claimed.sum() >= 2  # the assigner gave the box several anchors
    assert targets[:, 1].max().item() == pytest.approx(score, abs=1e-6)  # its best anchor: the teacher's score
    assert torch.all(targets[claimed, 1] <= score + 1e-6) and torch.all(targets[:, [0, 2]] == 0)
    assert items["box_loss"] == 0 and items["dfl_loss"] == 0 and items["cls_loss"] > 0  # no box regression


def test_background_under_a_soft_box_is_weighted_by_how_sure_the_teacher_is(model) -> None:
    """An anchor no target claims, inside a box the teacher scored s for class 1: its class-1 background loss is
    weighted 1 - s; its other classes' background, and background outside the box, keep weight 1."""
    score, box = 0.3, (0.5, 0.5, 0.6, 0.6)
    batch = _soft_batch(score, 1, box)
    preds = _preds(model, batch_size=1)
    criterion = PseudoAwareLoss(model, LossRules(unsure="soft"))
    criterion.bce = _Recorded(reduction="none")
    grad = _cls_grad(criterion, preds, batch)[0]  # (classes, anchors)
    targets = criterion.bce.targets[0]
    inside = _inside(_anchor_centres(model, preds), box) & (targets.sum(-1) == 0)
    assert inside.sum() > 5
    weight = grad / torch.sigmoid(preds["scores"].detach()[0])  # target 0: d BCE / d logit = sigmoid * weight
    reference = weight[0, inside]  # class 0 inside the box: full weight
    torch.testing.assert_close(weight[1, inside], reference * (1 - score))
    torch.testing.assert_close(weight[2, inside], reference)
    outside = ~_inside(_anchor_centres(model, preds), box)
    torch.testing.assert_close(weight[1, outside], weight[0, outside])


def test_soft_targets_leave_human_batches_exactly_as_ultralytics_computes_them(model) -> None:
    batch = _batch((0, 0, 1, (0.3, 0.3, 0.3, 0.4)), (1, 0, 0, (0.5, 0.5, 0.5, 0.5)), (1, 0, 2, (0.2, 0.7, 0.2, 0.2)))
    preds = _preds(model, seed=3)
    ours, _ = PseudoAwareLoss(model, LossRules(unsure="soft", no_threshold_classes=(1,)))(preds, batch)
    theirs, _ = v8DetectionLoss(model)(preds, batch)
    assert torch.equal(ours, theirs)


def test_a_class_the_teacher_sees_only_below_threshold_still_gets_unlabeled_signal(model) -> None:
    """Class 2 has no threshold (out of reach): with soft targets its unsure box teaches it; ignored, it teaches
    nothing. The per-class log says which."""
    box, score = (0.5, 0.5, 0.4, 0.4), 0.35
    preds = _preds(model, batch_size=1)
    image = ImageTargets(kept=[], ignore=[], unsure=[(2, score, *box)])
    by_mode = {}
    for unsure in ("soft", "ignore"):
        rules = LossRules(no_threshold_classes=(2,), unsure=unsure)
        batch = _encoded_batch(image, rules)
        criterion = PseudoAwareLoss(model, rules, report_unlabeled=True)
        by_mode[unsure] = (_cls_grad(criterion, preds, batch)[0, 2], criterion.unlabeled_by_class.shares())
    soft_grad, (hard, soft) = by_mode["soft"]
    assert (soft_grad < 0).any()  # pushed up where the box is: a positive target
    outside = ~_inside(_anchor_centres(model, preds), box)
    assert torch.all(soft_grad[outside] > 0)  # and down where the teacher saw nothing: it learns where it is not
    assert soft[2] > 0 and hard == [0.0, 0.0, 0.0] and soft[0] == soft[1] == 0
    ignore_grad, (hard, soft) = by_mode["ignore"]
    assert torch.all(ignore_grad == 0) and hard == soft == [0.0, 0.0, 0.0]


def test_dense_targets_are_every_unlabeled_anchors_class_target_and_leave_human_images_alone(model) -> None:
    preds = _preds(model)
    anchors = preds["scores"].shape[-1]
    g = torch.Generator().manual_seed(1)
    teacher = torch.rand(1, anchors, NC, generator=g) * (torch.rand(1, anchors, NC, generator=g) > 0.8)
    kept = (0.5, 0.5, 0.4, 0.4)
    rows = ((0, 0, 1, (0.3, 0.3, 0.3, 0.4)), (1, PSEUDO_BOX, 0, kept), (1, PSEUDO_AREA, 0, WHOLE))
    rules = LossRules(unsure="dense", box_min_score=0.5)
    with_dense = PseudoAwareLoss(model, rules)
    with_dense.bce = _Recorded(reduction="none")
    _, _, items = with_dense.get_assigned_targets_and_loss(
        preds, {**_batch(*rows), "n_l": 1, "teacher_scores": teacher}
    )
    boxes_only = PseudoAwareLoss(model, rules)
    boxes_only.bce = _Recorded(reduction="none")
    boxes_only.get_assigned_targets_and_loss(preds, _batch(*rows))
    assert torch.equal(with_dense.bce.targets[1], teacher[0])  # the unlabeled image: the teacher's scores
    assert torch.equal(with_dense.bce.targets[0], boxes_only.bce.targets[0])  # the human image: its own targets
    assert items["box_loss"] > 0  # the kept box above the gate still teaches regression
