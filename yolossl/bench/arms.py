"""Each arm as it trains: the cycles (round 0, docs, yolossl, online) and the matched labeled-only and oracle runs.

An arm chooses on val as its method says (round guard, thresholds, kept-if-above-round-0) and is then scored
on the test split: `ArmResult.map50_95` is test's, `val_map50_95` the figure it chose with.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from yolossl.bench.splits import Split, TestSplit
from yolossl.config import CycleConfig
from yolossl.cycle import CycleResult, RoundResult
from yolossl.cycle.state import RunState
from yolossl.data import ImageItem, load_data_yaml, read_yolo_labels
from yolossl.errors import YolosslError
from yolossl.label.record import RECORD_FILE, RecordRow, iter_record
from yolossl.merge import build_round_dataset, mirror_split
from yolossl.quality import label_quality
from yolossl.runtime import resolve_device
from yolossl.train import Metrics, TrainResult, train_detector, validate_detector
from yolossl.train.saturation import read_saturation

logger = logging.getLogger(__name__)


@dataclass
class ArmResult:
    """One arm on one split seed and training seed: its chosen model on test (and on val, which chose it)."""

    arm: str
    seed: int
    map50: float
    """Test mAP50 of the arm's chosen model (val's on benches from before the test split)."""
    map50_95: float
    """Test mAP50-95 of the arm's chosen model: the figure every summary reports."""
    best_round: int
    rounds_map50_95: list[float]
    """Val mAP50-95 per round (the saturated arm: each validation of its saturation run): what the choice saw."""
    pseudo_precision: list[float] = field(default_factory=list)
    pseudo_recall: list[float] = field(default_factory=list)
    wall_time_s: float = 0.0
    saturated: bool | None = None
    """Saturated arm: whether round 0's labels saturated before its epoch cap (None: not trained to saturation)."""
    train_seed: int = 0
    """The replicate: 0 is the split seed's own training seed, k adds 1000 k."""
    val_map50_95: float | None = None
    epochs: int = 0
    """Matched arms: the epochs trained beyond round 0."""


@dataclass(frozen=True)
class ArmContext:
    """What every arm of one split seed and replicate shares."""

    seed: int
    train_seed: int
    split: Split
    test: TestSplit
    round0: CycleResult
    round0_time: float
    arm_dir: Path
    """Where this replicate's arms write: the seed's folder (replicate 0) or `train_seed_K/` in it."""


def scored(metrics: Metrics | None, arm: str) -> Metrics:
    if metrics is None:  # every bench split names a test split; a cycle without one is a bench bug
        raise YolosslError(f"the {arm} arm's model was not scored on the test split")
    return metrics


def cycle_arm(arm: str, ctx: ArmContext, cycle: CycleResult, wall: float) -> ArmResult:
    """A cycle's result: the round its guard chose on val, scored on test; the pool labels' quality per round."""
    best = cycle.best
    test = scored(best.test, arm)
    precision, recall = [], []
    for r in cycle.rounds[1:]:
        q = pseudo_quality(cycle.run_dir / f"round_{r.index}" / "pseudo", ctx.split.truth)
        precision.append(q[0])
        recall.append(q[1])
    return ArmResult(
        arm=arm,
        seed=ctx.seed,
        map50=test.map50,
        map50_95=test.map50_95,
        best_round=best.index,
        rounds_map50_95=[r.metrics.map50_95 for r in cycle.rounds],
        pseudo_precision=precision,
        pseudo_recall=recall,
        wall_time_s=wall,
        train_seed=ctx.train_seed,
        val_map50_95=best.metrics.map50_95,
    )


def online_config(
    base: CycleConfig,
    budget: list[int] | None,
    n_labeled: int,
    share: float = 1.0,
    online_only: dict[str, Any] | None = None,
) -> CycleConfig:
    """The online teacher (the default cycle), validated only at its rounds' ends and fitted EMA as always.

    `budget`: the yolossl arm's images seen per round; the online arm then runs `share` of its optimizer steps
    (each step takes one labeled batch plus an unlabeled one, so as many epochs over the labeled images as the
    yolossl arm saw images per labeled one). None: the online cycle's own default length. `online_only`: options that
    exist only in mode online (`BenchConfig.online_only_options`)."""
    epochs = None
    if budget is not None:
        repeat = base.labeled_repeat or 1  # the online run's labeled images, as its merge repeats them
        epochs = max(1, math.ceil(sum(budget) * share / max(1, n_labeled * repeat)))
    online = {"mode": "online", "online_epochs": epochs, "name": "online", "ema": "fitted", "online_val": False}
    return replace(base, **online, **(online_only or {}))


def offline_budget(rounds: list[RoundResult]) -> list[int]:
    """The yolossl arm's images seen per round after round 0 (labeled images counted each time they repeat)."""
    return [r.train_images * r.epochs for r in rounds[1:]]


def online_budget(rounds: list[RoundResult]) -> list[int]:
    """The online arm's labeled images seen per round: its optimizer steps, in a labeled-only run's units."""
    return [r.labeled_images * r.labeled_repeat * r.epochs for r in rounds[1:]]


def earlier_budget(config: Any, seed: int) -> list[int] | None:
    """The yolossl arm's budget in the `budget_from` (or `round0_from`) run, if it ran there: ablations and extra
    arms match it."""
    earlier = config.budget_from or config.round0_from
    if not earlier:
        return None
    run = Path(earlier) / f"seed_{seed}" / "yolossl"
    if not (run / "state.json").is_file():
        return None
    state = RunState(run)
    rounds = []
    while (done := state.result(len(rounds))) is not None:
        rounds.append(RoundResult.from_dict(done))
    return offline_budget(rounds)


def reused_round0(config: Any, seed: int) -> str | None:
    if not config.round0_from:
        return None
    weights = Path(config.round0_from) / f"seed_{seed}" / "round0" / "weights" / "best.pt"
    if not weights.is_file():
        raise YolosslError(f"{weights}: no round-0 model of seed {seed} to reuse")
    return str(weights)


def matched_arm(
    arm: str, ctx: ArmContext, base: CycleConfig, budget: list[int], epochs: int | None = None
) -> tuple[ArmResult, TrainResult | None]:
    """Labeled-only (supervised, supervised-wall) or all-labels (oracle) training for the budget's steps (or
    `epochs`), in one run from round 0, validated once at its end; kept when it ends above round 0 on val."""
    start = time.perf_counter()
    round0 = ctx.round0.rounds[0]
    out = ctx.arm_dir / arm
    if arm == "oracle":
        data_yaml, n_images = _oracle_data(ctx.split, out)
    else:
        data_yaml, n_images = round0.data_yaml, len(ctx.split.labeled)
    # The SSL arms' round schedule, and Ultralytics' own loss: these arms' labels are all human. One run for all
    # the rounds: with no pseudo-labels to refresh, rounds would only restart the EMA.
    nc = len(load_data_yaml(ctx.split.labeled_yaml).names)
    # The wall-matched labels alone train as a user who trains longer does: Ultralytics' own warm-up and decay
    # (from a saturated round 0, the decay is what the constant rate has not tried); the others on the rounds' rate.
    schedule = "fresh" if arm == "supervised-wall" else base.round_schedule
    settings = replace(base, round_schedule=schedule).round_settings(resolve_device(base.device), nc)
    settings = replace(settings, loss="ultralytics")
    if epochs is None:
        epochs = math.ceil(sum(budget) / n_images) if sum(budget) else 0
    if not epochs:  # the arm it is matched to trained no round: neither does this one
        return _round0_kept(arm, ctx, 0), None
    trained = train_detector(str(round0.weights), data_yaml, out / "run", replace(settings, epochs=epochs))
    logger.info(
        "%s seed %d/%d: %d epochs -> val mAP50-95 %.4f", arm, ctx.seed, ctx.train_seed, epochs, trained.metrics.map50_95
    )
    curve = [round0.metrics.map50_95, trained.metrics.map50_95]
    if trained.metrics.map50_95 < round0.metrics.map50_95:  # chosen on val, as the round guard would
        kept = _round0_kept(arm, ctx, epochs)
        kept.rounds_map50_95, kept.wall_time_s = curve, time.perf_counter() - start + ctx.round0_time
        return kept, trained
    test = validate_detector(trained.weights, ctx.test.data_yaml, settings)
    result = ArmResult(
        arm=arm,
        seed=ctx.seed,
        map50=test.map50,
        map50_95=test.map50_95,
        best_round=1,
        rounds_map50_95=curve,
        wall_time_s=time.perf_counter() - start + ctx.round0_time,
        train_seed=ctx.train_seed,
        val_map50_95=trained.metrics.map50_95,
        epochs=epochs,
    )
    return result, trained


def _round0_kept(arm: str, ctx: ArmContext, epochs: int) -> ArmResult:
    round0 = ctx.round0.rounds[0]
    test = scored(round0.test, arm)
    return ArmResult(
        arm=arm,
        seed=ctx.seed,
        map50=test.map50,
        map50_95=test.map50_95,
        best_round=0,
        rounds_map50_95=[round0.metrics.map50_95],
        wall_time_s=ctx.round0_time,
        train_seed=ctx.train_seed,
        val_map50_95=round0.metrics.map50_95,
        epochs=epochs,
    )


def _oracle_data(split: Split, out: Path) -> tuple[Path, int]:
    """The labeled images plus the pool with its hidden labels restored (the val of the split, mirrored)."""
    labeled_spec = load_data_yaml(split.labeled_yaml)
    val_images = mirror_split(labeled_spec.val_items(), out / "val", len(labeled_spec.names))
    truth_items = []
    for h in split.hidden:
        label = split.truth / f"{h.id}.txt"
        truth_items.append(ImageItem(h.id, h.path, label if label.is_file() else None))
    built = build_round_dataset(out / "data", split.labeled, truth_items, val_images, labeled_spec.names)
    return built.data_yaml, built.labeled_images + built.pseudo_images


def wall_matched_epochs(supervised: TrainResult | None, supervised_epochs: int, online_seconds: float) -> int:
    """The labeled-only epochs that fit the online arm's time, at the supervised arm's measured seconds per epoch."""
    if supervised is None or not supervised_epochs or supervised.wall_time_s <= 0:
        return supervised_epochs
    return max(1, math.ceil(supervised_epochs * online_seconds / supervised.wall_time_s))


def saturated_arm(ctx: ArmContext, record: Path) -> ArmResult:
    """Round 0 itself: the labels alone trained until saturated (its `record`), scored on test once per split seed;
    `saturated` False when it reached its epoch cap still rising (every figure set against it says so)."""
    r = ctx.round0.rounds[0]
    test = scored(r.test, "saturated")
    saturation = read_saturation(record)
    return ArmResult(
        "saturated",
        ctx.seed,
        test.map50,
        test.map50_95,
        0,
        [score for _, score in saturation["curve"]] if saturation else [r.metrics.map50_95],
        wall_time_s=ctx.round0_time,
        saturated=saturation["saturated"] if saturation else None,
        val_map50_95=r.metrics.map50_95,
        epochs=r.epochs,
    )


def pseudo_quality(pseudo_dir: Path, truth: Path) -> tuple[float, float]:
    """Precision and recall of a round's kept pseudo boxes against the hidden labels (IoU >= 0.5, same class)."""
    predictions: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    rows: dict[str, list[RecordRow]] = {}
    for row in iter_record(pseudo_dir / RECORD_FILE):
        if row.status == "kept":
            rows.setdefault(Path(row.image).stem, []).append(row)
    for stem, boxes in rows.items():
        cls = np.array([b.class_id for b in boxes])
        scores = np.array([b.score for b in boxes])
        xywhn = np.array([b.xywhn for b in boxes])
        predictions[stem] = (cls, scores, xywhn)
    truth_labels = {p.stem: read_yolo_labels(p) for p in truth.glob("*.txt")}
    q = label_quality(predictions, truth_labels)
    return q.precision, q.recall


def show_ceiling(run_dir: Path, oracle: ArmResult) -> None:
    """Give the yolossl arm's report the oracle's line: its ceiling on the same splits and budget."""
    from yolossl.report import ORACLE_FILE, write_report

    (run_dir / ORACLE_FILE).write_text(json.dumps({"map50": oracle.map50, "map50_95": oracle.map50_95}))
    write_report(run_dir)
