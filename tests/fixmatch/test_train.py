from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from yolossl.fixmatch.augment import strong_view, views, weak_view
from yolossl.fixmatch.train import EMA, FixMatchConfig, fixmatch_loss, predict_proba, train_fixmatch


def test_the_mask_is_exactly_the_confident_weak_predictions() -> None:
    logits_weak = torch.tensor([[10.0, 0.0, 0.0], [1.0, 1.2, 0.9], [0.0, 0.0, 12.0]])  # sure, unsure, sure
    logits_strong = torch.tensor([[0.0, 2.0, 0.0], [5.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    logits_labeled, targets = torch.tensor([[2.0, 0.0, 0.0]]), torch.tensor([0])
    loss, sup, unsup, mask = fixmatch_loss(logits_labeled, targets, logits_weak, logits_strong, tau=0.95, lambda_u=2.0)
    assert mask.item() == pytest.approx(2 / 3)
    expected_unsup = (
        F.cross_entropy(logits_strong[[0]], torch.tensor([0])) + F.cross_entropy(logits_strong[[2]], torch.tensor([2]))
    ) / 3  # masked mean over all 3
    assert unsup.item() == pytest.approx(expected_unsup.item(), rel=1e-6)
    assert sup.item() == pytest.approx(F.cross_entropy(logits_labeled, targets).item())
    assert loss.item() == pytest.approx(sup.item() + 2.0 * unsup.item(), rel=1e-6)


def test_nothing_confident_means_no_unlabeled_loss() -> None:
    weak = torch.zeros(4, 5)  # uniform: top probability 0.2 < tau
    _, _, unsup, mask = fixmatch_loss(torch.zeros(1, 5), torch.tensor([1]), weak, torch.randn(4, 5), 0.95, 1.0)
    assert unsup.item() == 0.0 and mask.item() == 0.0


def test_the_weak_view_gives_no_gradient() -> None:
    weak = torch.tensor([[10.0, 0.0]], requires_grad=True)
    strong = torch.tensor([[0.0, 1.0]], requires_grad=True)
    loss, *_ = fixmatch_loss(torch.zeros(1, 2, requires_grad=True), torch.tensor([0]), weak, strong, 0.9, 1.0)
    loss.backward()
    assert weak.grad is None and strong.grad is not None and strong.grad.abs().sum() > 0


def test_ema_warms_up_then_moves_by_the_decay() -> None:
    model = nn.Linear(2, 1)
    ema = EMA(model, decay=0.9)
    before = ema.model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)
    warm = 2 / 11  # the first update barely remembers the random initial weights
    torch.testing.assert_close(ema.model.weight, warm * before + (1 - warm) * model.weight.detach())
    for _ in range(200):
        ema.update(model)
    before = ema.model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)
    torch.testing.assert_close(ema.model.weight, 0.9 * before + 0.1 * model.weight.detach())
    assert not ema.model.weight.requires_grad


def test_ema_of_a_short_run_forgets_the_initial_weights() -> None:
    model = nn.Linear(2, 1)
    ema = EMA(model, decay=0.999)
    with torch.no_grad():
        model.weight.fill_(1.0)
        ema.model.weight.fill_(0.0)  # the "random init"
    for _ in range(1000):
        ema.update(model)
    assert ema.model.weight.min().item() > 0.99


def test_weak_and_strong_views_differ() -> None:
    rng = np.random.default_rng(0)
    crops = (rng.random((8, 32, 32, 3)) * 255).astype(np.uint8)
    weak, strong = views(crops, weak_view()), views(crops, strong_view())
    assert weak.shape == strong.shape == (8, 3, 32, 32) and weak.dtype == torch.float32
    assert float(weak.min()) >= 0.0 and float(weak.max()) <= 1.0
    assert (strong - weak).abs().mean() > 0.05


def test_training_is_deterministic_and_learns_an_easy_task() -> None:
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 60, (40, 32, 32, 3)).astype(np.uint8)
    crops[:20, 4:28, 13:19] = 230  # class 0: a vertical bar
    crops[20:, 13:19, 4:28] = 230  # class 1: a horizontal bar
    labels = np.array([0] * 20 + [1] * 20)
    config = FixMatchConfig(steps=30, batch=8, mu=2, lr=0.05, ema_decay=0.5, log_every=10)
    a = train_fixmatch(crops, labels, crops, 2, config)
    b = train_fixmatch(crops, labels, crops, 2, config)
    assert [h.loss for h in a.history] == [h.loss for h in b.history]
    assert len(a.history) == 3 and all(0.0 <= h.mask_ratio <= 1.0 for h in a.history)
    assert (predict_proba(a.model, crops).argmax(1) == labels).mean() > 0.9


def test_batchnorm_statistics_are_re_estimated_for_the_kept_weights() -> None:
    import albumentations as A

    from yolossl.fixmatch.model import crop_classifier
    from yolossl.fixmatch.train import recalibrate_batchnorm

    model = crop_classifier(3, width=4)
    first_conv, first_norm = model[0], model[1]
    first_norm.running_mean.fill_(100.0)  # stale: gathered for other weights, on other views
    crops = np.random.default_rng(1).integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    same = A.Compose([])
    recalibrate_batchnorm(model, crops, same, torch.device("cpu"), 8, np.random.default_rng(0), batches=1)
    picked = crops[np.random.default_rng(0).integers(len(crops), size=8)]
    with torch.no_grad():
        expected = first_conv(views(picked, same)).mean(dim=(0, 2, 3))
    torch.testing.assert_close(first_norm.running_mean, expected, atol=1e-4, rtol=1e-4)
    assert not model.training
