"""The self-training loop: round 0 on the labels, then N rounds of label → merge → train → guard.

`Cycle` is given its trainer and labeler (defaults: Ultralytics' trainer through `train_detector`,
and `PoolLabeler`), so another round strategy is another object, not another branch here. Each step
records itself in `state.json` once its outputs are in place; a resumed run skips what is done.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from yolossl._fs import write_text_atomic
from yolossl.config import CycleConfig
from yolossl.cycle.control import (
    CONTROL_DIR,
    CONTROL_FILE,
    STATE_KEY,
    ControlResult,
    control_settings,
    trained_epochs,
    verdict,
)
from yolossl.cycle.inputs import CycleInputs, leave_out_unreadable, log_inputs, write_data_report
from yolossl.cycle.labeler import Labeler, PoolLabeler
from yolossl.cycle.results import (
    FINAL_WEIGHTS,
    SUMMARY_FILE,
    CycleResult,
    RoundResult,
    best_round,
    rounds_without_gain,
    summary_csv,
)
from yolossl.cycle.state import RunState
from yolossl.data import ImageItem
from yolossl.errors import YolosslError
from yolossl.label import LabelStats, training_items
from yolossl.merge import build_round_dataset, labeled_repeat, mirror_split
from yolossl.runtime import describe_device
from yolossl.train import TrainResult, train_detector, validate_detector
from yolossl.train.saturation import SATURATION_FILE, SaturationWatch
from yolossl.train.targets import PseudoTargets, targets_from_labeling

logger = logging.getLogger(__name__)

UNREADABLE_RECORD = "unreadable_pool"
"""In `state.json`: the pool images found unreadable at the run's start (path: why), so a resume does not look again."""

Trainer = Callable[..., TrainResult]
"""`train_detector`'s signature: (model, data_yaml, save_dir, settings, on_epoch) -> TrainResult."""


@dataclass(frozen=True)
class ProgressEvent:
    """Sent to `on_progress`: a step starting (`done == 0`) or advancing, of `total` units."""

    round: int
    step: str  # "label", "merge", "train"
    done: int
    total: int


ProgressCallback = Callable[[ProgressEvent], None]


class Cycle:
    """One run while it executes: `run()` does the rounds that are not done yet."""

    def __init__(
        self,
        inputs: CycleInputs,
        run_dir: Path,
        device: str,
        on_progress: ProgressCallback | None = None,
        trainer: Trainer | None = None,
        labeler: Labeler | None = None,
    ) -> None:
        self.inputs = inputs
        self.config: CycleConfig = inputs.config
        self.run_dir = run_dir
        self.device = device
        self.on_progress = on_progress or (lambda event: None)
        self.train = trainer or train_detector
        self.label = labeler or PoolLabeler(inputs, device)
        self.state = RunState(run_dir)
        self.settings = self.config.train_settings(device)

    def run(self) -> CycleResult:
        logger.info("Device: %s", describe_device(self.device))
        log_inputs(self.inputs)
        self._leave_out_unreadable()
        write_data_report(self.inputs, self.run_dir)
        val_images = self._mirror_val()
        self.test_yaml = self._mirror_test()
        result = CycleResult(self.run_dir, self.config, list(self.inputs.names.values()))
        for index in self.round_indices():
            if done := self.state.result(index):
                result.rounds.append(RoundResult.from_dict(done))
                continue
            if self.stops_early(result.rounds):
                logger.info(
                    "Stopping after round %d: %d round(s) without a gain on val (patience %d)",
                    index - 1,
                    rounds_without_gain(result.rounds),
                    self.config.patience,
                )
                break
            # The round guard: every round starts from the best round so far, never from a rejected one.
            previous = best_round(result.rounds) if result.rounds else None
            result.rounds.append(self._round(index, previous, val_images))
            self._write_summary(result.rounds)
        result.control = self._labels_alone(result.rounds)
        self._write_summary(result.rounds, result.control)
        self._write_final_weights(result)
        if result.control is not None:
            sentence = verdict(result.best.metrics, result.best.test, result.control)
            record = {**result.control.to_dict(), "final_round": result.best.index, "verdict": sentence}
            write_text_atomic(self.run_dir / CONTROL_FILE, json.dumps(record, indent=2))
            logger.info(sentence)
        self._write_report()
        return result

    def round_indices(self) -> range:
        """Round 0, then one per pseudo-label round."""
        return range(self.config.rounds + 1)

    def stops_early(self, rounds: list[RoundResult]) -> bool:
        """After `patience` rejected rounds in a row: the next round would start from the same weights again."""
        return rounds_without_gain(rounds) >= self.config.patience

    def _round(self, index: int, previous: RoundResult | None, val_images: Path) -> RoundResult:
        """label (with the best weights so far) → merge → train → guard; round 0 only merges and trains."""
        round_dir = self.run_dir / f"round_{index}"
        round_dir.mkdir(exist_ok=True)
        stats = self._label(index, previous.weights, round_dir) if previous else LabelStats()
        start = time.perf_counter()  # the labeling's own time is in its stats (also when a resume read it back)
        merged = self._merge(index, round_dir, val_images, with_pseudo=previous is not None)
        start_model, epochs, trained = self._train(index, previous, round_dir, merged)
        accepted = previous is None or trained.metrics.map50_95 >= previous.metrics.map50_95
        if not accepted:
            logger.warning(
                "Round %d: rejected by the round guard (mAP50-95 %.3f < %.3f of round %d); the next round starts "
                "from round %d",
                index,
                trained.metrics.map50_95,
                previous.metrics.map50_95,
                previous.index,
                previous.index,
            )
        names = self.inputs.names
        result = RoundResult(
            index=index,
            labeled_images=merged["labeled_images"],
            pseudo_images=merged["pseudo_images"],
            pseudo_boxes=stats.kept,
            pseudo_boxes_per_class={names[c]: n for c, n in stats.kept_per_class.items()},
            uncertain_boxes=stats.uncertain,
            masked_images=stats.masked_images,
            metrics=trained.metrics,
            weights=trained.weights,
            data_yaml=round_dir / "data.yaml",
            wall_time_s=round(time.perf_counter() - start + stats.wall_time_s, 2),
            accepted=accepted,
            trained_from=str(start_model),
            labeled_repeat=merged.get("labeled_repeat", 1),
            skipped_images=len(stats.unreadable),
            epochs=epochs,
        )
        return self._finish_round(result, round_dir)

    def _finish_round(self, result: RoundResult, round_dir: Path, kind: str = "") -> RoundResult:
        """Score the round on test (when there is one), write its metrics.json and record it done in state.json: a
        resumed run skips it from now on."""
        if self.test_yaml is not None:
            result = replace(result, test=validate_detector(result.weights, self.test_yaml, self.settings))
        write_text_atomic(round_dir / "metrics.json", json.dumps(result.to_dict(), indent=2))
        self.state.finish_round(result.index, result.to_dict())
        m = result.metrics
        logger.info(
            "Round %d%s: mAP50 %.3f, mAP50-95 %.3f (P %.3f, R %.3f)",
            result.index,
            kind,
            m.map50,
            m.map50_95,
            m.precision,
            m.recall,
        )
        if result.test is not None:
            t = result.test
            logger.info("Round %d on test: mAP50 %.3f, mAP50-95 %.3f", result.index, t.map50, t.map50_95)
        return result

    def _label(self, index: int, weights: Path, round_dir: Path) -> LabelStats:
        """Pseudo-label the pool, unless this round already did; the stats keep the time it took."""
        if done := self.state.steps(index).get("label"):
            return LabelStats.from_dict(done)
        total, done_images = len(self.inputs.pool.images), 0

        def advance(n: int) -> None:
            nonlocal done_images
            done_images += n
            self.on_progress(ProgressEvent(index, "label", done_images, total))

        stats = self.label(index, weights, round_dir, advance)
        logger.info(
            "Round %d: labeled %d images in %.1f s (%.0f img/s): %d boxes kept on %d images, %d uncertain "
            "(%d images masked), %d dropped",
            index,
            stats.images,
            stats.wall_time_s,
            stats.images_per_s,
            stats.kept,
            stats.images_with_boxes,
            stats.uncertain,
            stats.masked_images,
            stats.dropped,
        )
        self.state.mark(index, "label", stats.to_dict())
        return stats

    def _merge(self, index: int, round_dir: Path, val_images: Path, with_pseudo: bool) -> dict[str, Any]:
        """The round's dataset: labeled images (repeated) + pseudo-labeled ones, and its data YAML."""
        if done := self.state.steps(index).get("merge"):
            return done
        labeled = self.inputs.labeled
        pseudo = list(training_items(round_dir / "pseudo", self.config.keep_empty)) if with_pseudo else []
        targets = self._pseudo_targets(index, round_dir, pseudo) if with_pseudo else None
        repeat = labeled_repeat(self.config.labeled_repeat, len(labeled), len(pseudo))
        total = len(labeled) + len(pseudo)
        self.on_progress(ProgressEvent(index, "merge", 0, total))
        built = build_round_dataset(
            round_dir,
            labeled,
            pseudo,
            val_images,
            self.inputs.names,
            labeled_repeat=repeat,
            on_item=lambda done: self.on_progress(ProgressEvent(index, "merge", done, total)),
            pseudo_targets=targets,
        )
        merged = {
            "labeled_images": built.labeled_images,
            "pseudo_images": built.pseudo_images,
            "labeled_repeat": repeat,
        }
        self.state.mark(index, "merge", merged)
        return merged

    def _pseudo_targets(self, index: int, round_dir: Path, pseudo: list[ImageItem]) -> PseudoTargets | None:
        """With the pseudo-aware loss: what it must know of the round's pseudo images (None: Ultralytics' loss)."""
        if self.config.loss != "pseudo-aware":
            return None
        targets = targets_from_labeling(round_dir / "pseudo", {item.id for item in pseudo}, self.config.loss_rules())
        unsure = sum(len(image.unsure) + len(image.ignore) for image in targets.images.values())
        unlabeled = ", ".join(self.inputs.names[c] for c in targets.rules.no_threshold_classes) or "none"
        as_what = "soft targets" if targets.rules.unsure == "soft" else "ignore regions"
        logger.info(
            "Round %d: pseudo-aware loss: %d unsure boxes (%s) on %d images; no background loss for classes: %s",
            index,
            unsure,
            as_what,
            sum(bool(image.unsure or image.ignore) for image in targets.images.values()),
            unlabeled,
        )
        return targets

    def _train(
        self, index: int, previous: RoundResult | None, round_dir: Path, merged: dict[str, Any]
    ) -> tuple[str, int, TrainResult]:
        """Round 0 from `model` (or the user's start weights), saturated when asked; later rounds fine-tune the best
        round so far."""
        data_yaml = round_dir / "data.yaml"
        if previous is None and self.config.start_weights:
            adopted = self._adopt_start_weights(round_dir, data_yaml)
            return self.config.start_weights, *self._saturate(adopted, 0, data_yaml, round_dir)
        fresh = previous is None or self.config.from_scratch
        start_model = self.config.model if fresh else str(previous.weights)
        epochs = self.config.epochs if previous is None else self.config.round_epochs
        images = merged["labeled_images"] * merged["labeled_repeat"] + merged["pseudo_images"]
        self.on_progress(ProgressEvent(index, "train", 0, epochs))
        logger.info("Round %d: training from %s for %d epochs on %d images", index, start_model, epochs, images)
        if previous is None:
            trained = self.train(start_model, data_yaml, round_dir / "train", self.settings, self._on_epoch(0))
            return start_model, *self._saturate(trained, epochs, data_yaml, round_dir)
        settings = self.config.round_settings(self.device, len(self.inputs.names))
        trained = self.train(start_model, data_yaml, round_dir / "train", settings, self._on_epoch(index))
        return start_model, epochs, trained

    def _saturate(self, start: TrainResult, epochs: int, data_yaml: Path, round_dir: Path) -> tuple[int, TrainResult]:
        """Round 0 trained on in one run at the rounds' rate until the labels saturate (`saturate_epochs` at most;
        `train.saturation`). Returns round 0's epochs and its model: the best validation, the start included."""
        if not self.config.saturate_epochs:
            return epochs, start
        most = self.config.saturate_epochs
        rule = self.config.saturation_rule()
        record = round_dir / SATURATION_FILE
        watch = SaturationWatch(rule, start.metrics.map50_95, record, most)
        round_settings = self.config.round_settings(self.device, len(self.inputs.names))
        # Every label here is human (Ultralytics' loss); the watch, not Ultralytics' patience, ends the run; mosaic
        # stays closed, as round 0 ended: an open-ended run never reaches Ultralytics' last-epochs close_mosaic.
        extra = {**round_settings.extra, "patience": most + 1, "close_mosaic": most}
        settings = replace(round_settings, epochs=most, loss="ultralytics", extra=extra)
        logger.info(
            "Round 0: training on until saturated (val every %d epochs; stops when the best has not risen by %.3f "
            "within %d epochs; at most %d more)",
            rule.every,
            rule.min_gain,
            rule.window,
            most,
        )
        self.on_progress(ProgressEvent(0, "train", 0, most))
        folder = round_dir / "saturate"
        trained = self.train(str(start.weights), data_yaml, folder, settings, self._on_epoch(0), watch=watch)
        ran = watch.curve[-1][0]
        best_epoch, best = watch.best()
        if watch.saturated:
            logger.info(
                "Round 0: saturated after %d more epochs (best val mAP50-95 %.4f, epoch %d)", ran, best, best_epoch
            )
        else:
            logger.warning(
                "Round 0: NOT saturated after %d more epochs (still rising by %.3f or more within %d epochs); raise "
                "--saturate-epochs",
                ran,
                rule.min_gain,
                rule.window,
            )
        return epochs + ran, start if best_epoch == 0 else trained

    def _adopt_start_weights(self, round_dir: Path, data_yaml: Path) -> TrainResult:
        """Round 0 from weights the user already trained: copied into the run and validated, not retrained."""
        source = Path(self.config.start_weights)
        if not source.is_file():
            raise YolosslError(f"{source}: start weights not found")
        weights = round_dir / "train" / "weights" / "best.pt"
        weights.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, weights)
        logger.info("Round 0: using %s as the supervised model (validating it, not training)", source)
        return TrainResult(weights, validate_detector(weights, data_yaml, self.settings), weights.parents[1], 0.0)

    def _on_epoch(self, index: int) -> Callable[[int, int, dict[str, float]], None]:
        def report(epoch: int, epochs: int, values: dict[str, float]) -> None:
            self.on_progress(ProgressEvent(index, "train", epoch, epochs))
            shown = " ".join(f"{k} {v:.3f}" for k, v in values.items())
            logger.info("Round %d epoch %d/%d: %s", index, epoch, epochs, shown)

        return report

    def _labels_alone(self, rounds: list[RoundResult]) -> ControlResult | None:
        """The control (`cycle.control`): round 0 trained on for the rounds' wall time, on the labels alone."""
        if not self.config.control or len(rounds) < 2:
            return None
        round0 = rounds[0]
        budget = sum(r.wall_time_s for r in rounds[1:])
        done = self.state.record(STATE_KEY)
        if done and done["budget_s"] == round(budget, 2):  # a resume that added rounds trains a longer one
            return ControlResult.from_dict(done)
        per_epoch = round0.wall_time_s / round0.epochs if round0.epochs else budget
        # Every label here is human: Ultralytics' own loss, whatever the rounds trained with.
        settings = control_settings(replace(self.settings, loss="ultralytics"), budget, per_epoch)
        logger.info("Labels alone (the control): round 0 trained on for %.0f s, the rounds' wall time", budget)
        self.on_progress(ProgressEvent(0, "control", 0, settings.epochs))
        trained = self.train(
            str(round0.weights),
            self.run_dir / "round_0" / "data.yaml",
            self.run_dir / CONTROL_DIR,
            settings,
            self._on_control_epoch(),
        )
        test = validate_detector(trained.weights, self.test_yaml, self.settings) if self.test_yaml else None
        control = ControlResult(
            trained.metrics, test, trained.weights, trained_epochs(trained), round(budget, 2), trained.wall_time_s
        )
        self.state.put_record(STATE_KEY, control.to_dict())
        logger.info(
            "Labels alone: %d epochs in %.0f s -> val mAP50-95 %.3f%s",
            control.epochs,
            control.wall_time_s,
            control.metrics.map50_95,
            f", test {test.map50_95:.3f}" if test else "",
        )
        return control

    def _on_control_epoch(self) -> Callable[[int, int, dict[str, float]], None]:
        def report(epoch: int, epochs: int, values: dict[str, float]) -> None:
            self.on_progress(ProgressEvent(0, "control", epoch, epochs))
            logger.info(
                "Labels alone epoch %d/%d: %s", epoch, epochs, " ".join(f"{k} {v:.3f}" for k, v in values.items())
            )

        return report

    def _leave_out_unreadable(self) -> None:
        """Pool images that cannot be read are found once per run, before round 0, and never trained or labeled."""
        if not self.inputs.pool.images:
            return
        known = self.state.record(UNREADABLE_RECORD)
        self.state.put_record(UNREADABLE_RECORD, leave_out_unreadable(self.inputs, known))

    def _mirror_val(self) -> Path:
        """The val split, mirrored once per run so that Ultralytics' cache never lands in the user's folder."""
        val_dir = self.run_dir / "val"
        if not self.state.flag("val_mirrored"):
            mirror_split(self.inputs.val, val_dir, len(self.inputs.names))
            self.state.set_flag("val_mirrored")
        return val_dir / "images"

    def _mirror_test(self) -> Path | None:
        """The test split as a data YAML of its own (val: the test images), apart from every YAML a round trains or
        chooses with: only `_finish_round` scores on it, after the round's choices are made."""
        if not self.inputs.test:
            return None
        test_yaml = self.run_dir / "test" / "data.yaml"
        if not self.state.flag("test_mirrored"):
            images = mirror_split(self.inputs.test, self.run_dir / "test" / "split", len(self.inputs.names))
            meta = {"train": str(images.resolve()), "val": str(images.resolve()), "names": self.inputs.names}
            write_text_atomic(test_yaml, yaml.safe_dump(meta, sort_keys=False))
            self.state.set_flag("test_mirrored")
        return test_yaml

    def _write_summary(self, rounds: list[RoundResult], control: ControlResult | None = None) -> None:
        names = list(self.inputs.names.values())
        write_text_atomic(self.run_dir / SUMMARY_FILE, summary_csv(rounds, names, control))

    def _write_final_weights(self, result: CycleResult) -> None:
        best = result.best
        target = self.run_dir / FINAL_WEIGHTS
        target.parent.mkdir(exist_ok=True)
        tmp = target.with_name(".best.pt.tmp")
        shutil.copyfile(best.weights, tmp)
        os.replace(tmp, target)
        logger.info("Final model: round %d (mAP50-95 %.3f), copied to %s", best.index, best.metrics.map50_95, target)
        if best.test is not None:
            logger.info(
                "Final model on test: mAP50 %.3f, mAP50-95 %.3f (chosen on val; test chose nothing)",
                best.test.map50,
                best.test.map50_95,
            )

    def _write_report(self) -> None:
        """The HTML report; a plotting failure costs the report, never the finished run (and is said)."""
        from yolossl.report import write_report

        try:
            path = write_report(self.run_dir)
        except Exception as e:  # the run's results are already safe on disk; only the page is lost
            logger.warning(
                "The report could not be written (%s: %s); try 'yolossl report %s'", type(e).__name__, e, self.run_dir
            )
            return
        logger.info("Report: %s", path)
