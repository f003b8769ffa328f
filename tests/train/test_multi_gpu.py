"""What of the multi-GPU launch can be pinned without a GPU: its payload, built by Ultralytics' own code."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

from rich.progress import Progress

from tests.conftest import tiny_cycle_config
from yolossl.cli.cycle import _progress_callback
from yolossl.cycle import OnlineCycle
from yolossl.cycle.inputs import read_inputs
from yolossl.models import load_model
from yolossl.train import attach_epoch_reports
from yolossl.train.epochs import EpochReports
from yolossl.train.online import OnlineTeacherTrainer, log_online_epoch, stop_at_round_end


def test_the_ddp_payload_pickles_with_the_cli_progress_attached_and_reports_through_a_file(
    tiny_dataset: Path, tmp_path: Path, caplog
) -> None:
    """`--device 0,1` used to fail in `generate_ddp_file`: yolossl's epoch callbacks closed over the cycle and the
    CLI's progress bar (an RLock). Now the workers get an `EpochReports` that knows only a file, and the parent's
    progress follows that file."""
    from ultralytics.utils.dist import generate_ddp_file
    from ultralytics.utils.patches import torch_load

    config = tiny_cycle_config(tiny_dataset, tmp_path, mode="online")
    progress = Progress()
    events = []
    cycle = OnlineCycle(
        read_inputs(config, tmp_path / "config.yaml"),
        tmp_path / "run",
        "0,1",
        on_progress=lambda e: (events.append(e), _progress_callback(progress)(e)),
    )
    on_epoch = cycle._on_round_epoch(1, 0, 4)  # what the cycle gives `train_detector` for an online round
    model = load_model("yolo11n.yaml")
    (tmp_path / "train").mkdir()  # the round's folder, which the cycle has made
    caplog.set_level(logging.INFO, logger="yolossl")
    with attach_epoch_reports(model, on_epoch, "0,1", tmp_path / "train" / "round_1"):  # as train_detector does
        overrides = {"model": "yolo11n.yaml", "data": config.data, "device": "cpu", "project": str(tmp_path / "t")}
        trainer = OnlineTeacherTrainer(overrides=overrides, _callbacks=model.callbacks)
        trainer.model = model.model
        script = Path(generate_ddp_file(trainer))  # Ultralytics' own pickling of the payload, with cloudpickle
        payload = torch_load(script.with_suffix(".pt"), map_location="cpu")
        script.unlink()
        script.with_suffix(".pt").unlink()
        callbacks = payload["callbacks"]
        assert callbacks["on_train_epoch_end"].count(log_online_epoch) == 1
        assert callbacks["on_train_epoch_end"].count(stop_at_round_end) == 1
        ours = [
            c.__self__ for c in callbacks["on_fit_epoch_end"] if isinstance(getattr(c, "__self__", None), EpochReports)
        ]
        assert len(ours) == 1 and ours[0].on_epoch is None  # the workers get a file's name, not the cycle
        assert ours[0].path == str(tmp_path / "train" / ".round_1.epochs.jsonl")

        # what a worker's rank 0 does after its first epoch (validated); the parent follows the file
        worker = SimpleNamespace(epoch=0, epochs=4, stop=False, metrics={"metrics/mAP50-95(B)": 0.25}, tloss=None)
        worker.epoch_log_lines = ["Online epoch 1/4: unlabeled loss 0.5000; teacher boxes kept per class: a 1/2 (50%)"]
        worker.label_loss_items = lambda tloss, prefix: {f"{prefix}/box_loss": 1.5}
        ours[0].on_train_epoch_end(SimpleNamespace(metrics={}))
        ours[0].on_fit_epoch_end(worker)
    assert [(e.round, e.step, e.done, e.total) for e in events] == [(1, "train", 1, 4)]
    assert "Online epoch 1/4: unlabeled loss 0.5000" in caplog.text  # the worker's line, in the parent's log
    assert progress.tasks[0].completed == 1 and not Path(ours[0].path).exists()
