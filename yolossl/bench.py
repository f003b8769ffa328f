"""`yolossl bench`: will SSL help on my data? Six arms on identical splits, seeds and training budget.

Baselines: `converged` is round 0 itself, labeled-only and (with `round0_cycles` > 1) trained in
learning-rate cycles until one more gains < 0.005, or continued for up to `converge_cycles` more
cycles when it was not seen to converge: how far labels alone go, so `oracle - converged` says whether
the bench is label-bound. `supervised` continues it on the labels for the yolossl
arm's images seen, in one run on the same round schedule: the baseline that decides (`gap_recovered`).

Per seed, the training images are split into a labeled fraction and a pool whose labels are
hidden (or an explicit labeled / unlabeled / truth split is used). One supervised round 0 is
trained on the labeled images and shared by every arm, then each arm trains the same number of
optimizer steps beyond it:

- converged: round 0 (the labeled-only model every arm starts from), or round 0 continued to convergence;
- supervised: more training on the labeled images alone, as many steps as the yolossl arm took;
- docs: the docs' workflow, predict(conf=0.85) -> merge (empty images as background) -> retrain;
- yolossl: the offline rounds (`--mode offline`, with the options given), whose steps every matched arm takes;
- online: the default cycle (`--mode online`: an EMA teacher inside one run) with the same options, at those steps;
- oracle: the hidden labels restored, as many steps again: the ceiling.

Every arm keeps its best round on val, round 0 included (the round guard; supervised and oracle train one
run, kept when it ends above round 0).
Gap recovered = (arm - supervised) / (oracle - supervised), on val mAP50-95.

Why one module of ~400 lines: the splits, the arms and the summary share one run's seeds and
folders; the cycle itself (most of each arm) lives in `cycle/`.

    >>> result = run_bench(BenchConfig(data="data.yaml", label_fraction=0.1, seeds=3))
"""

from __future__ import annotations

import csv
import json
import logging
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from yolossl.boxes import yolo_label_text
from yolossl.config import CycleConfig, conf_alone_means_one_threshold, pseudo_aware_means_ignore_regions
from yolossl.cycle import CycleResult, RoundResult, run_cycle
from yolossl.cycle.loop import ROUND0_CYCLES_FILE
from yolossl.cycle.state import RunState, new_run_dir
from yolossl.data import ImageItem, load_data_yaml, read_yolo_labels, scan_image_folders
from yolossl.errors import YolosslError
from yolossl.label.record import RECORD_FILE, RecordRow, iter_record
from yolossl.labels import clean_label_file
from yolossl.merge import build_round_dataset, mirror_split
from yolossl.quality import label_quality
from yolossl.runtime import resolve_device
from yolossl.train import train_detector

logger = logging.getLogger(__name__)

ARMS = ("converged", "supervised", "docs", "yolossl", "online", "oracle")
_NEED_BUDGET = {"supervised", "oracle", "online"}
BASELINES = {
    "supervised": "labeled-only, continued from round 0 in one run of exactly the yolossl arm's images seen; "
    "gap_recovered uses it",
    "converged": "labeled-only round 0 itself, trained in learning-rate cycles until one gained < 0.005 mAP50-95 "
    "(with round0_cycles > 1); gap_recovered_vs_converged uses it; oracle - converged: how label-bound the bench is",
}
MATCHED_ARMS = "one run from round 0 for all the yolossl arm's images seen"  # in bench.json; before, per round
DOCS_WORKFLOW = {"conf": 0.85, "target_precision": None, "uncertain": "keep", "keep_empty": True, "labeled_repeat": 1}


@dataclass
class BenchConfig:
    """What to compare and how long to train; `cycle` holds the yolossl arm's options (CycleConfig names)."""

    data: str
    label_fraction: float | None = 0.1
    unlabeled: list[str] = field(default_factory=list)
    unlabeled_truth: str | None = None
    rounds: int = 3
    seeds: int = 3
    first_seed: int = 0
    """Seeds run are first_seed, first_seed + 1, ...: one more seed of an earlier bench in a run of its own."""
    arms: tuple[str, ...] = ARMS
    training: dict[str, Any] = field(default_factory=dict)
    """Shared by every arm: model, epochs, round_epochs, imgsz, batch, device, workers, train_args."""
    cycle: dict[str, Any] = field(default_factory=dict)
    project: str = "runs/bench"
    name: str | None = None
    round0_from: str | None = None
    """An earlier bench run with the same data, fraction and seeds: reuse its round-0 models (ablations)."""
    converge_cycles: int = 0
    """The converged arm: up to this many more learning-rate cycles after a round 0 not seen to converge."""
    budget_from: str | None = None
    """An earlier bench run whose yolossl arm sets the steps of the matched and online arms (default: round0_from)."""
    online_steps: float = 1.0
    """The online arm's optimizer steps as a share of the yolossl arm's (below 1: to match its wall time)."""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.arms) - set(ARMS))
        if unknown:
            raise YolosslError(f"unknown arm(s) {unknown}; choose from {list(ARMS)}")
        if self.unlabeled and not self.unlabeled_truth:
            raise YolosslError("--unlabeled needs --unlabeled-truth LABELS_DIR to score the arms against")
        if not self.unlabeled and not (self.label_fraction and 0.0 < self.label_fraction < 1.0):
            raise YolosslError(f"--label-fraction must be in (0, 1), got {self.label_fraction}")
        if self.seeds < 1 or self.rounds < 1:
            raise YolosslError("--seeds and --rounds must be >= 1")
        if not self.online_steps > 0:
            raise YolosslError(f"--online-steps must be > 0, got {self.online_steps}")
        if "mode" in self.cycle:
            raise YolosslError("the bench runs the yolossl arm offline and the online arm online: drop 'mode'")
        if self.converge_cycles < 0:
            raise YolosslError(f"--converge-cycles must be >= 0, got {self.converge_cycles}")
        # The arms' options are checked now, not after the first seed's split and round 0.
        given = pseudo_aware_means_ignore_regions(conf_alone_means_one_threshold(self.cycle))
        offline = CycleConfig(**{**self.training, **given, "mode": "offline"})
        if "online" in self.arms:
            try:
                _online_config(offline, [], 1)
            except YolosslError as e:
                raise YolosslError(f"the online arm cannot take these options ({e}); leave online out of --arms") from e


@dataclass
class ArmResult:
    """One arm on one seed: the best round's val metrics, the pseudo-label quality per round, the time."""

    arm: str
    seed: int
    map50: float
    map50_95: float
    best_round: int
    rounds_map50_95: list[float]
    pseudo_precision: list[float] = field(default_factory=list)
    pseudo_recall: list[float] = field(default_factory=list)
    wall_time_s: float = 0.0
    converged: bool | None = None
    """Converged arm: whether round 0's last learning-rate cycle gained < 0.005 (None: a single cycle, unknown)."""


@dataclass
class BenchResult:
    run_dir: Path
    arms: list[ArmResult]
    round0_curve: dict[int, list[float]]  # seed -> val mAP50-95 per round-0 epoch

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per arm: mean and std over seeds, per-seed values, pseudo-label quality, gap recovered."""
        out: dict[str, dict[str, Any]] = {}
        by_arm: dict[str, list[ArmResult]] = {}
        for r in self.arms:
            by_arm.setdefault(r.arm, []).append(r)
        for arm, results in by_arm.items():
            maps = [r.map50_95 for r in results]
            map50s = [r.map50 for r in results]
            out[arm] = {
                "map50_mean": statistics.fmean(map50s),
                "map50_std": statistics.pstdev(map50s),
                "map50_95_mean": statistics.fmean(maps),
                "map50_95_std": statistics.pstdev(maps),
                "per_seed_map50": map50s,
                "per_seed_map50_95": maps,
                "best_round": [r.best_round for r in results],
                "pseudo_precision": [r.pseudo_precision for r in results],
                "pseudo_recall": [r.pseudo_recall for r in results],
                "wall_time_s": sum(r.wall_time_s for r in results),
            }
            if arm == "converged":
                out[arm]["converged_per_seed"] = [r.converged for r in results]
        for baseline, key in (("supervised", "gap_recovered"), ("converged", "gap_recovered_vs_converged")):
            if baseline in out and "oracle" in out:
                for values in out.values():
                    values[key] = _gap(values["per_seed_map50_95"], out, baseline)
                    values[f"{key}_per_seed"] = [
                        _gap_one(a, b, o)
                        for a, b, o in zip(
                            values["per_seed_map50_95"],
                            out[baseline]["per_seed_map50_95"],
                            out["oracle"]["per_seed_map50_95"],
                            strict=True,
                        )
                    ]
        return out


def _gap(values: list[float], out: dict[str, dict[str, Any]], baseline: str) -> float | None:
    return _gap_one(statistics.fmean(values), out[baseline]["map50_95_mean"], out["oracle"]["map50_95_mean"])


def _gap_one(arm: float, supervised: float, oracle: float) -> float | None:
    return (arm - supervised) / (oracle - supervised) if oracle > supervised else None


@dataclass(frozen=True)
class _Split:
    """One seed's data: where the labeled YAML, the pool, the truth and the oracle's items are."""

    labeled_yaml: Path
    pool: Path
    truth: Path
    labeled: list[ImageItem]
    hidden: list[ImageItem]  # pool images paired with their true labels (for the oracle)


def run_bench(config: BenchConfig, on_arm: Callable[[str, int], None] | None = None) -> BenchResult:
    """Run every arm on every seed under `project/name`; write bench.json, bench.md and the table rows."""
    project = Path(config.project)
    run_dir = new_run_dir(project, config.name, prefix="bench")
    spec = load_data_yaml(config.data)
    run_dir.mkdir(parents=True)
    (run_dir / "bench_config.json").write_text(json.dumps(asdict(config), indent=2, default=str))
    results: list[ArmResult] = []
    curves: dict[int, list[float]] = {}
    for seed in range(config.first_seed, config.first_seed + config.seeds):
        seed_dir = run_dir / f"seed_{seed}"
        split = _make_split(config, spec, seed, seed_dir / "split")
        if on_arm:
            on_arm("round 0", seed)
        base = _base_cycle(config, seed, split, seed_dir)
        start = time.perf_counter()
        reused = _reused_round0(config, seed)
        adopt_only = {"round0_cycles": 1} if reused else {}  # a reused round 0 is validated, not trained further
        round0 = run_cycle(replace(base, rounds=0, name="round0", start_weights=reused, **adopt_only))
        round0_time = time.perf_counter() - start
        curves[seed] = _round0_curve(round0)
        if "converged" in config.arms:
            results.append(_converged_arm(config, seed, base, round0, round0_time, on_arm))
        base = replace(base, round0_cycles=1)  # every arm starts from round 0's weights, adopted, not trained on
        r0_weights = str(round0.rounds[0].weights)
        cycles: dict[str, CycleResult] = {}
        given = pseudo_aware_means_ignore_regions(conf_alone_means_one_threshold(config.cycle))
        yolossl_config = CycleConfig(**{**asdict(base), **given, "name": "yolossl", "start_weights": r0_weights})
        earlier_budget = _earlier_budget(config, seed)
        for arm in ("yolossl", "docs"):
            needed_for_budget = arm == "yolossl" and _NEED_BUDGET & set(config.arms) and earlier_budget is None
            if arm in config.arms or needed_for_budget:
                if on_arm:
                    on_arm(arm, seed)
                arm_config = yolossl_config
                if arm == "docs":  # the docs' workflow, trained on the yolossl arm's round schedule
                    schedule = {k: getattr(yolossl_config, k) for k in ("round_schedule", "round_lr_scale")}
                    arm_config = replace(base, **DOCS_WORKFLOW, **schedule, name="docs", start_weights=r0_weights)
                start = time.perf_counter()
                cycles[arm] = run_cycle(arm_config)
                wall = time.perf_counter() - start + round0_time
                if arm in config.arms:
                    results.append(_cycle_arm(arm, seed, cycles[arm], split.truth, wall))
        budget = _budget(cycles["yolossl"].rounds) if "yolossl" in cycles else earlier_budget or []
        if "online" in config.arms:
            if on_arm:
                on_arm("online", seed)
            start = time.perf_counter()
            online = run_cycle(_online_config(yolossl_config, budget, len(split.labeled), config.online_steps))
            results.append(_cycle_arm("online", seed, online, split.truth, time.perf_counter() - start + round0_time))
        for arm in ("supervised", "oracle"):
            if arm in config.arms:
                if on_arm:
                    on_arm(arm, seed)
                results.append(_matched_arm(arm, seed, yolossl_config, round0, split, budget, seed_dir, round0_time))
                if arm == "oracle" and "yolossl" in cycles:
                    _show_ceiling(cycles["yolossl"].run_dir, results[-1])
        _write(run_dir, BenchResult(run_dir, results, curves))
    result = BenchResult(run_dir, results, curves)
    _write(run_dir, result)
    return result


def _budget(rounds: list[Any]) -> list[int]:
    """Images seen per round after round 0 (labeled images counted each time they repeat)."""
    return [r.train_images * r.epochs for r in rounds[1:]]


def _earlier_budget(config: BenchConfig, seed: int) -> list[int] | None:
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
    return _budget(rounds)


def _online_config(yolossl_config: CycleConfig, budget: list[int], n_labeled: int, share: float = 1.0) -> CycleConfig:
    """The online teacher at `share` of the yolossl arm's optimizer steps: each of its steps takes one labeled batch
    (plus an unlabeled one), so it runs as many epochs over the labeled images as the yolossl arm saw images per
    labeled one. Its teacher is the trainer's EMA, always fitted to the run."""
    repeat = yolossl_config.labeled_repeat or 1  # the online run's labeled images, as its merge repeats them
    epochs = max(1, math.ceil(sum(budget) * share / max(1, n_labeled * repeat)))
    validated = yolossl_config.train_args.get("val", True)  # as the other arms are (Ultralytics: every epoch)
    return replace(
        yolossl_config, mode="online", online_epochs=epochs, name="online", ema="fitted", online_val=validated
    )


def _reused_round0(config: BenchConfig, seed: int) -> str | None:
    if not config.round0_from:
        return None
    weights = Path(config.round0_from) / f"seed_{seed}" / "round0" / "weights" / "best.pt"
    if not weights.is_file():
        raise YolosslError(f"{weights}: no round-0 model of seed {seed} to reuse")
    return str(weights)


def _base_cycle(config: BenchConfig, seed: int, split: _Split, seed_dir: Path) -> CycleConfig:
    return CycleConfig(
        **{
            **config.training,
            "data": str(split.labeled_yaml),
            "unlabeled": [str(split.pool)],
            "rounds": config.rounds,
            "mode": "offline",  # round 0, the docs' workflow and the yolossl arm; the online arm is set apart
            "seed": seed,
            "project": str(seed_dir),
        }
    )


def _make_split(config: BenchConfig, spec: Any, seed: int, out: Path) -> _Split:
    """Hide the labels of all but a fraction of the training images (or take the explicit split)."""
    out.mkdir(parents=True)
    pool, truth = out / "pool", out / "truth"
    pool.mkdir()
    truth.mkdir()
    items = spec.train_items()
    if config.unlabeled:
        labeled = items
        hidden = []
        for item in scan_image_folders(config.unlabeled).images:
            label = Path(config.unlabeled_truth) / f"{item.path.stem}.txt"
            hidden.append(ImageItem(item.id, item.path, label if label.is_file() else None))
    else:
        order = np.random.default_rng(seed).permutation(len(items))
        n_labeled = max(1, round(config.label_fraction * len(items)))
        labeled = [items[i] for i in sorted(order[:n_labeled])]
        hidden = [items[i] for i in sorted(order[n_labeled:])]
    for item in hidden:
        # A flat folder of links: no labels/ beside it, so nothing can find the hidden labels.
        (pool / f"{item.id}{item.path.suffix}").symlink_to(item.path.resolve())
        if item.label is not None:  # cleaned, as training reads labels: one bad line can't end the bench
            rows = clean_label_file(item.label, len(spec.names)).rows
            (truth / f"{item.id}.txt").write_text(yolo_label_text(rows[:, 0], rows[:, 1:5]), encoding="utf-8")
    (out / "labeled.txt").write_text("".join(f"{item.path.resolve()}\n" for item in labeled))
    meta = {"train": str((out / "labeled.txt").resolve()), "val": [str(p) for p in spec.val], "names": spec.names}
    labeled_yaml = out / "labeled.yaml"
    labeled_yaml.write_text(yaml.safe_dump(meta, sort_keys=False))
    return _Split(labeled_yaml, pool, truth, labeled, hidden)


def _round0_curve(round0: CycleResult) -> list[float]:
    results = round0.rounds[0].weights.parents[1] / "results.csv"
    if not results.is_file():
        return []
    with results.open() as f:
        return [float(row["metrics/mAP50-95(B)"]) for row in csv.DictReader(_stripped(f))]


def _stripped(lines: Any) -> Any:
    for line in lines:
        yield ",".join(part.strip() for part in line.split(","))


def _cycle_arm(arm: str, seed: int, cycle: CycleResult, truth: Path, wall: float) -> ArmResult:
    best = cycle.best
    precision, recall = [], []
    for r in cycle.rounds[1:]:
        q = _pseudo_quality(cycle.run_dir / f"round_{r.index}" / "pseudo", truth)
        precision.append(q[0])
        recall.append(q[1])
    return ArmResult(
        arm=arm,
        seed=seed,
        map50=best.metrics.map50,
        map50_95=best.metrics.map50_95,
        best_round=best.index,
        rounds_map50_95=[r.metrics.map50_95 for r in cycle.rounds],
        pseudo_precision=precision,
        pseudo_recall=recall,
        wall_time_s=wall,
    )


def _converged_arm(
    config: BenchConfig,
    seed: int,
    base: CycleConfig,
    round0: CycleResult,
    wall: float,
    on_arm: Callable[[str, int], None] | None,
) -> ArmResult:
    """Labeled-only trained until one more learning-rate cycle gains < 0.005: round 0 itself when it got there,
    else (still gaining, or a single cycle that shows nothing) round 0 continued for up to `converge_cycles` more
    cycles; the other arms still start from round 0."""
    reused = Path(config.round0_from) / f"seed_{seed}" / "round0" if config.round0_from else None
    cycles = _round0_cycles(reused or round0.run_dir)
    if not cycles["cycles"]:  # an adopted round 0 has no record of its own: its validation is its one point
        cycles = {
            "cycles": [{"epochs": 0, "map50_95": round0.rounds[0].metrics.map50_95, "gain": None}],
            "converged": None,
        }
    if not config.converge_cycles or cycles["converged"]:
        return _round0_arm(seed, round0, cycles, wall)
    if on_arm:
        on_arm("converged", seed)
    start = time.perf_counter()
    weights = str(round0.rounds[0].weights)
    more = run_cycle(
        replace(base, rounds=0, name="converged", start_weights=weights, round0_cycles=1 + config.converge_cycles)
    )
    extra = _round0_cycles(more.run_dir)
    joined = {"cycles": cycles["cycles"] + extra["cycles"][1:], "converged": extra["converged"]}
    return _round0_arm(seed, more, joined, wall + time.perf_counter() - start)


def _round0_cycles(run_dir: Path) -> dict[str, Any]:
    record = run_dir / "round_0" / ROUND0_CYCLES_FILE
    if record.is_file():
        return json.loads(record.read_text())
    return {"cycles": [], "converged": None}


def _round0_arm(seed: int, round0: CycleResult, cycles: dict[str, Any], wall: float) -> ArmResult:
    """A labeled-only model as the converged baseline; its rounds are its learning-rate cycles."""
    m = round0.rounds[0].metrics
    curve = [c["map50_95"] for c in cycles["cycles"]] or [m.map50_95]
    return ArmResult("converged", seed, m.map50, m.map50_95, 0, curve, wall_time_s=wall, converged=cycles["converged"])


def _pseudo_quality(pseudo_dir: Path, truth: Path) -> tuple[float, float]:
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


def _matched_arm(
    arm: str,
    seed: int,
    base: CycleConfig,
    round0: CycleResult,
    split: _Split,
    budget: list[int],
    seed_dir: Path,
    round0_time: float,
) -> ArmResult:
    """Labeled-only (supervised) or all-labels (oracle) training for the yolossl arm's steps, in one run from round 0
    (kept when the run ends below it)."""
    start = time.perf_counter()
    arm_dir = seed_dir / arm
    if arm == "supervised":
        data_yaml, n_images = round0.rounds[0].data_yaml, len(split.labeled)
    else:
        labeled_spec = load_data_yaml(split.labeled_yaml)
        names = labeled_spec.names
        val_images = mirror_split(labeled_spec.val_items(), arm_dir / "val", len(names))
        truth_items = []
        for h in split.hidden:
            label = split.truth / f"{h.id}.txt"
            truth_items.append(ImageItem(h.id, h.path, label if label.is_file() else None))
        built = build_round_dataset(arm_dir / "data", split.labeled, truth_items, val_images, names)
        data_yaml, n_images = built.data_yaml, built.labeled_images + built.pseudo_images
    # The yolossl arm's round schedule, and Ultralytics' own loss: these arms' labels are all human.
    nc = len(load_data_yaml(split.labeled_yaml).names)
    settings = replace(base.round_settings(resolve_device(base.device), nc), loss="ultralytics")
    # One run for all the yolossl arm's rounds: with no pseudo-labels to refresh, rounds would only restart the
    # EMA, and a first round below round 0 would restart the next from the same weights (the guard) and repeat it.
    start_metrics = round0.rounds[0].metrics
    if not sum(budget):  # the yolossl arm trained no round: neither does this one
        m = start_metrics
        return ArmResult(arm, seed, m.map50, m.map50_95, 0, [m.map50_95], wall_time_s=round0_time)
    epochs = math.ceil(sum(budget) / n_images)
    weights = str(round0.rounds[0].weights)
    trained = train_detector(weights, data_yaml, arm_dir / "run", replace(settings, epochs=epochs))
    logger.info("%s seed %d: %d epochs -> mAP50-95 %.4f", arm, seed, epochs, trained.metrics.map50_95)
    gained = trained.metrics.map50_95 >= start_metrics.map50_95
    best_index, best = (1, trained.metrics) if gained else (0, start_metrics)
    return ArmResult(
        arm=arm,
        seed=seed,
        map50=best.map50,
        map50_95=best.map50_95,
        best_round=best_index,
        rounds_map50_95=[start_metrics.map50_95, trained.metrics.map50_95],
        wall_time_s=time.perf_counter() - start + round0_time,
    )


def _show_ceiling(run_dir: Path, oracle: ArmResult) -> None:
    """Give the yolossl arm's report the oracle's line: its ceiling on the same splits and budget."""
    from yolossl.report import ORACLE_FILE, write_report

    (run_dir / ORACLE_FILE).write_text(json.dumps({"map50": oracle.map50, "map50_95": oracle.map50_95}))
    write_report(run_dir)


def _write(run_dir: Path, result: BenchResult) -> None:
    summary = result.summary()
    payload = {
        "baselines": {arm: text for arm, text in BASELINES.items() if arm in summary},
        "label_bound_gap": _label_bound_gap(summary),
        "matched_arms": MATCHED_ARMS,
        "arms": summary,
        "per_seed": [asdict(r) for r in result.arms],
        "round0_curve": result.round0_curve,
    }
    (run_dir / "bench.json").write_text(json.dumps(payload, indent=2))
    (run_dir / "bench.md").write_text(format_table(summary))


def _label_bound_gap(summary: dict[str, dict[str, Any]]) -> float | None:
    """Oracle minus converged labeled-only mAP50-95: what more labels would still buy (>= 0.10: label-bound)."""
    if "oracle" not in summary or "converged" not in summary:
        return None
    return summary["oracle"]["map50_95_mean"] - summary["converged"]["map50_95_mean"]


def format_table(summary: dict[str, dict[str, Any]]) -> str:
    """A markdown table of the arms: mAP mean ± std over seeds, gap recovered, pseudo-label quality."""
    lines = [
        "| arm | val mAP50 | val mAP50-95 | gap recovered (vs supervised) | vs converged | "
        "pseudo precision / recall per round (seed means) | time |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm in ARMS:
        if arm not in summary:
            continue
        v = summary[arm]
        gaps = " | ".join(_percent(v.get(key)) for key in ("gap_recovered", "gap_recovered_vs_converged"))
        quality = _quality_text(v["pseudo_precision"], v["pseudo_recall"])
        lines.append(
            f"| {arm} | {v['map50_mean']:.3f} ± {v['map50_std']:.3f} | {v['map50_95_mean']:.3f} ± "
            f"{v['map50_95_std']:.3f} | {gaps} | {quality} | {v['wall_time_s'] / 60:.0f} min |"
        )
    return "\n".join(lines) + "\n"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _quality_text(precision: list[list[float]], recall: list[list[float]]) -> str:
    if not any(precision):
        return "-"
    # A seed whose cycle stopped early (round guard, patience) has fewer rounds: average those that ran.
    rounds = max(len(seed) for seed in precision)
    p = [statistics.fmean(seed[k] for seed in precision if k < len(seed)) for k in range(rounds)]
    r = [statistics.fmean(seed[k] for seed in recall if k < len(seed)) for k in range(rounds)]
    return ", ".join(f"{a:.2f}/{b:.2f}" for a, b in zip(p, r, strict=True))
