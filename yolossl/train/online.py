"""`OnlineTeacherTrainer`: the mean-teacher loop inside Ultralytics' trainer, passed as `trainer=`, never a fork.

Each training batch of human-labeled images gets an unlabeled half appended in `preprocess_batch`:
the teacher (`trainer.ema.ema`, the EMA of the student, in eval mode) detects on the weak view
(the letterboxed image), its boxes are sorted by the per-class thresholds into targets (box
regression only from `box_min_score` up) and unsure boxes (between the floor `uncertain_low` and
the threshold: soft targets or ignore regions, `LossRules.unsure`; with dense targets the teacher's
class scores at every place instead, `teacher_scores` in the batch), each unlabeled image gets a
PSEUDO_AREA box, and the student sees the strong view of the same tensor (`views`), the boxes (and
the dense scores) mapped through its known transform. `PseudoAwareLoss`
then trains on the concatenated batch in one forward pass, and reports the unlabeled images'
share of it as `u_loss` (the same keys every step; 0 during burn-in, when no unlabeled half is added).

Validation and `best.pt` score the teacher (Ultralytics validates and saves the EMA). The teacher's
decay follows `ema.ema_schedule` for this run's step count, as every yolossl training's EMA does, capped
at `OnlineSettings.ema_max_decay`.

Thresholds: with `target_precision`, per class on val by the offline labeler's rule
(`thresholds_for_precision`), from the teacher once at the start and again after each validation
(one more teacher pass over val); without, one `conf` for every class.

Rounds: one run can be trained in segments, each its own Ultralytics training of the run's whole length that
starts where the last one stopped (`continue_from`: student, teacher, optimizer, epoch) and stops at `stop_epoch`,
its teacher validated and the next segment's `CONTINUE_FILE` written: the learning rate, the EMA schedule and the
epoch count run on as in one training, and the cycle labels the pool between segments.

Everything comes from Ultralytics' arguments, as its multi-GPU launch requires: the data YAML's
`online:` entry names `online.json` (`online_settings.OnlineSettings`): the unlabeled images and these options.

    >>> YOLO("best.pt").train(data="round_1/data.yaml", trainer=OnlineTeacherTrainer, epochs=30)
"""

from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Iterator, Sequence
from copy import deepcopy
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from ultralytics.data.augment import LetterBox
from ultralytics.data.build import build_dataloader
from ultralytics.utils import DEFAULT_CFG, LOCAL_RANK, RANK
from ultralytics.utils.torch_utils import unwrap_model

from yolossl.errors import YolosslError
from yolossl.images import read_image, why_unreadable
from yolossl.label.filters import ClassThresholds
from yolossl.train.distributed import decided_on_rank_0
from yolossl.train.loss import PseudoAwareLoss
from yolossl.train.online_settings import (
    CONTINUE_FILE,
    ONLINE_KEY,
    TEACHER_LOG,
    OnlineSettings,
    load_online_settings,
)
from yolossl.train.teacher import (
    KeptShare,
    dense_targets,
    kept_mask,
    nms_boxes,
    student_targets,
    teacher_predictions,
    thresholds_on_val,
)
from yolossl.train.trainer import PseudoAwareTrainer, check_loss_supported
from yolossl.train.views import strong_view, to_device

logger = logging.getLogger(__name__)


class UnlabeledImages(Dataset):
    """Unlabeled images letterboxed to the training size, as uint8 RGB (3, imgsz, imgsz) like Ultralytics' batches.

    The cycle leaves unreadable files out before training; one that breaks later (a file replaced mid-run) is
    skipped with a warning naming it, and the next image takes its place: a run never stops on one bad file.
    """

    def __init__(self, files: Sequence[str], imgsz: int) -> None:
        self.files = list(files)
        self.imgsz = imgsz
        self.letterbox = LetterBox(new_shape=(imgsz, imgsz), auto=False, scaleup=True)
        self.unreadable: set[str] = set()

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, Any]:
        for offset in range(len(self.files)):
            path = self.files[(index + offset) % len(self.files)]
            image = read_image(Path(path), self.imgsz) if path not in self.unreadable else None
            if image is not None:
                image = self.letterbox(image=image)[..., ::-1].transpose(2, 0, 1)  # BGR HWC -> RGB CHW
                return {"img": torch.from_numpy(np.ascontiguousarray(image)), "im_file": path}
            if path not in self.unreadable:
                self.unreadable.add(path)
                logger.warning(
                    "Skipping an unlabeled image that cannot be read: %s (%s)", path, why_unreadable(Path(path))
                )
        raise YolosslError(f"none of the {len(self.files)} unlabeled images can be read (e.g. {self.files[0]})")


def _forever(loader: Any) -> Iterator[dict[str, Any]]:
    """The unlabeled batches, pass after pass (reshuffled, per rank under DDP)."""
    epoch = 0
    while True:
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


class OnlineTeacherTrainer(PseudoAwareTrainer):
    """Trains a student on each labeled batch plus an unlabeled batch labeled on the fly by its EMA teacher."""

    _online: OnlineSettings | None = None

    def __init__(self, cfg=DEFAULT_CFG, overrides: dict[str, Any] | None = None, _callbacks=None) -> None:
        super().__init__(cfg, overrides, _callbacks)
        # Multi-GPU training re-creates the trainer with the callbacks it already has: add ours once.
        for callback in (log_online_epoch, stop_at_round_end):
            if callback not in self.callbacks["on_train_epoch_end"]:
                self.add_callback("on_train_epoch_end", callback)

    def online_settings(self) -> OnlineSettings:
        """The file the data YAML names (read once per process)."""
        if self._online is None:
            path = self.data.get(ONLINE_KEY)
            if not path:
                raise YolosslError(f"{self.args.data}: no '{ONLINE_KEY}' entry naming the online teacher's settings")
            self._online = load_online_settings(Path(path))
        return self._online

    def ema_max_decay(self) -> float:
        """A teacher must follow its student: a lower cap than a long run's saved average."""
        return self.online_settings().ema_max_decay

    def _setup_train(self) -> None:
        super()._setup_train()
        online = self.online_settings()
        model = unwrap_model(self.model)
        check_loss_supported(model, self.args.model)
        model.criterion = PseudoAwareLoss(model, online.rules, report_unlabeled=True)
        if online.continue_from:
            self._continue_run(Path(online.continue_from))
        self._start_unlabeled(online)
        self.generator = torch.Generator().manual_seed(self.args.seed + max(RANK, 0))
        # The strong view's colour factors, blur mask and noise image are drawn where they are used (a GPU's own
        # generator): drawn on the CPU they are copies to the device each step (the noise image alone 79 MB a batch of
        # 16 at imgsz 640). On the CPU one generator draws everything, as it always did.
        self.pixel_generator = (
            self.generator
            if self.device.type == "cpu"
            else torch.Generator(self.device).manual_seed(self.args.seed + max(RANK, 0))
        )
        self.kept_share = KeptShare(self.data["nc"])
        self._use_thresholds(self._choose_thresholds(online))
        if RANK in {-1, 0}:
            stop = online.stop_epoch or self.epochs
            logger.info("Online teacher: epochs %d-%d of %d", self.start_epoch + 1, min(stop, self.epochs), self.epochs)
            logger.info(
                "Online teacher: %d unlabeled images, %d per batch; EMA decay %.4f after %d optimizer steps; "
                "burn-in %d epochs",
                len(online.unlabeled),
                self.unlabeled_batch_size,
                self.ema_schedule.target,
                self.ema_schedule.ramp_updates,
                online.burn_in_epochs,
            )

    def _continue_run(self, path: Path) -> None:
        """Go on from an earlier round's stop: its student, teacher, optimizer and epoch (Ultralytics' resume state)."""
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=False)
            unwrap_model(self.model).load_state_dict(ckpt["student"])
        except (OSError, RuntimeError, KeyError, EOFError) as e:
            raise YolosslError(f"{path}: not a round's continuation checkpoint ({type(e).__name__}: {e})") from e
        self._load_checkpoint_state(ckpt)
        self.best_fitness = None  # each round's best.pt is its own teacher's
        self.start_epoch = ckpt["epoch"] + 1
        self.scheduler.last_epoch = self.start_epoch - 1
        if self.start_epoch >= self.epochs:
            raise YolosslError(f"{path}: the run already ended at epoch {self.start_epoch} of {self.epochs}")

    def save_model(self) -> bool:
        """Ultralytics' checkpoints, and at a round's early stop the next round's `CONTINUE_FILE` (full precision)."""
        saved = super().save_model()
        if self.stop and self.epoch + 1 < self.epochs:
            self._save_continuation(self.wdir / CONTINUE_FILE)
        return saved

    def _save_continuation(self, path: Path) -> None:
        student = unwrap_model(self.model).state_dict()
        teacher = deepcopy(self.ema.ema)
        teacher.criterion = None  # training-only state, as Ultralytics' own checkpoints leave it out
        state = {
            "epoch": self.epoch,
            "student": {k: v.detach().cpu().clone() for k, v in student.items()},
            "ema": teacher,
            "updates": self.ema.updates,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
        }
        tmp = path.with_name(f".{path.name}.tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)

    def _build_train_pipeline(self) -> None:
        """Ultralytics' loaders; on an OOM retry (it halves the batch and builds them again) the unlabeled loader and
        the EMA schedule follow the new batch size."""
        super()._build_train_pipeline()
        if getattr(self, "unlabeled_loader", None) is not None:
            self._close_unlabeled()
            self._start_unlabeled(self.online_settings())
            self.fit_ema_schedule()

    def _start_unlabeled(self, online: OnlineSettings) -> None:
        self.unlabeled_loader = self._unlabeled_loader(online)
        self.unlabeled_batches = _forever(self.unlabeled_loader)

    def _close_unlabeled(self) -> None:
        """Stop the unlabeled loader's workers and free its pinned batches."""
        if getattr(self, "unlabeled_loader", None) is not None and hasattr(self.unlabeled_loader, "close"):
            self.unlabeled_loader.close()
        self.unlabeled_loader = self.unlabeled_batches = None

    def final_eval(self) -> None:
        """Ultralytics' final validation, the unlabeled loader closed first: its workers must not linger into the
        labeling that follows the training."""
        self._close_unlabeled()
        super().final_eval()

    def _unlabeled_loader(self, online: OnlineSettings) -> Any:
        per_rank = self.batch_size // max(self.world_size, 1)
        self.unlabeled_batch_size = max(1, round(per_rank * online.unlabeled_ratio))
        dataset = UnlabeledImages(online.unlabeled, self.args.imgsz)
        workers = split_workers(self.args.workers, online.unlabeled_ratio)[1]
        return build_dataloader(
            dataset, self.unlabeled_batch_size, workers, shuffle=True, rank=LOCAL_RANK, device=self.device
        )

    def get_dataloader(self, dataset_path: str, batch_size: int = 16, rank: int = 0, mode: str = "train") -> Any:
        """Ultralytics' loader; the labeled one with its share of `workers` (the unlabeled loader has the rest)."""
        if mode != "train":
            return super().get_dataloader(dataset_path, batch_size, rank, mode)
        workers = self.args.workers
        self.args.workers = split_workers(workers, self.online_settings().unlabeled_ratio)[0]
        try:  # Ultralytics reads the count from the arguments only
            return super().get_dataloader(dataset_path, batch_size, rank, mode)
        finally:
            self.args.workers = workers

    def _choose_thresholds(self, online: OnlineSettings) -> ClassThresholds:
        """Per class on val from the teacher (rank 0 on the whole split, the same for every rank), or one `conf`."""
        nc = self.data["nc"]
        if online.target_precision is None:
            return ClassThresholds.global_conf(nc, online.conf, online.uncertain_low)

        def measure() -> ClassThresholds:
            batches = iter(self._whole_val())
            low, iou = online.uncertain_low, online.nms_iou
            return thresholds_on_val(self.ema.ema, batches, nc, online.target_precision, low, iou, self.device)

        return decided_on_rank_0(measure)

    def _whole_val(self) -> Any:
        """The val batches of the whole split: under DDP each rank's `test_loader` holds a shard of it."""
        if RANK == -1:
            return self.test_loader
        loader = self.test_loader
        return build_dataloader(loader.dataset, loader.batch_size, 0, shuffle=False, rank=-1)

    def _use_thresholds(self, thresholds: ClassThresholds) -> None:
        """Targets from now on follow `thresholds`; with ignore regions, classes out of reach get no background loss on
        unlabeled images."""
        nc = self.data["nc"]
        self.kept_thresholds_cpu = torch.tensor(thresholds.as_array(nc), dtype=torch.float32)
        criterion = unwrap_model(self.model).criterion
        criterion.set_no_threshold(tuple(thresholds.unreachable))
        if RANK in {-1, 0}:
            shown = ", ".join(f"{self.data['names'][c]} {t:.3f}" for c, t in thresholds.kept.items())
            logger.info("Online teacher thresholds (%s): %s", thresholds.rule, shown)

    def validate(self):
        """Ultralytics' validation of the teacher, then (with a target precision) its thresholds measured again."""
        metrics, fitness = super().validate()
        online = self.online_settings()
        if online.target_precision is not None:
            self._use_thresholds(self._choose_thresholds(online))
        return metrics, fitness

    def preprocess_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        batch = super().preprocess_batch(batch)
        batch["n_l"] = len(batch["img"])
        if self.epoch < self.online_settings().burn_in_epochs:
            return batch
        return self._with_unlabeled(batch)

    def _with_unlabeled(self, batch: dict[str, Any]) -> dict[str, Any]:
        """`batch` with the strong views of an unlabeled batch appended, and the teacher's targets for them.

        Batch by batch, not image by image: the teacher's candidate boxes come to the CPU in one copy (`nms_boxes`),
        the targets are sorted and mapped there, and go back in three copies (non-blocking from pinned memory on a
        GPU); the strong view's pixel draws stay on the device and its warp matrices go over once. On a GPU the
        step waits for the device twice (`tests/train/test_online.py` counts it).
        """
        online = self.online_settings()
        unlabeled = next(self.unlabeled_batches)
        weak = unlabeled["img"].to(self.device, non_blocking=True).float() / 255
        size = batch["img"].shape[2:]
        if weak.shape[2:] != size:  # multi_scale resized the labeled half
            weak = F.interpolate(weak, size=size, mode="bilinear", align_corners=False)
        preds = teacher_predictions(self.ema.ema, weak)
        found = nms_boxes(preds, online.uncertain_low, online.nms_iou)
        strong, matrices = strong_view(
            weak,
            self.generator,
            online.strong_flip,
            online.strong_scale,
            online.strong_translate,
            pixel_generator=self.pixel_generator,
        )
        height, width = size
        codes, xywh, owner = [], [], []
        for i, (boxes, matrix) in enumerate(zip(found, matrices, strict=True)):
            kept = kept_mask(boxes, self.kept_thresholds_cpu)
            self.kept_share.add(boxes[:, 5], kept)
            image_codes, image_xywh = student_targets(boxes, kept, matrix, width, height).encoded(online.rules)
            codes.append(image_codes)
            xywh.append(image_xywh)
            owner.append(np.full(len(image_codes), batch["n_l"] + i, dtype=np.float32))
        to_batch = self._to_device
        batch["img"] = torch.cat([batch["img"], strong.to(batch["img"].dtype)])
        batch["cls"] = torch.cat([batch["cls"], to_batch(np.concatenate(codes), batch["cls"])])
        batch["bboxes"] = torch.cat([batch["bboxes"], to_batch(np.concatenate(xywh), batch["bboxes"])])
        batch["batch_idx"] = torch.cat([batch["batch_idx"], to_batch(np.concatenate(owner), batch["batch_idx"])])
        batch["im_file"] = (*batch["im_file"], *unlabeled["im_file"])
        if online.rules.unsure == "dense":
            strides = unwrap_model(self.model).stride.tolist()
            batch["teacher_scores"] = dense_targets(preds, matrices, strides, height, width, online.uncertain_low)
        return batch

    def _to_device(self, values: np.ndarray, like: torch.Tensor) -> torch.Tensor:
        """A CPU array as a tensor like `like` (its dtype and device): from pinned memory, not blocking, on a GPU."""
        return to_device(torch.from_numpy(values), like)


def split_workers(workers: int, unlabeled_ratio: float) -> tuple[int, int]:
    """`workers` loader processes shared by the labeled and the unlabeled loader, by their images per batch (each at
    least one when there are any): one full count each doubled the processes and their memory."""
    if workers <= 0:
        return 0, 0
    labeled = max(1, round(workers / (1 + unlabeled_ratio)))
    return labeled, max(1, workers - labeled)


def log_online_epoch(trainer: OnlineTeacherTrainer) -> None:
    """Per epoch, in the log and in `teacher.csv`: the unlabeled loss and the share of the teacher's boxes kept (of
    every rank's unlabeled batches)."""
    trainer.kept_share.sum_across_ranks(trainer.device)
    by_class = unwrap_model(trainer.model).criterion.unlabeled_by_class
    by_class.sum_across_ranks()
    if RANK in {-1, 0}:
        names = trainer.data["names"]
        u_loss = float((trainer.tloss or {}).get("u_loss", 0.0))
        hard, soft = by_class.shares()
        line = (
            f"Online epoch {trainer.epoch + 1}/{trainer.epochs}: unlabeled loss {u_loss:.4f}; "
            f"teacher boxes kept per class: {trainer.kept_share.describe(names)}; "
            f"unlabeled class loss per class (hard+soft): {_describe_shares(hard, soft, names)}"
        )
        logger.info(line)
        trainer.epoch_log_lines = [line]  # under DDP the epoch report carries it to the cycle's log (`epochs`)
        row = {"epoch": trainer.epoch + 1, "u_loss": round(u_loss, 5)}
        row.update(trainer.kept_share.counts(names))
        row.update(_threshold_columns(trainer.kept_thresholds_cpu, names))
        row.update({f"hard_{names[c]}": round(v, 5) for c, v in enumerate(hard)})
        row.update({f"soft_{names[c]}": round(v, 5) for c, v in enumerate(soft)})
        _append_row(Path(trainer.save_dir) / TEACHER_LOG, row)
    trainer.kept_share.reset()
    by_class.reset()


def _describe_shares(hard: list[float], soft: list[float], names: dict[int, str]) -> str:
    """`name hard%+soft%` per class: its share of the unlabeled images' class loss (the rest is background); `none`
    before any unlabeled loss (burn-in)."""
    if not any(hard) and not any(soft):
        return "none"
    return ", ".join(f"{names[c]} {h:.0%}+{s:.0%}" for c, (h, s) in enumerate(zip(hard, soft, strict=True)))


def stop_at_round_end(trainer: OnlineTeacherTrainer) -> None:
    """End this round's training at its `stop_epoch`: Ultralytics then validates, saves and ends as at a last epoch."""
    stop = trainer.online_settings().stop_epoch
    if stop is not None and trainer.epoch + 1 >= stop:
        trainer.stop = True


def _threshold_columns(thresholds: torch.Tensor, names: dict[int, str]) -> dict[str, str]:
    """`thr_<name>`: the kept threshold each class had during the epoch; empty when it had none (out of reach)."""
    values = thresholds.tolist()
    return {f"thr_{names[c]}": (f"{t:.4f}" if math.isfinite(t) else "") for c, t in enumerate(values)}


def _append_row(path: Path, row: dict[str, Any]) -> None:
    new = not path.is_file()
    with path.open("a", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)
