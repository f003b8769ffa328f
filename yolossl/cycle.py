"""The self-training loop: round 0 on the labels, then N rounds of pseudo-label → merge → retrain.

Each round's steps write their outputs under a temporary name and then record themselves in the
run's `state.json`; `resume_cycle` skips every step recorded there, so an interrupted run
continues where it stopped and a finished round is never redone.

    >>> result = run_cycle(CycleConfig(data="data.yaml", unlabeled=["imgs/"], rounds=3))
    >>> result.rounds[-1].metrics.map50_95
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from yolossl._fs import write_text_atomic
from yolossl._yaml import load_yaml_file
from yolossl.config import CycleConfig, save_config
from yolossl.data import DatasetSpec, ImageItem, ImagePool, load_data_yaml, scan_image_folders
from yolossl.errors import YolosslError
from yolossl.label import LabelSettings, LabelStats, choose_thresholds, make_detector, pseudo_label, training_items
from yolossl.labels import check_split, log_split_report
from yolossl.leakage import find_leaks
from yolossl.merge import build_round_dataset, mirror_split
from yolossl.train import (
    Metrics,
    TrainResult,
    TrainSettings,
    describe_device,
    resolve_device,
    train_detector,
    validate_detector,
)

logger = logging.getLogger(__name__)

STATE_FILE = "state.json"
CONFIG_FILE = "config.yaml"
SUMMARY_FILE = "summary.csv"
FINAL_WEIGHTS = "weights/best.pt"
DATA_REPORT_FILE = "data_report.json"
LOG_FILE = "cycle.log"
MAX_UNLABELED_IMAGES = 2000  # pool images the FixMatch head takes unlabeled crops from, each round
MAX_UNLABELED_CROPS = 20000


@dataclass(frozen=True)
class RoundResult:
    """One round's outcome: what it trained on and how well the result does on val."""

    index: int
    labeled_images: int
    pseudo_images: int
    pseudo_boxes: int
    pseudo_boxes_per_class: dict[str, int]
    uncertain_boxes: int
    masked_images: int
    metrics: Metrics
    weights: Path
    data_yaml: Path
    wall_time_s: float
    accepted: bool = True
    """False when the round guard rejected it: its val mAP50-95 fell below the best round before it."""
    trained_from: str = ""
    labeled_repeat: int = 1
    epochs: int = 0
    skipped_images: int = 0
    """Pool images that could not be read this round (named in the log and in pseudo/stats.json)."""

    @property
    def train_images(self) -> int:
        """Images per training epoch, oversampled labeled images counted as often as they appear."""
        return self.labeled_images * self.labeled_repeat + self.pseudo_images

    @property
    def images_used(self) -> int:
        return self.labeled_images + self.pseudo_images

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values.update(weights=str(self.weights), data_yaml=str(self.data_yaml))
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RoundResult:
        return cls(
            **{
                **values,
                "metrics": Metrics(**values["metrics"]),
                "weights": Path(values["weights"]),
                "data_yaml": Path(values["data_yaml"]),
            }
        )


@dataclass
class CycleResult:
    """A finished (or resumed and finished) cycle."""

    run_dir: Path
    config: CycleConfig
    class_names: list[str]
    rounds: list[RoundResult] = field(default_factory=list)

    @property
    def summary_csv(self) -> Path:
        return self.run_dir / SUMMARY_FILE

    @property
    def best(self) -> RoundResult:
        """The round whose weights are the cycle's result: the best val mAP50-95 among accepted rounds."""
        return best_round(self.rounds)

    @property
    def weights(self) -> Path:
        """The final model: a copy of the best round's weights."""
        return self.run_dir / FINAL_WEIGHTS


def _rounds_without_gain(rounds: list[RoundResult]) -> int:
    """Rejected rounds since the last accepted one."""
    count = 0
    for r in reversed(rounds):
        if r.accepted:
            break
        count += 1
    return count


def best_round(rounds: list[RoundResult]) -> RoundResult:
    accepted = [r for r in rounds if r.accepted]
    return max(accepted, key=lambda r: (r.metrics.map50_95, -r.index))


@dataclass(frozen=True)
class ProgressEvent:
    """Sent to `on_progress`: a step starting (`done == 0`) or advancing, of `total` units."""

    round: int
    step: str  # "label", "merge", "train"
    done: int
    total: int


ProgressCallback = Callable[[ProgressEvent], None]


def run_cycle(config: CycleConfig, on_progress: ProgressCallback | None = None) -> CycleResult:
    """Start a new run under `config.project` and carry it through all rounds."""
    config = _with_demo_data(config)
    run_dir = _new_run_dir(Path(config.project), config.name)
    cycle = _Cycle(config, run_dir, on_progress)  # reads and checks the inputs before any folder is made
    run_dir.mkdir(parents=True)
    save_config(config, run_dir / CONFIG_FILE)
    logger.info("Run folder: %s", run_dir)
    return cycle.run()


def resume_cycle(
    run_dir: str | Path, rounds: int | None = None, on_progress: ProgressCallback | None = None
) -> CycleResult:
    """Continue an interrupted run from its last completed step; `rounds` may extend a finished run."""
    run_dir = Path(run_dir)
    config_path = run_dir / CONFIG_FILE
    if not config_path.is_file():
        raise YolosslError(f"{run_dir}: not a yolossl run folder (no {CONFIG_FILE})")
    config = CycleConfig(**load_yaml_file(config_path, "run config"))
    if rounds is not None and rounds != config.rounds:
        config = CycleConfig(**{**config.to_dict(), "rounds": rounds})
        save_config(config, config_path)
    logger.info("Resuming %s", run_dir)
    return _Cycle(config, run_dir, on_progress).run()


def _with_demo_data(config: CycleConfig) -> CycleConfig:
    """No `data` given: build (once) and use the bundled demo dataset and its unlabeled pool."""
    if config.data:
        return config
    from yolossl.demo import DEMO_DIR, ensure_demo_dataset

    data_yaml = ensure_demo_dataset(DEMO_DIR)
    unlabeled = config.unlabeled or [str((DEMO_DIR / "unlabeled").resolve())]
    return CycleConfig(**{**config.to_dict(), "data": str(data_yaml.resolve()), "unlabeled": unlabeled})


def _new_run_dir(project: Path, name: str | None) -> Path:
    """`project/name`, or the first free `project/exp`, `exp2`, ... Never an existing folder."""
    if name:
        run_dir = project / name
        if run_dir.exists():
            raise YolosslError(
                f"{run_dir}: already exists; pick another --name, or continue it with --resume {run_dir}"
            )
        return run_dir
    index = 1
    while (project / f"exp{'' if index == 1 else index}").exists():
        index += 1
    return project / f"exp{'' if index == 1 else index}"


class _Cycle:
    """The state of one run while it executes; `run()` does the rounds that are not done yet."""

    def __init__(self, config: CycleConfig, run_dir: Path, on_progress: ProgressCallback | None) -> None:
        self.config = config
        self.run_dir = run_dir
        self.on_progress = on_progress or (lambda event: None)
        self.state = _load_state(run_dir)
        if not config.data:
            raise YolosslError(f"{run_dir / CONFIG_FILE}: 'data' is not set")
        self.spec: DatasetSpec = load_data_yaml(config.data)
        self.labeled: list[ImageItem] = self.spec.train_items()
        self.val: list[ImageItem] = self.spec.val_items()
        n_classes = len(self.spec.names)
        self.reports = [
            check_split("train", self.labeled, self.spec.train, n_classes),
            check_split("val", self.val, self.spec.val, n_classes),
        ]
        self.pool: ImagePool = scan_image_folders(config.unlabeled) if config.rounds else ImagePool(folders=())
        self.leaks = find_leaks(self.pool.images, self.val, config.leakage) if config.rounds else {}
        self.pool.images = [item for item in self.pool.images if item.id not in self.leaks]
        if config.rounds and not self.pool.images:
            raise YolosslError(f"every unlabeled image in {', '.join(config.unlabeled)} is a copy of a val image")
        self.device = resolve_device(config.device)
        self.settings = TrainSettings(
            epochs=config.epochs,
            imgsz=config.imgsz,
            batch=config.batch,
            device=self.device,
            workers=config.workers,
            seed=config.seed,
            extra=config.train_args,
        )

    def run(self) -> CycleResult:
        """Every round not done yet, with the run's log also written to `cycle.log` in the run folder."""
        handler = logging.FileHandler(self.run_dir / LOG_FILE, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        # ours from INFO, Ultralytics' from WARNING (its INFO is per-batch noise)
        handler.addFilter(lambda record: record.name.startswith("yolossl") or record.levelno >= logging.WARNING)
        package, engine = logging.getLogger("yolossl"), logging.getLogger("ultralytics")
        level = package.level
        if package.getEffectiveLevel() > logging.INFO:  # the log file is complete even when the console is quiet
            package.setLevel(logging.INFO)
        package.addHandler(handler)
        engine.addHandler(handler)
        try:
            return self._run()
        except BaseException as e:
            logger.error("Stopped: %s: %s", type(e).__name__, e)
            raise
        finally:
            package.removeHandler(handler)
            engine.removeHandler(handler)
            package.setLevel(level)
            handler.close()

    def _run(self) -> CycleResult:
        logger.info("Device: %s", describe_device(self.device))
        logger.info(
            "Data: %d labeled images, %d unlabeled images, %d classes",
            len(self.labeled),
            len(self.pool),
            len(self.spec.names),
        )
        for report in self.reports:
            log_split_report(report)
        if self.leaks:
            example = next(iter(self.leaks.items()))
            logger.warning(
                "Leakage guard: %d unlabeled images are copies of val images and are left out (e.g. %s = %s)",
                len(self.leaks),
                example[0],
                example[1],
            )
        self._write_data_report()
        val_images = self._mirror_val()
        result = CycleResult(self.run_dir, self.config, list(self.spec.names.values()))
        for index in range(self.config.rounds + 1):
            done = self.state["rounds"].get(str(index), {}).get("result")
            if done:
                result.rounds.append(RoundResult.from_dict(done))
                continue
            if _rounds_without_gain(result.rounds) >= self.config.patience:
                logger.info(
                    "Stopping after round %d: %d round(s) without a gain on val (patience %d)",
                    index - 1,
                    _rounds_without_gain(result.rounds),
                    self.config.patience,
                )
                break
            # The round guard: every round starts from the best round so far, never from a rejected one.
            previous = best_round(result.rounds) if result.rounds else None
            result.rounds.append(self._run_round(index, previous, val_images))
            self._write_summary(result.rounds)
        self._write_summary(result.rounds)
        self._write_final_weights(result)
        self._write_report()
        return result

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

    def _write_final_weights(self, result: CycleResult) -> None:
        best = result.best
        target = self.run_dir / FINAL_WEIGHTS
        target.parent.mkdir(exist_ok=True)
        tmp = target.with_name(".best.pt.tmp")
        shutil.copyfile(best.weights, tmp)
        os.replace(tmp, target)
        logger.info("Final model: round %d (mAP50-95 %.3f), copied to %s", best.index, best.metrics.map50_95, target)

    def _write_data_report(self) -> None:
        """`data_report.json`: what the input checks found and did, for the summary and the report."""
        report = {
            "splits": {
                r.split: {
                    "images": r.images,
                    "counts": r.counts(),
                    "issues": [str(i) for i in r.issues[:1000]],
                    "images_without_label": r.images_without_label[:1000],
                    "labels_without_image": r.labels_without_image[:1000],
                }
                for r in self.reports
            },
            "pool": {
                "folders": [str(f) for f in self.pool.folders],
                "images": len(self.pool.images),
                "non_images_skipped": self.pool.skipped,
                "leakage_mode": self.config.leakage,
                "leakage_excluded": len(self.leaks),
                "leaks": dict(list(self.leaks.items())[:1000]),
            },
        }
        write_text_atomic(self.run_dir / DATA_REPORT_FILE, json.dumps(report, indent=2))

    def _mirror_val(self) -> Path:
        """The val split, mirrored once per run so that Ultralytics' cache never lands in the user's folder."""
        val_dir = self.run_dir / "val"
        if not self.state.get("val_mirrored"):
            mirror_split(self.val, val_dir, len(self.spec.names))
            self.state["val_mirrored"] = True
            self._save_state()
        return val_dir / "images"

    def _run_round(self, index: int, previous: RoundResult | None, val_images: Path) -> RoundResult:
        start = time.perf_counter()
        round_dir = self.run_dir / f"round_{index}"
        round_dir.mkdir(exist_ok=True)
        steps = self.state["rounds"].setdefault(str(index), {"steps": {}})["steps"]

        stats = LabelStats()
        if previous is not None:
            stats = self._label(index, previous.weights, round_dir, steps)

        if not steps.get("merge"):
            pseudo = list(training_items(round_dir / "pseudo", self.config.keep_empty)) if previous is not None else []
            repeat = labeled_repeat(self.config.labeled_repeat, len(self.labeled), len(pseudo))
            total = len(self.labeled) + len(pseudo)
            self.on_progress(ProgressEvent(index, "merge", 0, total))
            built = build_round_dataset(
                round_dir,
                self.labeled,
                pseudo,
                val_images,
                self.spec.names,
                labeled_repeat=repeat,
                on_item=lambda done: self.on_progress(ProgressEvent(index, "merge", done, total)),
            )
            merged_counts = {"labeled_images": built.labeled_images, "pseudo_images": built.pseudo_images}
            self._mark(steps, "merge", {**merged_counts, "labeled_repeat": repeat})
        merged = steps["merge"]
        data_yaml = round_dir / "data.yaml"

        if previous is None and self.config.start_weights:
            start_model, epochs = self.config.start_weights, 0
            trained = self._adopt_start_weights(round_dir, data_yaml)
        else:
            start_model = self.config.model if previous is None or self.config.from_scratch else str(previous.weights)
            epochs = self.config.epochs if previous is None else self.config.round_epochs
            images = merged["labeled_images"] * merged["labeled_repeat"] + merged["pseudo_images"]
            self.on_progress(ProgressEvent(index, "train", 0, epochs))
            logger.info("Round %d: training from %s for %d epochs on %d images", index, start_model, epochs, images)
            settings = replace(self.settings, epochs=epochs)
            trained = train_detector(start_model, data_yaml, round_dir / "train", settings, self._epoch_reporter(index))
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
        names = self.spec.names
        round_result = RoundResult(
            index=index,
            labeled_images=merged["labeled_images"],
            pseudo_images=merged["pseudo_images"],
            pseudo_boxes=stats.kept,
            pseudo_boxes_per_class={names[c]: n for c, n in stats.kept_per_class.items()},
            uncertain_boxes=stats.uncertain,
            masked_images=stats.masked_images,
            metrics=trained.metrics,
            weights=trained.weights,
            data_yaml=data_yaml,
            wall_time_s=round(time.perf_counter() - start + stats.wall_time_s, 2),
            accepted=accepted,
            trained_from=str(start_model),
            labeled_repeat=merged.get("labeled_repeat", 1),
            skipped_images=len(stats.unreadable),
            epochs=epochs,
        )
        write_text_atomic(round_dir / "metrics.json", json.dumps(round_result.to_dict(), indent=2))
        self.state["rounds"][str(index)]["result"] = round_result.to_dict()
        self._save_state()
        m = trained.metrics
        logger.info(
            "Round %d: mAP50 %.3f, mAP50-95 %.3f (P %.3f, R %.3f)", index, m.map50, m.map50_95, m.precision, m.recall
        )
        return round_result

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

    def _epoch_reporter(self, index: int) -> Callable[[int, int, dict[str, float]], None]:
        def report(epoch: int, epochs: int, values: dict[str, float]) -> None:
            self.on_progress(ProgressEvent(index, "train", epoch, epochs))
            shown = " ".join(f"{k} {v:.3f}" for k, v in values.items())
            logger.info("Round %d epoch %d/%d: %s", index, epoch, epochs, shown)

        return report

    def _label(self, index: int, weights: Path, round_dir: Path, steps: dict[str, Any]) -> LabelStats:
        """Pseudo-label the pool with the previous round's weights, unless this round already did.

        The stats keep the time spent labeling, so a resumed round still reports its whole cost.
        """
        if steps.get("label"):
            return LabelStats.from_dict(steps["label"])
        total = len(self.pool.images)
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            self.on_progress(ProgressEvent(index, "label", done, total))

        settings = self._label_settings()
        detector = make_detector([weights], settings, export_dir=round_dir / "export")
        reviewer = (
            self._fit_fixmatch_head(detector, settings, settings.band_low, round_dir) if self.config.fixmatch else None
        )
        thresholds = choose_thresholds(detector, self.val, settings, len(self.spec.names), reviewer)
        if thresholds.unreachable:
            missing = ", ".join(self.spec.names[i] for i in thresholds.unreachable)
            logger.warning("Round %d: no pseudo-labels for %s (%s is out of reach)", index, missing, thresholds.rule)
        self.on_progress(ProgressEvent(index, "label", 0, total))
        if settings.engine == "ray":
            from yolossl.label.ray_engine import pseudo_label_ray

            stats = pseudo_label_ray(
                [weights],
                self.pool.images,
                round_dir / "pseudo",
                settings,
                thresholds,
                self.spec.names,
                reviewer,
                settings.shard_size,
                settings.ray_address,
            )
        else:
            stats = pseudo_label(
                detector,
                self.pool.images,
                round_dir / "pseudo",
                settings,
                thresholds,
                self.spec.names,
                advance,
                reviewer,
            )
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
        self._mark(steps, "label", stats.to_dict())
        return stats

    def _fit_fixmatch_head(self, detector: Any, settings: LabelSettings, band_low: float, round_dir: Path) -> Any:
        """Train this round's FixMatch head: labeled crops from the true boxes, unlabeled ones from the
        detector's candidates on the pool (at most MAX_UNLABELED_CROPS, spread over the pool)."""
        from yolossl.fixmatch import FixMatchConfig, extract_crops, fit_head, labeled_box_crops
        from yolossl.fixmatch.head import HeadReviewer

        c = self.config
        labeled, labels = labeled_box_crops(self.labeled, len(self.spec.names), seed=c.seed)
        step = max(1, len(self.pool.images) // MAX_UNLABELED_IMAGES)
        crops = [
            extract_crops(frame.image, frame.detections.select(frame.detections.scores >= band_low).xyxy)
            for frame in detector.run(self.pool.images[::step], settings.batch, keep_images=True)
            if frame.detections is not None
        ]
        unlabeled = np.concatenate(crops) if crops else None
        if unlabeled is not None and len(unlabeled) > MAX_UNLABELED_CROPS:
            unlabeled = unlabeled[np.random.default_rng(c.seed).choice(len(unlabeled), MAX_UNLABELED_CROPS, False)]
        logger.info(
            "FixMatch head: %d labeled crops, %d unlabeled crops, %d steps",
            len(labeled),
            0 if unlabeled is None else len(unlabeled),
            c.fixmatch_steps,
        )
        device = self.device.split(",")[0]
        head, _ = fit_head(
            labeled,
            labels,
            unlabeled,
            self.spec.names,
            FixMatchConfig(steps=c.fixmatch_steps, tau=c.fixmatch_tau, seed=c.seed, device=device),
        )
        head.save(round_dir / "fixmatch_head.pt")
        return HeadReviewer(head, c.fixmatch_mode, c.fixmatch_min_conf)

    def _label_settings(self) -> LabelSettings:
        c = self.config
        return LabelSettings(
            conf=c.conf,
            target_precision=c.target_precision,
            uncertain=c.uncertain,
            uncertain_low=c.uncertain_low,
            imgsz=c.imgsz,
            batch=c.batch,
            device=self.device.split(",")[0],
            backend=c.backend,
            tta=c.tta,
            engine=c.engine,
            ray_address=c.ray_address,
        )

    def _mark(self, steps: dict[str, Any], step: str, value: Any) -> None:
        steps[step] = value
        self._save_state()

    def _save_state(self) -> None:
        write_text_atomic(self.run_dir / STATE_FILE, json.dumps(self.state, indent=2))

    def _write_summary(self, rounds: list[RoundResult]) -> None:
        write_text_atomic(self.run_dir / SUMMARY_FILE, summary_csv(rounds, list(self.spec.names.values())))


def _load_state(run_dir: Path) -> dict[str, Any]:
    path = run_dir / STATE_FILE
    if not path.is_file():
        return {"version": 1, "rounds": {}}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise YolosslError(f"{path}: state file is corrupt ({e.msg}); start a new run") from e


def summary_rows(rounds: list[RoundResult], class_names: list[str]) -> list[dict[str, Any]]:
    """One row per round: the columns of summary.csv and of the printed table."""
    return [
        {
            "round": r.index,
            "images_used": r.images_used,
            "labeled_images": r.labeled_images,
            "pseudo_images": r.pseudo_images,
            "pseudo_boxes": r.pseudo_boxes,
            **{f"boxes_{name}": r.pseudo_boxes_per_class.get(name, 0) for name in class_names},
            "uncertain_boxes": r.uncertain_boxes,
            "masked_images": r.masked_images,
            "map50": round(r.metrics.map50, 4),
            "map50_95": round(r.metrics.map50_95, 4),
            "precision": round(r.metrics.precision, 4),
            "recall": round(r.metrics.recall, 4),
            "skipped_images": r.skipped_images,
            "wall_time_s": r.wall_time_s,
            "accepted": r.accepted,
        }
        for r in rounds
    ]


def labeled_repeat(setting: int | None, n_labeled: int, n_pseudo: int) -> int:
    """How many times each labeled image appears in a round's dataset.

    `None` (auto): enough that the human labels are at least a third of the images the round trains
    on, so that pseudo-labels cannot drown them; an integer is used as given.
    """
    if setting is not None:
        return setting
    if not n_labeled or not n_pseudo:
        return 1
    return max(1, math.ceil(n_pseudo / (2 * n_labeled)))


def summary_csv(rounds: list[RoundResult], class_names: list[str]) -> str:
    rows = summary_rows(rounds, class_names)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else ["round"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
