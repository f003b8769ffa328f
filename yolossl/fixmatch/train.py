"""FixMatch (Sohn et al. 2020) for object crops: the step, the EMA, the loop.

Each step: a batch of labeled crops (weak view) and `mu` times as many unlabeled crops, each seen
twice. The weak view's prediction, where its top probability reaches `tau`, becomes the target of
the strong view:

    loss = CE(labeled) + lambda_u * mean(mask * CE(strong, argmax(weak)))

The mask ratio (share of unlabeled crops above `tau`) is logged with the losses: it says whether
the unlabeled half is doing anything. Inference uses an exponential moving average of the weights.

    >>> result = train_fixmatch(labeled, labels, unlabeled, n_classes=5, config=FixMatchConfig(steps=500))
    >>> probabilities = predict_proba(result.model, crops)
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from yolossl.fixmatch.augment import strong_view, to_tensor, views, weak_view
from yolossl.fixmatch.model import crop_classifier
from yolossl.runtime import torch_device

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FixMatchConfig:
    """The paper's defaults where they fit small CPU runs (tau 0.95, lambda 1, SGD + Nesterov, cosine, EMA)."""

    steps: int = 1000
    batch: int = 16
    mu: int = 4
    tau: float = 0.95
    lambda_u: float = 1.0
    lr: float = 0.03
    weight_decay: float = 5e-4
    ema_decay: float = 0.999
    width: int = 16
    seed: int = 0
    device: str = "cpu"
    log_every: int = 50


@dataclass(frozen=True)
class StepLog:
    step: int
    loss: float
    supervised: float
    unsupervised: float
    mask_ratio: float


@dataclass
class FixMatchResult:
    model: nn.Module  # the EMA weights: the ones to use
    history: list[StepLog] = field(default_factory=list)


def fixmatch_loss(
    logits_labeled: torch.Tensor,
    targets: torch.Tensor,
    logits_weak: torch.Tensor,
    logits_strong: torch.Tensor,
    tau: float,
    lambda_u: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, supervised loss, unlabeled loss, mask ratio) of one FixMatch step."""
    supervised = F.cross_entropy(logits_labeled, targets)
    confidence, pseudo = torch.softmax(logits_weak.detach(), dim=1).max(dim=1)
    mask = (confidence >= tau).float()
    unsupervised = (F.cross_entropy(logits_strong, pseudo, reduction="none") * mask).mean()
    return supervised + lambda_u * unsupervised, supervised, unsupervised, mask.mean()


class EMA:
    """An exponential moving average of a model's weights (buffers, e.g. BatchNorm statistics, copied).

    The decay warms up as min(decay, (1 + k) / (10 + k)) over updates k: with the paper's 0.999 from
    the first step, a run of 1000 steps would still hold 37% of the random initial weights.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for average, current in zip(self.model.parameters(), model.parameters(), strict=True):
            average.mul_(decay).add_(current.detach(), alpha=1 - decay)
        for average, current in zip(self.model.buffers(), model.buffers(), strict=True):
            average.copy_(current)


def train_fixmatch(
    labeled: np.ndarray,
    labels: np.ndarray,
    unlabeled: np.ndarray | None,
    n_classes: int,
    config: FixMatchConfig = FixMatchConfig(),
    on_log: Callable[[StepLog], None] | None = None,
) -> FixMatchResult:
    """Train on (N, S, S, 3) uint8 crops; with `unlabeled` None (or empty) it is the labeled-only baseline."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    device = torch_device(config.device)
    model = crop_classifier(n_classes, config.width).to(device)
    ema = EMA(model, config.ema_decay)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=0.9, nesterov=True, weight_decay=config.weight_decay
    )
    # The paper's schedule: cosine decay to lr * cos(7 pi / 16) over the run.
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: math.cos(7 * math.pi * k / (16 * config.steps)))
    weak, strong = weak_view(config.seed), strong_view(config.seed + 1)
    semi = unlabeled is not None and len(unlabeled) > 0 and config.lambda_u > 0
    result = FixMatchResult(ema.model)
    targets_all = torch.as_tensor(labels, dtype=torch.long)
    for step in range(1, config.steps + 1):
        model.train()
        pick = rng.integers(len(labeled), size=config.batch)
        x_labeled = views(labeled[pick], weak).to(device)
        y = targets_all[pick].to(device)
        if semi:
            chosen = unlabeled[rng.integers(len(unlabeled), size=config.batch * config.mu)]
            x_weak, x_strong = views(chosen, weak).to(device), views(chosen, strong).to(device)
            # Labeled crops get a forward pass of their own: in one batch with the unlabeled views,
            # BatchNorm would normalise them with statistics dominated by strong augmentation, and
            # on small crop sets that alone cost more accuracy than the pseudo-labels gave.
            logits_labeled = model(x_labeled)
            logits_weak, logits_strong = model(torch.cat([x_weak, x_strong])).chunk(2)
            loss, sup, unsup, mask = fixmatch_loss(
                logits_labeled, y, logits_weak, logits_strong, config.tau, config.lambda_u
            )
        else:
            loss = sup = F.cross_entropy(model(x_labeled), y)
            unsup = mask = torch.zeros(())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        ema.update(model)
        if step % config.log_every == 0 or step == config.steps:
            entry = StepLog(step, loss.item(), sup.item(), unsup.item(), mask.item())
            result.history.append(entry)
            logger.info(
                "fixmatch step %d/%d: loss %.3f (supervised %.3f, unlabeled %.3f), mask ratio %.2f",
                step,
                config.steps,
                entry.loss,
                entry.supervised,
                entry.unsupervised,
                entry.mask_ratio,
            )
            if on_log:
                on_log(entry)
    pool = labeled if not semi else np.concatenate([labeled, unlabeled])
    recalibrate_batchnorm(result.model, pool, weak, device, config.batch * config.mu, rng)
    return result


@torch.no_grad()
def recalibrate_batchnorm(
    model: nn.Module,
    crops: np.ndarray,
    transform: Any,
    device: torch.device,
    batch: int,
    rng: np.random.Generator,
    batches: int = 20,
) -> None:
    """Re-estimate BatchNorm statistics on weak views ("precise BN"), for the weights actually kept.

    The running statistics were gathered along the way, for the training weights rather than the
    EMA's, and partly on strong views; evaluated on clean crops that mismatch costs accuracy.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches below
    model.train()
    for _ in range(batches):
        model(views(crops[rng.integers(len(crops), size=batch)], transform).to(device))
    model.eval()


@torch.no_grad()
def predict_proba(model: nn.Module, crops: np.ndarray, batch: int = 256) -> np.ndarray:
    """(N, n_classes) class probabilities of (N, S, S, 3) uint8 crops."""
    model.eval()
    device = next(model.parameters()).device
    out = [
        torch.softmax(model(to_tensor(crops[i : i + batch]).to(device)), dim=1).cpu()
        for i in range(0, len(crops), batch)
    ]
    return torch.cat(out).numpy() if out else np.zeros((0, model[-1].out_features), dtype=np.float32)


def accuracy(model: nn.Module, crops: np.ndarray, labels: np.ndarray) -> float:
    if not len(crops):
        return 0.0
    return float((predict_proba(model, crops).argmax(1) == labels).mean())
