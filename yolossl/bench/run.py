"""`run_bench`: per split seed one round 0, then every arm once per training seed, then the figures."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

from yolossl.bench.arms import (
    ArmContext,
    ArmResult,
    converged_arm,
    cycle_arm,
    earlier_budget,
    matched_arm,
    offline_budget,
    online_budget,
    online_config,
    reused_round0,
    round0_cycles,
    show_ceiling,
    wall_matched_epochs,
)
from yolossl.bench.config import DOCS_WORKFLOW, BenchConfig
from yolossl.bench.report import BenchResult, write_bench
from yolossl.bench.splits import Split, hold_out_test, make_split
from yolossl.config import CycleConfig
from yolossl.cycle import CycleResult, run_cycle
from yolossl.cycle.state import new_run_dir
from yolossl.data import load_data_yaml

logger = logging.getLogger(__name__)

ArmCallback = Callable[[str, int], None]
REPLICATE_SEED_STEP = 1000
"""Replicate k of split seed s trains with seed s + 1000 k."""


def run_bench(config: BenchConfig, on_arm: ArmCallback | None = None) -> BenchResult:
    """Run every arm on every split seed and training seed under `project/name`; write bench.json and bench.md."""
    run_dir = new_run_dir(Path(config.project), config.name, prefix="bench")
    spec = load_data_yaml(config.data)
    run_dir.mkdir(parents=True)
    (run_dir / "bench_config.json").write_text(json.dumps(asdict(config), indent=2, default=str))
    test = hold_out_test(spec, run_dir / "test_split")
    result = BenchResult(run_dir, [], {}, test.describe())
    for seed in range(config.first_seed, config.first_seed + config.seeds):
        seed_dir = run_dir / f"seed_{seed}"
        split = make_split(config, spec, seed, seed_dir / "split", test)
        _say(on_arm, "round 0", seed)
        base = _base_cycle(config, seed, split, seed_dir)
        start = time.perf_counter()
        reused = reused_round0(config, seed)
        adopt_only = {"round0_cycles": 1} if reused else {}  # a reused round 0 is validated, not trained further
        round0 = run_cycle(replace(base, rounds=0, name="round0", start_weights=reused, **adopt_only))
        round0_time = time.perf_counter() - start
        result.round0_curve[seed] = _round0_curve(round0)
        for train_seed in config.training_seeds:
            arm_dir = seed_dir if train_seed == 0 else seed_dir / f"train_seed_{train_seed}"
            ctx = ArmContext(seed, train_seed, split, test, round0, round0_time, arm_dir)
            replicate = replace(base, seed=seed + REPLICATE_SEED_STEP * train_seed, project=str(arm_dir))
            if "converged" in config.arms and train_seed == 0:  # round 0 itself: once per split seed
                result.arms.append(converged_arm(config, ctx, base, on_arm))
            result.arms.extend(_replicate(config, ctx, replicate, on_arm))
            write_bench(run_dir, result)
    write_bench(run_dir, result)
    return result


def _replicate(config: BenchConfig, ctx: ArmContext, base: CycleConfig, on_arm: ArmCallback | None) -> list[ArmResult]:
    """Every arm after round 0, with one training seed: the SSL cycles, then the runs matched to them."""
    results: list[ArmResult] = []
    base = replace(base, round0_cycles=1)  # every arm starts from round 0's weights, adopted, not trained on
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
            "seed": seed,
            "project": str(seed_dir),
        }
    )


def _round0_curve(round0: CycleResult) -> list[float]:
    """Val mAP50-95 after each of round 0's learning-rate cycles (each validated once, at its end)."""
    return [c["map50_95"] for c in round0_cycles(round0.run_dir)["cycles"]] or [round0.rounds[0].metrics.map50_95]
