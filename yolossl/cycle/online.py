"""`OnlineCycle`: `yolossl cycle --mode online`: round 0 on the labels, then one online-teacher run as round 1.

Round 1 trains for as many optimizer steps as the offline rounds would (`online_epochs`: their
`round_epochs * rounds` epochs over the pool and the repeated labeled images, as epochs over the
labeled images, each step one labeled and one unlabeled batch; in one run: the teacher needs no
restarts) from round 0's best weights, on the labeled split plus the whole pool, labeled batch by
batch by the EMA teacher (`yolossl.train.online`). It validates once, at its end, as the bench measured
it (`online_val`: every epoch, the thresholds measured again each time, about twice the time at demo
size). Its steps record themselves in `state.json` like the offline rounds' (merge, train, label), so a
resumed run redoes only the step that was cut off.
The round guard still applies: the final model is the better of rounds 0 and 1, and that model
labels the pool into `round_1/pseudo/` with the cycle's labeler, so
that `yolossl export` and review work unchanged.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from pathlib import Path

import yaml

from yolossl._fs import write_text_atomic
from yolossl.cycle.loop import Cycle, ProgressEvent
from yolossl.cycle.results import RoundResult
from yolossl.merge import labeled_repeat
from yolossl.train import Metrics, TrainResult, TrainSettings
from yolossl.train.online_settings import ONLINE_FILE, ONLINE_KEY, OnlineSettings, save_online_settings

logger = logging.getLogger(__name__)


class OnlineCycle(Cycle):
    """The cycle with its pseudo-label rounds replaced by one online-teacher run (round 1)."""

    def round_indices(self) -> range:
        return range(min(self.config.rounds, 1) + 1)

    def _round(self, index: int, previous: RoundResult | None, val_images: Path) -> RoundResult:
        if previous is None:
            return super()._round(index, previous, val_images)
        round_dir = self.run_dir / f"round_{index}"
        round_dir.mkdir(exist_ok=True)
        merged = self._merge(index, round_dir, val_images, with_pseudo=False)
        data_yaml = round_dir / "data.yaml"
        self._name_online_settings(round_dir, data_yaml)
        epochs = self.online_epochs(merged["labeled_images"], merged.get("labeled_repeat", 1))
        trained = self._train_online(index, previous, data_yaml, epochs)
        accepted = trained.metrics.map50_95 >= previous.metrics.map50_95
        if not accepted:
            logger.warning(
                "Round %d: rejected by the round guard (mAP50-95 %.3f < %.3f of round %d); round %d stays the model",
                index,
                trained.metrics.map50_95,
                previous.metrics.map50_95,
                previous.index,
                previous.index,
            )
        final = trained.weights if accepted else previous.weights
        stats = self._label(index, final, round_dir)
        names = self.inputs.names
        result = RoundResult(
            index=index,
            labeled_images=merged["labeled_images"],
            pseudo_images=len(self.inputs.pool.images),  # every pool image, labeled online by the teacher
            pseudo_boxes=stats.kept,  # what the final model kept when labeling the pool for export
            pseudo_boxes_per_class={names[c]: n for c, n in stats.kept_per_class.items()},
            uncertain_boxes=stats.uncertain,
            masked_images=stats.masked_images,
            metrics=trained.metrics,
            weights=trained.weights,
            data_yaml=data_yaml,
            wall_time_s=round(trained.wall_time_s + stats.wall_time_s, 2),
            accepted=accepted,
            trained_from=str(previous.weights),
            labeled_repeat=merged.get("labeled_repeat", 1),
            skipped_images=len(stats.unreadable),
            epochs=epochs,
        )
        return self._finish_round(result, round_dir, " (online)")

    def online_epochs(self, n_labeled: int, repeat: int = 1) -> int:
        """`online_epochs`, or the epochs over this run's labeled images (each `repeat` times) that take the offline
        rounds' optimizer steps."""
        if self.config.online_epochs is not None:
            return self.config.online_epochs
        n_pool = len(self.inputs.pool.images)
        per_round = n_labeled * labeled_repeat(self.config.labeled_repeat, n_labeled, n_pool) + n_pool
        images = self.config.round_epochs * self.config.rounds * per_round
        return max(1, math.ceil(images / max(1, n_labeled * repeat)))

    def online_train_settings(self, epochs: int) -> TrainSettings:
        """The rounds' schedule (no warm-up, one constant rate by default: it continues round 0's model), validated
        every epoch or once at its end (`online_val`)."""
        round_settings = self.config.round_settings(self.device, len(self.inputs.names))
        extra = {**round_settings.extra, "val": self.config.online_val}
        return replace(round_settings, epochs=epochs, online=True, extra=extra)

    def online_settings(self) -> OnlineSettings:
        """The teacher's options from the cycle's: the labeling thresholds, the loss rules, the pool."""
        label = self.config.label_settings(self.device)
        return OnlineSettings(
            unlabeled=tuple(str(item.path.resolve()) for item in self.inputs.pool.images),
            rules=self.config.loss_rules(),
            unlabeled_ratio=self.config.unlabeled_ratio,
            conf=label.conf,
            target_precision=label.target_precision,
            uncertain_low=label.uncertain_low,
            burn_in_epochs=self.config.burn_in_epochs,
            strong_scale=self.config.strong_scale,
            strong_translate=self.config.strong_translate,
        )

    def _name_online_settings(self, round_dir: Path, data_yaml: Path) -> None:
        """Write `online.json` and name it in the round's data YAML (again on resume: both are derived)."""
        settings_file = (round_dir / ONLINE_FILE).resolve()
        save_online_settings(self.online_settings(), settings_file)
        meta = yaml.safe_load(data_yaml.read_text(encoding="utf-8"))
        write_text_atomic(data_yaml, yaml.safe_dump({**meta, ONLINE_KEY: str(settings_file)}, sort_keys=False))

    def _train_online(self, index: int, previous: RoundResult, data_yaml: Path, epochs: int) -> TrainResult:
        """One online-teacher run from the best round so far, unless this round already finished it."""
        if done := self.state.steps(index).get("train"):
            return _train_result(done)
        settings = self.online_train_settings(epochs)
        self.on_progress(ProgressEvent(index, "train", 0, epochs))
        logger.info(
            "Round %d: online teacher run from %s for %d epochs on %d labeled and %d unlabeled images",
            index,
            previous.weights,
            epochs,
            len(self.inputs.labeled),
            len(self.inputs.pool.images),
        )
        trained = self.train(
            str(previous.weights), data_yaml, data_yaml.parent / "train", settings, self._on_epoch(index)
        )
        self.state.mark(index, "train", _train_dict(trained))
        return trained


def _train_dict(trained: TrainResult) -> dict:
    return {
        "weights": str(trained.weights),
        "metrics": trained.metrics.to_dict(),
        "save_dir": str(trained.save_dir),
        "wall_time_s": trained.wall_time_s,
    }


def _train_result(values: dict) -> TrainResult:
    return TrainResult(
        Path(values["weights"]), Metrics(**values["metrics"]), Path(values["save_dir"]), values["wall_time_s"]
    )
