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
import os
from collections.abc import Collection
from dataclasses import replace
from pathlib import Path

from yolossl.config import CycleConfig, save_config
from yolossl.cycle.inputs import check_run_settings, check_some_readable, read_inputs
from yolossl.cycle.labeler import Labeler, PoolLabeler
from yolossl.cycle.loop import Cycle, ProgressCallback, ProgressEvent, Trainer
from yolossl.cycle.online import OnlineCycle
from yolossl.cycle.results import CycleResult, RoundResult, best_round, summary_csv, summary_rows
from yolossl.cycle.state import CONFIG_FILE, logging_to_run_folder, new_run_dir, read_run_config, run_lock
from yolossl.runtime import resolve_device

logger = logging.getLogger(__name__)

__all__ = [
    "RESUME_OPTIONS",
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
    check_run_settings(config)  # before the demo is drawn or any folder made
    config = _absolute_paths(_with_demo_data(config, given))
    run_dir = new_run_dir(Path(config.project), config.name, taken_hint=", or continue it with --resume {run_dir}")
    inputs = read_inputs(config, run_dir / CONFIG_FILE)  # every input checked before any folder is made
    check_some_readable(inputs)
    run_dir.mkdir(parents=True)
    save_config(config, run_dir / CONFIG_FILE)
    logger.info("Run folder: %s", run_dir)
    with run_lock(run_dir), logging_to_run_folder(run_dir):
        return _cycle_class(config)(inputs, run_dir, resolve_device(config.device), on_progress, trainer, labeler).run()


RESUME_OPTIONS = ("rounds", "device", "workers")
"""What `resume_cycle` may change: how many rounds (`read_run_config` says when), where and with how many loader
workers the rest runs. Every other option stays as the run started: its rounds so far were made with it."""


def resume_cycle(
    run_dir: str | Path,
    rounds: int | None = None,
    on_progress: ProgressCallback | None = None,
    *,
    device: str | None = None,
    workers: int | None = None,
    trainer: Trainer | None = None,
    labeler: Labeler | None = None,
) -> CycleResult:
    """Continue an interrupted run from its last completed step; `rounds` may extend a finished run, and the rest
    may run on another `device` or with other `workers` (saved to its config.yaml)."""
    run_dir = Path(run_dir)
    started = read_run_config(run_dir)  # a folder that is not a run is one line, before anything is written into it
    changes = {
        key: value
        for key, value in {"device": device, "workers": workers}.items()
        if value is not None and value != getattr(started, key)
    }
    check_run_settings(replace(started, **changes))
    with run_lock(run_dir):
        config = read_run_config(run_dir, rounds)
        if changes:
            was = ", ".join(f"{key} {getattr(config, key)}" for key in changes)
            config = replace(config, **changes)
            save_config(config, run_dir / CONFIG_FILE)
            now = ", ".join(f"{key} {value}" for key, value in changes.items())
            logger.info("Resuming with %s (started with %s)", now, was)
        logger.info("Resuming %s", run_dir)
        inputs = read_inputs(config, run_dir / CONFIG_FILE)
        with logging_to_run_folder(run_dir):
            return _cycle_class(config)(
                inputs, run_dir, resolve_device(config.device), on_progress, trainer, labeler
            ).run()


def _cycle_class(config: CycleConfig) -> type[Cycle]:
    """Offline rounds (`Cycle`) or one online-teacher run (`OnlineCycle`), by `config.mode`."""
    return OnlineCycle if config.mode == "online" else Cycle


def _absolute_paths(config: CycleConfig) -> CycleConfig:
    """The config with its input paths absolute (a model or start weights only when they are files: a name such as
    yolo11n.yaml stays a name), so that its saved copy resumes from any folder."""

    def absolute(path: str) -> str:
        return os.path.abspath(os.path.expanduser(path))

    def local_file(path: str) -> str:
        return absolute(path) if Path(path).expanduser().is_file() else path

    return replace(
        config,
        data=absolute(config.data) if config.data else None,
        unlabeled=[absolute(folder) for folder in config.unlabeled],
        model=local_file(config.model),
        start_weights=local_file(config.start_weights) if config.start_weights else None,
    )


def _with_demo_data(config: CycleConfig, given: Collection[str] | None) -> CycleConfig:
    """No `data` given: build (once) and use the bundled demo dataset, its pool, and its CPU-sized settings."""
    if config.data:
        return config
    from yolossl.demo import DEMO_DIR, ensure_demo_dataset, with_demo_settings

    data_yaml = ensure_demo_dataset(DEMO_DIR)
    unlabeled = config.unlabeled or [str((DEMO_DIR / "unlabeled").resolve())]
    return replace(with_demo_settings(config, given), data=str(data_yaml.resolve()), unlabeled=unlabeled)
