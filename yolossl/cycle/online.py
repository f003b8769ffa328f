"""`OnlineCycle`: `yolossl cycle --mode online`: round 0 on the labels, then one online-teacher run in `rounds` rounds.

The run trains for as many optimizer steps as the offline rounds would (`online_epochs`: their
`round_epochs * rounds` epochs over the pool and the repeated labeled images, as epochs over the
labeled images, each step one labeled and one unlabeled batch) from round 0's best weights, on the
labeled split plus the whole pool, labeled batch by batch by the EMA teacher (`yolossl.train.online`).
With `online_rounds` (the default) it is trained in `rounds` segments of one schedule, each round going
on from the last one's student, teacher, optimizer and epoch (no restart, no new warm-up). At each
round's end the teacher is validated, the pool is labeled with it into `round_k/pseudo/` (thresholds
measured again on val) and merged with the labeled split into `round_k/data.yaml`, a dataset
`yolo train` and `yolossl export` take as it is; the next round measures its thresholds again from
that teacher, so a class out of reach at the start gets its pseudo-labels once the teacher reaches it.
Without `online_rounds`, the run is round 1 alone (as before 6 Dec).

The round guard picks the final model (the best round on val) but never restarts the run: the next
round continues the teacher it has. Each round's steps record themselves in `state.json` (train,
label, merge), so a resumed run redoes only the step that was cut off.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from yolossl._fs import write_text_atomic
from yolossl.cycle.loop import Cycle, ProgressEvent
from yolossl.cycle.results import RoundResult, TeacherRound
from yolossl.errors import YolosslError
from yolossl.merge import build_round_dataset, labeled_repeat
from yolossl.train import Metrics, TrainResult, TrainSettings
from yolossl.train.online_settings import (
    CONTINUE_FILE,
    ONLINE_FILE,
    ONLINE_KEY,
    TEACHER_LOG,
    OnlineSettings,
    save_online_settings,
)
from yolossl.train.targets import PseudoTargets

logger = logging.getLogger(__name__)

LABELED_DIR = "labeled"
"""The run's labeled split as the online rounds train on it (their unlabeled images come from `online.json`)."""
ONLINE_YAML = "online.yaml"
"""A round's training data YAML: the labeled split, and `online:` naming its `online.json`."""


class OnlineCycle(Cycle):
    """The cycle with its pseudo-label rounds replaced by one online-teacher run, trained round by round."""

    def round_indices(self) -> range:
        online_rounds = self.config.rounds if self.config.online_rounds else min(self.config.rounds, 1)
        return range(online_rounds + 1)

    def stops_early(self, rounds: list[RoundResult]) -> bool:
        """Never: a rejected round does not repeat itself here, the run goes on and its length was set at the start."""
        return False

    def _round(self, index: int, previous: RoundResult | None, val_images: Path) -> RoundResult:
        if previous is None:
            return super()._round(index, previous, val_images)
        round_dir = self.run_dir / f"round_{index}"
        round_dir.mkdir(exist_ok=True)
        labeled = self._labeled_dataset(val_images)
        epochs = self.online_epochs(labeled["labeled_images"], labeled["labeled_repeat"])
        start, stop = self.round_span(index, epochs)
        online_yaml = self._online_data_yaml(index, round_dir, labeled, stop if stop < epochs else None)
        trained = self._train_online(index, previous, online_yaml, epochs, start, stop)
        # The boundary: the teacher labels the pool (its thresholds measured on val), merged into round_k/data.yaml.
        stats = self._label(index, trained.weights, round_dir)
        merged = self._merge(index, round_dir, val_images, with_pseudo=True)
        accepted = trained.metrics.map50_95 >= previous.metrics.map50_95
        if not accepted:
            logger.warning(
                "Round %d: the teacher is below round %d on val (mAP50-95 %.3f < %.3f); the run goes on, round %d "
                "stays the final model until a round beats it",
                index,
                previous.index,
                trained.metrics.map50_95,
                previous.metrics.map50_95,
                previous.index,
            )
        names = self.inputs.names
        result = RoundResult(
            index=index,
            labeled_images=merged["labeled_images"],
            pseudo_images=merged["pseudo_images"],  # the pool images the teacher kept boxes on at the round's end
            pseudo_boxes=stats.kept,
            pseudo_boxes_per_class={names[c]: n for c, n in stats.kept_per_class.items()},
            uncertain_boxes=stats.uncertain,
            masked_images=stats.masked_images,
            metrics=trained.metrics,
            weights=trained.weights,
            data_yaml=round_dir / "data.yaml",
            wall_time_s=round(trained.wall_time_s + stats.wall_time_s, 2),
            accepted=accepted,
            trained_from=str(previous.weights) if index == 1 else str(self._continuation(index - 1)),
            labeled_repeat=labeled[
                "labeled_repeat"
            ],  # as the online run trained them (the merged dataset repeats more)
            skipped_images=len(stats.unreadable),
            epochs=stop - start,
            teacher=teacher_round(trained.save_dir / TEACHER_LOG, list(names.values())),
        )
        return self._finish_round(result, round_dir, " (online)")

    def online_epochs(self, n_labeled: int, repeat: int = 1) -> int:
        """`online_epochs`, or the epochs over this run's labeled images (each `repeat` times) that take the offline
        rounds' optimizer steps; at least one per round."""
        if self.config.online_epochs is not None:
            return max(self.config.online_epochs, len(self.round_indices()) - 1)
        n_pool = len(self.inputs.pool.images)
        per_round = n_labeled * labeled_repeat(self.config.labeled_repeat, n_labeled, n_pool) + n_pool
        images = self.config.round_epochs * self.config.rounds * per_round
        return max(1, math.ceil(images / max(1, n_labeled * repeat)), len(self.round_indices()) - 1)

    def round_span(self, index: int, epochs: int) -> tuple[int, int]:
        """The epochs of the run that round `index` (1-based) trains: [start, stop)."""
        rounds = len(self.round_indices()) - 1
        return epochs * (index - 1) // rounds, epochs * index // rounds

    def online_train_settings(self, epochs: int) -> TrainSettings:
        """The rounds' schedule (no warm-up, one constant rate by default: it continues round 0's model), validated
        every epoch or only at each round's end (`online_val`)."""
        round_settings = self.config.round_settings(self.device, len(self.inputs.names))
        extra = {**round_settings.extra, "val": self.config.online_val}
        return replace(round_settings, epochs=epochs, online=True, extra=extra)

    def online_settings(self, continue_from: Path | None = None, stop_epoch: int | None = None) -> OnlineSettings:
        """The teacher's options from the cycle's: the labeling thresholds, the loss rules, the pool, the round."""
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
            continue_from=str(continue_from.resolve()) if continue_from else None,
            stop_epoch=stop_epoch,
        )

    def _pseudo_targets(self, index: int, round_dir: Path, pseudo: list) -> PseudoTargets | None:
        """None: a round's merged dataset is for review, export and `yolo train`; the teacher trained online."""
        return None

    def _labeled_dataset(self, val_images: Path) -> dict[str, Any]:
        """The labeled split the online rounds train on, built once per run (`labeled/`)."""
        if done := self.state.record(LABELED_DIR):
            return done
        folder = self.run_dir / LABELED_DIR
        labeled = self.inputs.labeled
        repeat = labeled_repeat(self.config.labeled_repeat, len(labeled), 0)
        built = build_round_dataset(folder, labeled, [], val_images, self.inputs.names, labeled_repeat=repeat)
        merged = {"labeled_images": built.labeled_images, "labeled_repeat": repeat, "data_yaml": str(built.data_yaml)}
        self.state.put_record(LABELED_DIR, merged)
        return merged

    def _continuation(self, index: int) -> Path:
        """Where round `index` left the run for the next round (`train.online.CONTINUE_FILE`)."""
        return self.run_dir / f"round_{index}" / "train" / "weights" / CONTINUE_FILE

    def _online_data_yaml(self, index: int, round_dir: Path, labeled: dict[str, Any], stop: int | None) -> Path:
        """Write `online.json` and the round's training YAML naming it (again on resume: both are derived)."""
        continue_from = self._continuation(index - 1) if index > 1 else None
        if continue_from is not None and not continue_from.is_file():
            raise YolosslError(
                f"{continue_from}: missing, and round {index} continues the run from it; to train on, start a new "
                f"run with --start-weights {self.run_dir / 'weights' / 'best.pt'}"
            )
        settings_file = (round_dir / ONLINE_FILE).resolve()
        save_online_settings(self.online_settings(continue_from, stop), settings_file)
        meta = yaml.safe_load(Path(labeled["data_yaml"]).read_text(encoding="utf-8"))
        online_yaml = round_dir / ONLINE_YAML
        write_text_atomic(online_yaml, yaml.safe_dump({**meta, ONLINE_KEY: str(settings_file)}, sort_keys=False))
        return online_yaml

    def _train_online(
        self, index: int, previous: RoundResult, data_yaml: Path, epochs: int, start: int, stop: int
    ) -> TrainResult:
        """This round's part of the online run, unless it already finished it."""
        if done := self.state.steps(index).get("train"):
            return _train_result(done)
        # Seeded by where the round starts: a round does not replay the first round's shuffles and strong views.
        settings = replace(self.online_train_settings(epochs), seed=self.config.seed + start)
        self.on_progress(ProgressEvent(index, "train", 0, stop - start))
        source = previous.weights if index == 1 else self._continuation(index - 1)
        if index == 1 and self.config.online_epochs is None:  # "epochs 1-3 of 6" after --round-epochs 1 wants a word
            logger.info(
                "Online run: %d epochs over the labeled images, the optimizer steps of %d offline round(s) of "
                "--round-epochs %d over the labeled and pool images (--online-epochs sets it)",
                epochs,
                self.config.rounds,
                self.config.round_epochs,
            )
        logger.info(
            "Round %d: online teacher, epochs %d-%d of %d, from %s, on %d labeled and %d unlabeled images",
            index,
            start + 1,
            stop,
            epochs,
            source,
            len(self.inputs.labeled),
            len(self.inputs.pool.images),
        )
        # The student's architecture comes from the weights file; its state, the teacher's and the optimizer's from
        # the continuation checkpoint that online.json names.
        model = str(previous.weights)
        trained = self.train(
            model, data_yaml, data_yaml.parent / "train", settings, self._on_round_epoch(index, start, stop)
        )
        self.state.mark(index, "train", _train_dict(trained))
        return trained

    def _on_round_epoch(self, index: int, start: int, stop: int) -> Callable[[int, int, dict[str, float]], None]:
        """Progress counts the round's epochs; the log also says where the run is (it counts on across rounds)."""

        def report(epoch: int, epochs: int, values: dict[str, float]) -> None:
            self.on_progress(ProgressEvent(index, "train", epoch - start, stop - start))
            shown = " ".join(f"{k} {v:.3f}" for k, v in values.items())
            logger.info(
                "Round %d epoch %d/%d (run epoch %d/%d): %s", index, epoch - start, stop - start, epoch, epochs, shown
            )

        return report


def teacher_round(log: Path, names: list[str]) -> TeacherRound | None:
    """What the teacher did during a round, from its `teacher.csv`: boxes kept and seen per class, epochs without a
    threshold per class."""
    if not log.is_file():
        return None
    with log.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return None

    def total(prefix: str, name: str) -> int:
        return sum(int(float(row.get(f"{prefix}_{name}") or 0)) for row in rows)

    return TeacherRound(
        epochs=len(rows),
        kept={name: total("kept", name) for name in names},
        seen={name: total("seen", name) for name in names},
        epochs_without_threshold={
            name: sum(f"thr_{name}" in row and not row[f"thr_{name}"] for row in rows) for name in names
        },
    )


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
