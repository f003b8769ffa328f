"""Epoch reports from Ultralytics' trainer to the caller's `on_epoch`, in this process or across the multi-GPU launch.

With `device="0,1"` Ultralytics pickles the trainer's callbacks into a file that each re-launched worker loads
(`ultralytics.utils.dist.generate_ddp_file`). A closure over the caller (the cycle, the CLI's progress bar and its
lock) cannot be pickled, and must not be copied into every rank: there the callbacks are an `EpochReports` that
only knows a file path. Rank 0 appends one JSON line per epoch to it; `following` reads the lines in the parent as
they come and calls `on_epoch` (and logs what the worker logged for the epoch, so that it reaches `cycle.log`). In
one process the same object calls `on_epoch` directly.

Reported: losses every epoch, val metrics only after an epoch that validated (with `val=False` Ultralytics keeps
zeros until its last epoch). The final validation of `best.pt` fires Ultralytics' epoch-end callback once more after
the epoch that stopped the training (the last, or an online round's `stop_epoch`): not an epoch, not reported.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)
worker_logger = logging.getLogger("yolossl.train.online")
"""The lines a multi-GPU worker logged for an epoch are logged again here, in the process that writes `cycle.log`."""

EpochCallback = Callable[[int, int, dict[str, float]], None]
"""`on_epoch(epoch, epochs, losses_and_metrics)`, epochs 1-based."""


class EpochReports:
    """Ultralytics callbacks (`on_train_epoch_end`, `on_fit_epoch_end`) that report each epoch once."""

    def __init__(self, on_epoch: EpochCallback | None = None, path: Path | None = None) -> None:
        self.on_epoch = on_epoch
        self.path = str(path) if path else None
        self._metrics_before_val: Any = None
        self._stopped = False

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (into multi-GPU workers) without the caller's callback: the file carries the reports."""
        return {**self.__dict__, "on_epoch": None}

    def callbacks(self) -> dict[str, Callable[[Any], None]]:
        return {"on_train_epoch_end": self.on_train_epoch_end, "on_fit_epoch_end": self.on_fit_epoch_end}

    def on_train_epoch_end(self, trainer: Any) -> None:
        self._metrics_before_val = trainer.metrics

    def on_fit_epoch_end(self, trainer: Any) -> None:
        from ultralytics.utils import RANK

        epoch = trainer.epoch + 1
        if epoch > trainer.epochs or self._stopped or RANK not in {-1, 0}:
            return
        self._stopped = bool(trainer.stop)
        values = {
            k.split("/")[-1]: float(v) for k, v in trainer.label_loss_items(trainer.tloss, prefix="train").items()
        }
        validated = trainer.metrics is not self._metrics_before_val
        for key, value in (trainer.metrics or {}).items() if validated else ():
            if key.startswith("metrics/"):
                values[key.split("/")[-1].replace("(B)", "")] = float(value)
        if self.path is not None:  # with the lines the worker logged for the epoch: its log is not the caller's
            report = {"epoch": epoch, "epochs": trainer.epochs, "values": values}
            report["log"] = getattr(trainer, "epoch_log_lines", [])
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(report) + "\n")
        elif self.on_epoch is not None:
            self.on_epoch(epoch, trainer.epochs, values)


@contextmanager
def following(path: Path, on_epoch: EpochCallback, interval: float = 1.0) -> Iterator[None]:
    """While the body runs, call `on_epoch` for each report the workers append to `path` (and the last ones after)."""
    path.unlink(missing_ok=True)
    done = threading.Event()
    offset = 0

    def read_new() -> None:
        nonlocal offset
        if not path.is_file():
            return
        with path.open(encoding="utf-8") as f:
            f.seek(offset)
            for line in iter(f.readline, ""):
                if not line.endswith("\n"):  # a line still being written: read it next time
                    break
                offset += len(line.encode("utf-8"))
                report = json.loads(line)
                for message in report.get("log", []):
                    worker_logger.info(message)
                on_epoch(report["epoch"], report["epochs"], report["values"])

    def follow() -> None:
        while not done.wait(interval):
            try:
                read_new()
            except Exception as e:  # a progress report must never stop the training it reports on
                logger.warning("Epoch reports from %s: %s: %s", path, type(e).__name__, e)

    thread = threading.Thread(target=follow, name="yolossl-epoch-reports", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        read_new()
        path.unlink(missing_ok=True)
