"""`run_bench`: per split seed one round 0, then every arm once per training seed, then the figures."""

from __future__ import annotations

import json
import logging
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, replace
from pathlib import Path

from yolossl.bench.arms import (
    ArmContext,
    ArmResult,
    cycle_arm,
    earlier_budget,
    matched_arm,
    offline_budget,
    online_budget,
    online_config,
    reused_round0,
    saturated_arm,
    show_ceiling,
    wall_matched_epochs,
)
from yolossl.bench.config import DOCS_WORKFLOW, BenchConfig
from yolossl.bench.report import BenchResult, write_bench
from yolossl.bench.splits import Split, TestSplit, hold_out_test, make_split
from yolossl.config import CycleConfig
from yolossl.cycle import CycleResult, run_cycle
from yolossl.cycle.state import new_run_dir
from yolossl.data import load_data_yaml
from yolossl.train.saturation import SATURATION_FILE, read_saturation

logger = logging.getLogger(__name__)

ArmCallback = Callable[[str, int], None]
REPLICATE_SEED_STEP = 1000
"""Replicate k of split seed s trains with seed s + 1000 k."""


def run_bench(config: BenchConfig, on_arm: ArmCallback | None = None) -> BenchResult:
    """Run every arm on every split seed and training seed under `project/name`; write bench.json and bench.md.

    With `config.jobs` > 1 the split seeds run side by side in worker processes (one training each: Ultralytics
    trains on all cores but one). Each arm is timed in its own seed's process while the others run: the wall-matched
    arm is matched under the contention of the moment, so give it a machine with a core per job."""
    run_dir = new_run_dir(Path(config.project), config.name, prefix="bench")
    spec = load_data_yaml(config.data)
    run_dir.mkdir(parents=True)
    (run_dir / "bench_config.json").write_text(json.dumps(asdict(config), indent=2, default=str))
    test = hold_out_test(spec, run_dir / "test_split")
    result = BenchResult(run_dir, [], {}, test.describe())
    seeds = range(config.first_seed, config.first_seed + config.seeds)
    if config.jobs == 1:
        for seed in seeds:
            _add_seed(result, *_run_seed(config, seed, run_dir, test, on_arm))
    else:
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no fork of torch's thread pools
        with ProcessPoolExecutor(max_workers=min(config.jobs, config.seeds), mp_context=context) as pool:
            futures = {pool.submit(_run_seed, config, seed, run_dir, test): seed for seed in seeds}
            try:
                for future in as_completed(futures):
                    _say(on_arm, "done", futures[future])
                    _add_seed(result, *future.result())
            except BaseException:  # a seed failed (or Ctrl-C): the seeds not started yet are not started
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    result.arms.sort(key=lambda r: (r.seed, r.train_seed))
    write_bench(run_dir, result)
    return result


def _add_seed(result: BenchResult, seed: int, curve: list[list[float]], arms: list[ArmResult]) -> None:
    result.round0_curve[seed] = curve
    result.arms.extend(arms)
    write_bench(result.run_dir, result)


def _run_seed(
    config: BenchConfig, seed: int, run_dir: Path, test: TestSplit, on_arm: ArmCallback | None = None
) -> tuple[int, list[list[float]], list[ArmResult]]:
    """One split seed: its split, its round 0, then every arm once per training seed."""
    spec = load_data_yaml(config.data)
    seed_dir = run_dir / f"seed_{seed}"
    split = make_split(config, spec, seed, seed_dir / "split", test)
    _say(on_arm, "round 0", seed)
    base = _base_cycle(config, seed, split, seed_dir)
    start = time.perf_counter()
    reused = reused_round0(config, seed)
    adopt_only = {"saturate_epochs": 0} if reused else {}  # a reused round 0 is validated, not trained further
    round0 = run_cycle(replace(base, rounds=0, name="round0", start_weights=reused, **adopt_only))
    round0_time = time.perf_counter() - start
    record = _saturation_record(config, seed, round0)
    arms: list[ArmResult] = []
    for train_seed in config.training_seeds:
        arm_dir = seed_dir if train_seed == 0 else seed_dir / f"train_seed_{train_seed}"
        ctx = ArmContext(seed, train_seed, split, test, round0, round0_time, arm_dir)
        replicate = replace(base, seed=seed + REPLICATE_SEED_STEP * train_seed, project=str(arm_dir))
        if "saturated" in config.arms and train_seed == 0:  # round 0 itself: once per split seed
            arms.append(saturated_arm(ctx, record))
        arms.extend(_replicate(config, ctx, replicate, on_arm))
    return seed, _round0_curve(record, round0), arms


def _replicate(config: BenchConfig, ctx: ArmContext, base: CycleConfig, on_arm: ArmCallback | None) -> list[ArmResult]:
    """Every arm after round 0, with one training seed: the SSL cycles, then the runs matched to them."""
    results: list[ArmResult] = []
    base = replace(base, saturate_epochs=0)  # every arm starts from round 0's weights, adopted, not trained on
    r0_weights = str(ctx.round0.rounds[0].weights)
    ssl = CycleConfig(**{**asdict(base), **config.offline_options(), "name": "yolossl", "start_weights": r0_weights})
    cycles: dict[str, CycleResult] = {}
    budget = earlier_budget(config, ctx.seed)
    matched = {"supervised", "supervised-wall", "oracle"} & set(config.arms)
    if "yolossl" in config.arms or (budget is None and matched and "online" not in config.arms):
        cycles["yolossl"] = _timed_cycle(on_arm, "yolossl", ctx, ssl, config, results)
        budget = offline_budget(cycles["yolossl"].rounds)
    if "docs" in config.arms:  # the docs' workflow, on the SSL arms' round schedule
        schedule = {k: getattr(ssl, k) for k in ("round_schedule", "round_lr_scale")}
        docs = replace(base, **DOCS_WORKFLOW, **schedule, name="docs", start_weights=r0_weights)
        _timed_cycle(on_arm, "docs", ctx, docs, config, results)
    online_seconds = 0.0
    if "online" in config.arms:
        n_labeled = len(ctx.split.labeled)
        online_cfg = online_config(ssl, budget, n_labeled, config.online_steps, config.online_only_options())
        cycles["online"] = _timed_cycle(on_arm, "online", ctx, online_cfg, config, results)
        online_seconds = sum(r.wall_time_s for r in cycles["online"].rounds[1:])
        if budget is None:  # the matched arms take the online arm's own steps
            budget = online_budget(cycles["online"].rounds)
    supervised = None
    for arm in ("supervised", "supervised-wall", "oracle"):
        if arm not in config.arms:
            continue
        _say(on_arm, arm, ctx.seed)
        epochs = None
        if arm == "supervised-wall":
            step_matched = next(r for r in results if r.arm == "supervised")
            epochs = wall_matched_epochs(supervised, step_matched.epochs, online_seconds)
        arm_result, trained = matched_arm(arm, ctx, ssl, budget or [], epochs)
        results.append(arm_result)
        if arm == "supervised":
            supervised = trained
        if arm == "oracle" and "yolossl" in cycles:
            show_ceiling(cycles["yolossl"].run_dir, arm_result)
    return results


def _timed_cycle(
    on_arm: ArmCallback | None,
    arm: str,
    ctx: ArmContext,
    cycle_config: CycleConfig,
    config: BenchConfig,
    results: list[ArmResult],
) -> CycleResult:
    """Run one SSL arm's cycle; record it when it is one of the bench's arms (the yolossl arm may run for its
    budget alone)."""
    _say(on_arm, arm, ctx.seed)
    start = time.perf_counter()
    cycle = run_cycle(cycle_config)
    if arm in config.arms:
        results.append(cycle_arm(arm, ctx, cycle, time.perf_counter() - start + ctx.round0_time))
    return cycle


def _say(on_arm: ArmCallback | None, arm: str, seed: int) -> None:
    if on_arm:
        on_arm(arm, seed)


def _base_cycle(config: BenchConfig, seed: int, split: Split, seed_dir: Path) -> CycleConfig:
    """Every arm's cycle options: validated once per training (`val=False`: no arm picks a best epoch)."""
    training = dict(config.training)
    training["train_args"] = {**training.get("train_args", {}), "val": False}
    return CycleConfig(
        **{
            **training,
            "data": str(split.labeled_yaml),
            "unlabeled": [str(split.pool)],
            "rounds": config.rounds,
            "mode": "offline",  # round 0, the docs' workflow and the yolossl arm; the online arm is set apart
            "control": False,  # the bench's own labels-alone arms are the controls
            "seed": seed,
            "project": str(seed_dir),
        }
    )


def _saturation_record(config: BenchConfig, seed: int, round0: CycleResult) -> Path:
    """Where round 0's saturation run is recorded: in this run, or in the run whose round 0 is reused."""
    run = Path(config.round0_from) / f"seed_{seed}" / "round0" if config.round0_from else round0.run_dir
    return run / "round_0" / SATURATION_FILE


def _round0_curve(record: Path, round0: CycleResult) -> list[list[float]]:
    """(epoch, val mAP50-95) at each validation of round 0's saturation run; its one validation without one."""
    saturation = read_saturation(record)
    return saturation["curve"] if saturation else [[0, round0.rounds[0].metrics.map50_95]]
