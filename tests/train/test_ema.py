"""The fitted EMA: its schedule, and the trainer every yolossl training uses unless told Ultralytics' own."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from yolossl.errors import YolosslError
from yolossl.train import TrainSettings
from yolossl.train.ema import EmaSchedule, FittedEmaTrainer, ema_schedule


def test_the_ema_schedule_fits_the_run_length() -> None:
    """1000 optimizer steps: a horizon of 100 steps (decay 0.99), reached by the mean teacher's ramp at step 99."""
    schedule = ema_schedule(1000)
    assert schedule == EmaSchedule(pytest.approx(0.99))
    assert [schedule(u) for u in (0, 1, 9, 99, 100, 999)] == pytest.approx([0.0, 0.5, 0.9, 0.99, 0.99, 0.99])
    assert schedule.ramp_updates == 99  # a tenth of the run
    assert ema_schedule(10**6).target == 0.9999  # a long run stops at Ultralytics' own target
    assert ema_schedule(10**6, max_decay=0.999).target == 0.999
    assert ema_schedule(5).target == 0.0  # shorter than ten steps: the average is the last model
    # Ultralytics' own ramp would still be at 0.9999 * (1 - exp(-1000 / 2000)) = 0.39 after this whole run
    assert 0.9999 * (1 - math.exp(-1000 / 2000)) < 0.4


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"ema": "swa"}, "ema must be one of fitted, ultralytics, got 'swa'"),
        ({"ema": "ultralytics", "loss": "pseudo-aware"}, "ema ultralytics goes with loss ultralytics"),
        ({"ema": "ultralytics", "online": True}, "ema ultralytics goes with loss ultralytics"),
    ],
)
def test_an_ema_that_cannot_be_had_is_one_line(changes: dict, message: str) -> None:
    with pytest.raises(YolosslError, match=message):
        TrainSettings(epochs=1, imgsz=64, batch=8, device="cpu", **changes)


def test_the_trainer_averages_over_a_tenth_of_the_run(tiny_dataset: Path, tmp_path: Path) -> None:
    """A run under ten optimizer steps: the saved average is the last student, on the fitted schedule throughout;
    Ultralytics' ramp would have kept mostly the untrained start model."""
    import torch

    seen: list[dict] = []

    def capture(trainer) -> None:
        student = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
        seen.append({"student": student, "decay": trainer.ema.decay, "updates": trainer.ema.updates})

    args = dict(model="yolo11n.yaml", data=str(tiny_dataset / "data.yaml"), epochs=2, imgsz=64, batch=8)
    overrides = {**args, "device": "cpu", "workers": 0, "plots": False, "project": str(tmp_path), "name": "a"}
    overrides["val"] = False
    trainer = FittedEmaTrainer(overrides=overrides)
    trainer.add_callback("on_train_epoch_end", capture)
    trainer.train()

    assert trainer.ema_schedule == EmaSchedule(0.0)  # 2 optimizer steps: the average is the last student
    assert all(s["decay"] is trainer.ema_schedule for s in seen)  # not Ultralytics' 2000-update ramp
    assert seen[-1]["updates"] >= 1
    last = seen[-1]["student"]
    ema = trainer.ema.ema.state_dict()
    weight = next(k for k, v in ema.items() if v.dtype.is_floating_point and v.ndim == 4)
    assert torch.allclose(ema[weight].float(), last[weight].float(), atol=1e-6)


def test_a_model_that_is_not_a_detector_keeps_ultralytics_own_trainer() -> None:
    """FittedEmaTrainer is a DetectionTrainer: a segmentation model would lose its masks under it."""
    from ultralytics import YOLO

    from yolossl.train import _trainer_for

    settings = TrainSettings(epochs=1, imgsz=64, batch=8, device="cpu")
    assert _trainer_for(settings, YOLO("yolo11n-seg.yaml"), "yolo11n-seg.yaml") == {}
    assert _trainer_for(settings, YOLO("yolo11n.yaml"), "yolo11n.yaml") == {"trainer": FittedEmaTrainer}
