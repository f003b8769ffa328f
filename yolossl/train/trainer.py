"""`PseudoAwareTrainer`: Ultralytics' `DetectionTrainer` with the pseudo-aware loss, passed as `trainer=`, never a fork.

It takes everything from its Ultralytics arguments, as Ultralytics' multi-GPU launch requires (it
rebuilds the trainer in each worker from `vars(args)` by importing this class): the data YAML's
`pseudo_targets:` entry names the round's `pseudo_targets.json`, which holds the loss rules and every
pseudo-labeled image's targets. A data YAML without that entry trains as Ultralytics would.

- `build_dataset`: the training set's pseudo-labeled images get their kind-coded targets;
- `_setup_train`: the training model's criterion becomes `PseudoAwareLoss`; the EMA copy, which is
  validated and saved, keeps Ultralytics' own loss;
- class counts and plots see the class targets only;
- its EMA, like every yolossl training's, is fitted to the run (`ema.FittedEmaTrainer`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from ultralytics.utils import RANK
from ultralytics.utils.torch_utils import unwrap_model

from yolossl.errors import YolosslError
from yolossl.train.ema import FittedEmaTrainer
from yolossl.train.loss import PseudoAwareLoss
from yolossl.train.targets import DATA_KEY, PseudoTargets, load_pseudo_targets, target_rows

logger = logging.getLogger(__name__)


class PseudoAwareTrainer(FittedEmaTrainer):
    """Trains on a round dataset whose pseudo-labeled images the loss treats as the teacher's, not a human's."""

    _pseudo_targets: PseudoTargets | None = None

    def pseudo_targets(self) -> PseudoTargets | None:
        """The file the data YAML names (read once per process), or None when it names none."""
        if self._pseudo_targets is None and self.data.get(DATA_KEY):
            if self.args.single_cls or self.args.classes is not None:
                raise YolosslError(f"{self.args.data}: the pseudo-aware loss cannot train with single_cls or classes")
            self._pseudo_targets = load_pseudo_targets(Path(self.data[DATA_KEY]))
        return self._pseudo_targets

    def build_dataset(self, img_path: str, mode: str = "train", batch: int | None = None):
        dataset = super().build_dataset(img_path, mode, batch)
        targets = self.pseudo_targets() if mode == "train" else None
        if targets is not None:
            marked = targets.mark(dataset.labels)
            if RANK in {-1, 0}:
                logger.info("%s: %d training images are pseudo-labeled (%s)", targets.source, marked, targets.rules)
        return dataset

    def _setup_train(self) -> None:
        super()._setup_train()
        targets = self.pseudo_targets()
        if targets is not None:
            model = unwrap_model(self.model)
            check_loss_supported(model, self.args.model)
            model.criterion = PseudoAwareLoss(model, targets.rules)

    def get_class_counts(self) -> np.ndarray:
        classes = [target_rows(lb["cls"])[1] for lb in self.train_loader.dataset.labels]
        return np.bincount(np.concatenate(classes).astype(int), minlength=self.data["nc"]).astype(np.float32)

    def plot_training_labels(self) -> None:
        from ultralytics.utils.plotting import plot_labels

        rows = [target_rows(lb["cls"]) for lb in self.train_loader.dataset.labels]
        labels = self.train_loader.dataset.labels
        boxes = np.concatenate([lb["bboxes"][r] for lb, (r, _) in zip(labels, rows, strict=True)], 0)
        cls = np.concatenate([c for _, c in rows], 0)
        plot_labels(boxes, cls, names=self.data["names"], save_dir=self.save_dir, on_plot=self.on_plot)

    def plot_training_samples(self, batch: dict[str, Any], ni: int) -> None:
        import torch

        rows, cls = target_rows(batch["cls"].cpu().numpy())
        keep = torch.from_numpy(rows).to(batch["cls"].device)
        plain = {**batch, "bboxes": batch["bboxes"][keep], "batch_idx": batch["batch_idx"][keep]}
        plain["cls"] = torch.from_numpy(cls).to(batch["cls"]).view(-1, 1)
        super().plot_training_samples(plain, ni)


def check_loss_supported(model: Any, source: Any) -> None:
    """The pseudo-aware loss extends `v8DetectionLoss`: end-to-end heads (YOLO26) train with another loss."""
    head = model.model[-1]
    if getattr(head, "one2one_cv2", None) is not None:
        raise YolosslError(
            f"{source}: the pseudo-aware loss supports YOLOv8/YOLO11-style detection heads, not end-to-end ones "
            "(YOLO26); use --loss ultralytics or a yolo11 model"
        )
