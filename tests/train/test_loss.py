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
