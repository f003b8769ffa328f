"""The self-training cycle: round 0 on the labels, then one online-teacher run (the default, `--mode online`) or N
rounds of pseudo-label → merge → retrain (`--mode offline`).

- `loop`: the rounds and the round guard (`Cycle`, given its trainer and labeler);
- `online`: `--mode online`, one online-teacher run after round 0 (`OnlineCycle`, on top of `Cycle`);
- `inputs`: the splits checked and the pool scanned before the first round;
- `labeler`: the default labeler of a round (`PoolLabeler`);
- `state`: the run folder, `state.json` and resume, `cycle.log`;
- `results`: `RoundResult`, `CycleResult`, `summary.csv`.

    >>> result = run_cycle(CycleConfig(data="data.yaml", unlabeled=["imgs/"], rounds=3))
    >>> result.rounds[-1].metrics.map50_95
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import replace
from pathlib import Path

from yolossl.config import CycleConfig, save_config
from yolossl.cycle.inputs import read_inputs
from yolossl.cycle.labeler import Labeler, PoolLabeler
from yolossl.cycle.loop import Cycle, ProgressCallback, ProgressEvent, Trainer
from yolossl.cycle.online import OnlineCycle
from yolossl.cycle.results import CycleResult, RoundResult, best_round, summary_csv, summary_rows
from yolossl.cycle.state import CONFIG_FILE, logging_to_run_folder, new_run_dir, read_run_config, run_lock
from yolossl.runtime import resolve_device

logger = logging.getLogger(__name__)

__all__ = [
    "Cycle",
    "CycleResult",
    "Labeler",
    "OnlineCycle",
    "PoolLabeler",
    "ProgressCallback",
    "ProgressEvent",
    "RoundResult",
    "Trainer",
    "best_round",
    "resume_cycle",
    "run_cycle",
    "summary_csv",
    "summary_rows",
]


def run_cycle(
    config: CycleConfig,
    on_progress: ProgressCallback | None = None,
    *,
    trainer: Trainer | None = None,
    labeler: Labeler | None = None,
    given: Collection[str] | None = None,
) -> CycleResult:
    """Start a new run under `config.project` and carry it through all rounds.

    `trainer` and `labeler` replace the defaults (Ultralytics' trainer, `PoolLabeler`) for every round. Without
    `data`, the demo fills in its settings for the options not in `given` (None: those left at their defaults).
    """
    config = _with_demo_data(config, given)
    run_dir = new_run_dir(Path(config.project), config.name, taken_hint=", or continue it with --resume {run_dir}")
    inputs = read_inputs(config, run_dir / CONFIG_FILE)  # every input checked before any folder is made
    run_dir.mkdir(parents=True)
    save_config(config, run_dir / CONFIG_FILE)
    logger.info("Run folder: %s", run_dir)
    with run_lock(run_dir), logging_to_run_folder(run_dir):
        return _cycle_class(config)(inputs, run_dir, resolve_device(config.device), on_progress, trainer, labeler).run()


def resume_cycle(
    run_dir: str | Path,
    rounds: int | None = None,
    on_progress: ProgressCallback | None = None,
    *,
    trainer: Trainer | None = None,
    labeler: Labeler | None = None,
) -> CycleResult:
    """Continue an interrupted run from its last completed step; `rounds` may extend a finished run."""
    run_dir = Path(run_dir)
    read_run_config(run_dir)  # a folder that is not a run is one line, before anything is written into it
    with run_lock(run_dir):
        config = read_run_config(run_dir, rounds)
        logger.info("Resuming %s", run_dir)
        inputs = read_inputs(config, run_dir / CONFIG_FILE)
        with logging_to_run_folder(run_dir):
            return _cycle_class(config)(
                inputs, run_dir, resolve_device(config.device), on_progress, trainer, labeler
            ).run()


def _cycle_class(config: CycleConfig) -> type[Cycle]:
    """Offline rounds (`Cycle`) or one online-teacher run (`OnlineCycle`), by `config.mode`."""
    return OnlineCycle if config.mode == "online" else Cycle


def _with_demo_data(config: CycleConfig, given: Collection[str] | None) -> CycleConfig:
    """No `data` given: build (once) and use the bundled demo dataset, its pool, and its CPU-sized settings."""
    if config.data:
        return config
    from yolossl.demo import DEMO_DIR, ensure_demo_dataset, with_demo_settings

    data_yaml = ensure_demo_dataset(DEMO_DIR)
    unlabeled = config.unlabeled or [str((DEMO_DIR / "unlabeled").resolve())]
    return replace(with_demo_settings(config, given), data=str(data_yaml.resolve()), unlabeled=unlabeled)
