"""Shared fixtures: an offline Ultralytics, tiny generated datasets, and one tiny trained model."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Before anything imports Ultralytics: no network probes, no pip installs, and settings in a
# throw-away folder rather than the user's home.
os.environ["YOLO_OFFLINE"] = "1"
os.environ["YOLO_AUTOINSTALL"] = "false"
os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="yolossl-tests-ultralytics-"))

import pytest

from yolossl.config import CycleConfig
from yolossl.demo import DemoSpec, write_demo_dataset

TINY = DemoSpec(n_labeled=8, n_unlabeled=12, n_val=6, size=64, seed=1)


def tiny_cycle_config(dataset: Path, project: Path, **overrides) -> CycleConfig:
    """A one-round, one-epoch cycle of the offline rounds on a tiny dataset folder, on CPU (online: `mode="online"`).

    A one-epoch model is never confident: a near-zero global `conf` keeps its boxes, so that the
    round has pseudo-labels (and uncertain ones) to write, export and report.
    """
    values = dict(
        data=str(dataset / "data.yaml"),
        unlabeled=[str(dataset / "unlabeled")],
        rounds=1,
        mode="offline",
        epochs=1,
        round_epochs=1,
        imgsz=64,
        batch=8,
        conf=0.003,
        target_precision=None,
        uncertain_low=0.002,
        device="cpu",
        workers=0,
        project=str(project),
        name="r",
        control=False,  # the labels-alone control trains once more: tests that pin it switch it on
    )
    return CycleConfig(**{**values, **overrides})


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    """A fresh tiny demo dataset (8 labeled, 12 unlabeled, 6 val images of 64 px); returns its folder."""
    root = tmp_path / "tiny"
    write_demo_dataset(root, TINY)
    return root


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A yolo11n trained for one epoch on a tiny dataset: real weights that load and predict."""
    from yolossl.data import load_data_yaml
    from yolossl.merge import build_round_dataset, mirror_split
    from yolossl.train import TrainSettings, train_detector

    base = tmp_path_factory.mktemp("weights")
    write_demo_dataset(base / "data", TINY)
    spec = load_data_yaml(base / "data" / "data.yaml")
    val_images = mirror_split(spec.val_items(), base / "run" / "val", len(spec.names))
    data_yaml = build_round_dataset(base / "run" / "round_0", spec.train_items(), [], val_images, spec.names).data_yaml
    settings = TrainSettings(epochs=1, imgsz=64, batch=8, device="cpu", workers=0)
    return train_detector("yolo11n.yaml", data_yaml, base / "run" / "round_0" / "train", settings).weights


KILL_INSIDE_ROUND_1 = (("round_1/train/weights/last.pt", "round_1/metrics.json"),)
"""Killed once round 1's training has saved an epoch, before the round finished."""


def killed_and_resumed(
    tmp_path: Path, options: list[str], kill_points: tuple[tuple[str, str], ...] = KILL_INSIDE_ROUND_1
) -> tuple[Path, ...]:
    """`yolossl cycle OPTIONS` run whole, and run again once per kill point, SIGKILLed, then resumed.

    A kill point is (marker, unfinished): the run is killed as soon as the marker file exists in its folder, and the
    unfinished file must not exist yet. Returns the run folders (whole, then one per kill point) to compare.
    """
    import signal
    import subprocess
    import sys
    import time

    write_demo_dataset(tmp_path / "data", TINY)
    data = ["--data", str(tmp_path / "data" / "data.yaml"), "-u", str(tmp_path / "data" / "unlabeled")]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cli = [sys.executable, "-m", "yolossl", "cycle", *data, *options, "--project", str(tmp_path / "runs"), "-q"]
    subprocess.run([*cli, "--name", "whole"], check=True, env=env, capture_output=True)
    runs = [tmp_path / "runs" / "whole"]
    for k, (marker, unfinished) in enumerate(kill_points):
        name = f"killed{k or ''}"
        proc = subprocess.Popen([*cli, "--name", name], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        killed = tmp_path / "runs" / name
        deadline = time.monotonic() + 300
        while not (killed / marker).exists():
            assert proc.poll() is None and time.monotonic() < deadline, f"the run ended before {marker} was written"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not (killed / unfinished).exists()

        resumed = subprocess.run([*cli[:4], "--resume", str(killed), "-q"], env=env, capture_output=True, text=True)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        runs.append(killed)
    return tuple(runs)
