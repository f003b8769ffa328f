"""The run folder: its name, the config it was started with, `state.json` (what resume skips), `cycle.log`.

Every step of a round records itself in `state.json` once its outputs are in place, so a resumed
run skips exactly the steps that finished and redoes the one that was cut off.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from yolossl._fs import write_text_atomic
from yolossl.config import CycleConfig, load_config_file, save_config
from yolossl.errors import YolosslError

STATE_FILE = "state.json"
CONFIG_FILE = "config.yaml"
LOG_FILE = "cycle.log"
LOCK_FILE = ".lock"


def new_run_dir(project: Path, name: str | None, prefix: str = "exp", taken_hint: str = "") -> Path:
    """`project/name`, or the first free `project/<prefix>`, `<prefix>2`, ... Never an existing folder.

    `taken_hint` ends the error for a taken `name` (`{run_dir}` in it is filled in).
    """
    if name:
        run_dir = project / name
        if run_dir.exists():
            raise YolosslError(f"{run_dir}: already exists; pick another --name{taken_hint.format(run_dir=run_dir)}")
        return run_dir
    index = 1
    while (project / f"{prefix}{'' if index == 1 else index}").exists():
        index += 1
    return project / f"{prefix}{'' if index == 1 else index}"


def read_run_config(run_dir: Path, rounds: int | None = None) -> CycleConfig:
    """The config a run was started with; `rounds` (when given) extends it and is saved back."""
    config_path = run_dir / CONFIG_FILE
    if not config_path.is_file():
        raise YolosslError(f"{run_dir}: not a yolossl run folder (no {CONFIG_FILE})")
    values = load_config_file(config_path, saved_run=True)
    values.setdefault("mode", "offline")  # saved before the online mode existed (and became the default)
    values.setdefault("control", False)  # saved before every run trained its labels-alone control
    if values["mode"] == "online":
        values.setdefault("online_rounds", False)  # saved when the online run was one round
    extended = rounds is not None and rounds != values.get("rounds", CycleConfig.rounds)
    if extended and values["mode"] == "online" and values.get("rounds", CycleConfig.rounds) >= 1:
        raise YolosslError(
            f"{run_dir}: an online run's rounds share one schedule, set when it started; --rounds on resume extends "
            "only a run started with --rounds 0 (to train on: a new run with --start-weights "
            f"{run_dir / 'weights' / 'best.pt'})"
        )
    if rounds is not None:
        values["rounds"] = rounds
    if "ema" not in values and values.get("loss", "ultralytics") == "ultralytics" and values.get("mode") != "online":
        values["ema"] = "ultralytics"  # saved before the fitted EMA existed: resume on the EMA it started with
    if values.get("mode") == "online" and "online_val" not in values:  # saved when online runs validated as round 0
        values["online_val"] = (values.get("train_args") or {}).get("val", True)
    if values.get("mode") == "online" and "online_epochs" not in values:  # saved before its length and views
        started = CycleConfig(**values)
        values["online_epochs"] = max(1, started.round_epochs * started.rounds)
        values.setdefault("strong_scale", 0.0)
        values.setdefault("strong_translate", 0.0)
    config = CycleConfig(**values)
    if extended:
        save_config(config, config_path)
    return config


class RunState:
    """`state.json`: per round, the steps done (with what they returned) and the round's result."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / STATE_FILE
        self.values: dict[str, Any] = self._load()

    def _load(self) -> dict[str, Any]:
        if not self.path.is_file():
            return {"version": 1, "rounds": {}}
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise YolosslError(f"{self.path}: state file is corrupt ({e.msg}); start a new run") from e

    def result(self, index: int) -> dict[str, Any] | None:
        """A finished round's result, as `RoundResult.to_dict()` saved it."""
        return self.values["rounds"].get(str(index), {}).get("result")

    def steps(self, index: int) -> dict[str, Any]:
        """The steps round `index` has done so far (created empty for a new round)."""
        return self.values["rounds"].setdefault(str(index), {"steps": {}})["steps"]

    def mark(self, index: int, step: str, value: Any) -> None:
        """Record a finished step (its outputs are already in place) and save."""
        self.steps(index)[step] = value
        self.save()

    def finish_round(self, index: int, result: dict[str, Any]) -> None:
        self.values["rounds"][str(index)]["result"] = result
        self.save()

    def record(self, name: str) -> Any:
        """A run-wide step's saved result (None: not done yet)."""
        return self.values.get(name)

    def put_record(self, name: str, value: Any) -> None:
        self.values[name] = value
        self.save()

    def flag(self, name: str) -> bool:
        return bool(self.values.get(name))

    def set_flag(self, name: str) -> None:
        self.values[name] = True
        self.save()

    def save(self) -> None:
        write_text_atomic(self.path, json.dumps(self.values, indent=2))


@contextmanager
def logging_to_run_folder(run_dir: Path) -> Iterator[None]:
    """While the run executes, its log also goes to `cycle.log`: ours from INFO, Ultralytics' from WARNING.

    The log file is complete even when the console is quiet; a run that stops says why in it. As a library should,
    the rest is the caller's: yolossl's warnings reach stderr as Python shows any library's when logging is not set
    up (the file handler must not silence them), its INFO lines where the caller's logging sends them
    (`logging.basicConfig(level=logging.INFO)`), and Ultralytics' per-epoch output only when asked for
    (`logging.getLogger("ultralytics").setLevel(logging.DEBUG)`, as `yolossl cycle -v` does).
    """
    from ultralytics.utils import LOGGER  # imported first: its import sets its logger's level

    handler = logging.FileHandler(run_dir / LOG_FILE, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    # Ultralytics' INFO is per-batch noise
    handler.addFilter(lambda record: record.name.startswith("yolossl") or record.levelno >= logging.WARNING)
    package, engine = logging.getLogger("yolossl"), LOGGER
    levels = package.level, engine.level
    handlers = [handler]
    if not package.hasHandlers():  # nothing set up: Python's last resort would show the warnings; so do we
        warnings_out = logging.StreamHandler()
        warnings_out.setLevel(logging.WARNING)
        handlers.append(warnings_out)
    if package.getEffectiveLevel() > logging.INFO:
        package.setLevel(logging.INFO)
    if engine.level == logging.INFO:  # as Ultralytics sets itself up; a level the caller chose is left alone
        engine.setLevel(logging.WARNING)
    for each in handlers:
        package.addHandler(each)
    engine.addHandler(handler)
    try:
        yield
    except BaseException as e:  # said in cycle.log only: the caller gets the error itself (the CLI prints it once)
        logger = logging.getLogger(__name__)
        handler.handle(
            logger.makeRecord(logger.name, logging.ERROR, __file__, 0, "Stopped: %s: %s", (type(e).__name__, e), None)
        )
        raise
    finally:
        for each in handlers:
            package.removeHandler(each)
        engine.removeHandler(handler)
        package.setLevel(levels[0])
        engine.setLevel(levels[1])
        handler.close()


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run folder for this process: a second `yolossl cycle` on it (a retried job, a forgotten terminal) is
    refused in one line naming the holder. An OS lock (flock): it dies with its process, so a resume after a crash or
    a SIGKILL is never refused."""
    try:
        import fcntl
    except ImportError:  # Windows: no flock; the run folder goes unguarded there
        yield
        return
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            raise YolosslError(
                f"{run_dir}: in use by another yolossl process (pid {holder}); wait for it to end or stop it"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock
