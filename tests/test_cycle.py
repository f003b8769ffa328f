from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import tiny_cycle_config
from yolossl import CycleConfig, Metrics, YolosslError, resume_cycle, run_cycle
from yolossl.config import save_config


def _tiny_config(tiny_dataset: Path, tmp_path: Path, **overrides) -> CycleConfig:
    values = {"rounds": 2, "conf": 0.001, "uncertain_low": None, "name": "e2e"}
    return tiny_cycle_config(tiny_dataset, tmp_path / "runs", **{**values, **overrides})


def _checksums(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


def _summary(run_dir: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((run_dir / "summary.csv").open()))


def test_two_round_cycle_end_to_end(tiny_dataset: Path, tmp_path: Path) -> None:
    before = _checksums(tiny_dataset)
    result = run_cycle(_tiny_config(tiny_dataset, tmp_path))
    run = tmp_path / "runs" / "e2e"
    assert result.run_dir == run
    assert [r.index for r in result.rounds] == [0, 1, 2]
    assert isinstance(result.rounds[-1].metrics, Metrics)

    # the run folder has what the README promises
    for name in ("config.yaml", "state.json", "summary.csv", "val/images", "val/labels"):
        assert (run / name).exists(), name
    for index in (0, 1, 2):
        round_dir = run / f"round_{index}"
        assert (round_dir / "train" / "weights" / "best.pt").is_file()
        meta = yaml.safe_load((round_dir / "data.yaml").read_text())
        assert Path(meta["val"]) == (run / "val" / "images").resolve()  # always the human-labeled val split
        assert Path(meta["train"]) == (round_dir / "dataset" / "images").resolve()
        assert json.loads((round_dir / "metrics.json").read_text())["index"] == index
    assert not (run / "round_0" / "pseudo").exists()

    # pseudo-labels: one file per pool image, a record row per box, and the dataset trains on the non-empty ones
    for index in (1, 2):
        pseudo = run / f"round_{index}" / "pseudo"
        labels = sorted(pseudo.glob("labels/*.txt"))
        assert len(labels) == 12
        rows = list(csv.DictReader((pseudo / "record.csv").open()))
        assert len(rows) == result.rounds[index].pseudo_boxes > 0
        non_empty = {p.stem for p in labels if p.read_text()}
        in_dataset = {p.stem for p in (run / f"round_{index}" / "dataset" / "labels" / "pseudo").glob("*.txt")}
        assert in_dataset == non_empty and len(in_dataset) == result.rounds[index].pseudo_images
        for line in labels[0].read_text().splitlines():
            cls, *xywh = line.split()
            assert 0 <= int(cls) < 5 and all(0.0 <= float(v) <= 1.0 for v in xywh)

    # later rounds fine-tune the best weights so far (the round guard may have rejected round 1)
    args = yaml.safe_load((run / "round_2" / "train" / "args.yaml").read_text())
    best_before = max(result.rounds[:2], key=lambda r: (r.accepted, r.metrics.map50_95, -r.index))
    assert Path(args["model"]) == best_before.weights.resolve() and result.rounds[2].trained_from == args["model"]
    assert (run / "weights" / "best.pt").read_bytes() == result.best.weights.read_bytes()

    rows = _summary(run)
    assert [int(r["round"]) for r in rows] == [0, 1, 2]
    assert {
        "images_used",
        "pseudo_boxes",
        "boxes_circle",
        "boxes_ring",
        "map50",
        "map50_95",
        "precision",
        "recall",
        "wall_time_s",
    } <= set(rows[0])
    assert int(rows[0]["pseudo_boxes"]) == 0 and int(rows[1]["images_used"]) == 8 + result.rounds[1].pseudo_images
    assert float(rows[2]["map50_95"]) == pytest.approx(result.rounds[2].metrics.map50_95, abs=1e-4)

    # the user's dataset is untouched: no label cache, no new file, no changed byte
    assert _checksums(tiny_dataset) == before


def test_round_guard_rejects_a_worse_round_and_restarts_from_the_best(
    tiny_dataset: Path, tmp_path: Path, tiny_weights: Path
) -> None:
    """Scripted val scores 0.30, 0.20, 0.35 (patience 2): round 1 is rejected, round 2 starts from round 0 and wins."""
    import shutil

    from yolossl.train import TrainResult

    scores = iter([0.30, 0.20, 0.35])
    starts: list[str] = []

    def scripted_training(model, data_yaml, save_dir, settings, on_epoch=None):
        starts.append(str(model))
        weights = save_dir / "weights" / "best.pt"
        weights.parent.mkdir(parents=True)
        shutil.copyfile(tiny_weights, weights)
        score = next(scores)
        return TrainResult(weights, Metrics(score + 0.2, score, 0.5, 0.5), save_dir, 0.1)

    result = run_cycle(_tiny_config(tiny_dataset, tmp_path, patience=2), trainer=scripted_training)
    run = result.run_dir
    assert [r.accepted for r in result.rounds] == [True, False, True]
    assert starts == ["yolo11n.yaml", str(result.rounds[0].weights), str(result.rounds[0].weights)]
    assert result.best.index == 2 and (run / "weights" / "best.pt").is_file()
    assert [r["accepted"] for r in _summary(run)] == ["True", "False", "True"]


def test_a_rejected_round_stops_the_cycle_with_patience_1(
    tiny_dataset: Path, tmp_path: Path, tiny_weights: Path
) -> None:
    import shutil

    from yolossl.train import TrainResult

    scores = iter([0.30, 0.20, 0.99])

    def scripted_training(model, data_yaml, save_dir, settings, on_epoch=None):
        weights = save_dir / "weights" / "best.pt"
        weights.parent.mkdir(parents=True)
        shutil.copyfile(tiny_weights, weights)
        score = next(scores)
        return TrainResult(weights, Metrics(score, score, 0.5, 0.5), save_dir, 0.1)

    result = run_cycle(_tiny_config(tiny_dataset, tmp_path, rounds=3), trainer=scripted_training)
    assert [r.index for r in result.rounds] == [0, 1] and result.best.index == 0
    assert not (result.run_dir / "round_2").exists()


def test_start_weights_skip_training_round_0(tiny_dataset: Path, tmp_path: Path, tiny_weights: Path) -> None:
    result = run_cycle(_tiny_config(tiny_dataset, tmp_path, rounds=1, start_weights=str(tiny_weights)))
    round_0 = result.rounds[0]
    assert round_0.trained_from == str(tiny_weights)
    assert round_0.weights.read_bytes() == tiny_weights.read_bytes()  # a copy, validated, not retrained
    assert not (result.run_dir / "round_0" / "train" / "results.csv").exists()
    assert 0.0 <= round_0.metrics.map50_95 <= 1.0


def test_from_scratch_restarts_each_round_from_the_model(tiny_dataset: Path, tmp_path: Path) -> None:
    run_cycle(_tiny_config(tiny_dataset, tmp_path, rounds=1, from_scratch=True))
    args = yaml.safe_load((tmp_path / "runs" / "e2e" / "round_1" / "train" / "args.yaml").read_text())
    assert args["model"] == "yolo11n.yaml"


def test_resume_extends_a_finished_run_without_redoing_rounds(tiny_dataset: Path, tmp_path: Path) -> None:
    first = run_cycle(_tiny_config(tiny_dataset, tmp_path, rounds=1))
    stamps = {r.index: r.weights.stat().st_mtime_ns for r in first.rounds}
    resumed = resume_cycle(first.run_dir, rounds=2)
    assert [r.index for r in resumed.rounds] == [0, 1, 2]
    assert {r.index: r.weights.stat().st_mtime_ns for r in resumed.rounds[:2]} == stamps
    assert yaml.safe_load((first.run_dir / "config.yaml").read_text())["rounds"] == 2


def test_existing_run_name_is_refused(tiny_dataset: Path, tmp_path: Path) -> None:
    (tmp_path / "runs" / "e2e").mkdir(parents=True)
    with pytest.raises(YolosslError, match="already exists"):
        run_cycle(_tiny_config(tiny_dataset, tmp_path))


def test_runs_get_fresh_folders(tiny_dataset: Path, tmp_path: Path) -> None:
    config = _tiny_config(tiny_dataset, tmp_path, rounds=0, name=None)
    assert run_cycle(config).run_dir.name == "exp"
    assert run_cycle(config).run_dir.name == "exp2"


def test_resume_of_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(YolosslError, match="not a yolossl run folder"):
        resume_cycle(tmp_path)


@pytest.mark.parametrize(
    ("saved", "ema"),
    [
        ({}, "ultralytics"),  # a run saved before the fitted EMA resumes on Ultralytics' own, as it started
        ({"loss": "pseudo-aware"}, "fitted"),  # the pseudo-aware trainer only fits its EMA now
        ({"ema": "fitted"}, "fitted"),
    ],
)
def test_a_resumed_run_keeps_the_ema_it_started_with(tmp_path: Path, saved: dict, ema: str) -> None:
    from yolossl.cycle.state import read_run_config

    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"data": "d.yaml", "rounds": 2, **saved}))
    assert read_run_config(tmp_path).ema == ema


def test_a_run_saved_before_the_online_default_resumes_offline(tmp_path: Path) -> None:
    """`mode` became `online` by default on 29 Nov: a config.yaml without it was an offline run, and stays one."""
    from yolossl.cycle.state import read_run_config

    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"data": "d.yaml", "rounds": 2, "fixmatch": True}))
    resumed = read_run_config(tmp_path)
    assert (resumed.mode, resumed.fixmatch) == ("offline", True)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"data": "d.yaml", "mode": "online"}))
    assert read_run_config(tmp_path).mode == "online"


def test_a_resumed_online_run_keeps_the_length_and_views_it_started_with(tmp_path: Path) -> None:
    from yolossl.cycle.state import read_run_config

    saved = {"data": "d.yaml", "rounds": 2, "round_epochs": 3, "mode": "online"}  # before online_epochs existed
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(saved))
    old = read_run_config(tmp_path)
    assert (old.online_epochs, old.strong_scale, old.strong_translate) == (6, 0.0, 0.0)
    assert old.online_val  # validated every epoch, as round 0 did (Ultralytics' default)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({**saved, "train_args": {"val": False}}))
    assert not read_run_config(tmp_path).online_val
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({**saved, "strong_scale": 0.3}))  # set, then kept
    assert read_run_config(tmp_path).strong_scale == 0.3
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({**saved, "rounds": 0}))  # round 0 alone, then extended
    assert read_run_config(tmp_path).online_epochs == 1
    extended = read_run_config(tmp_path, rounds=2)
    assert (extended.rounds, extended.online_epochs) == (2, 6)
    assert read_run_config(tmp_path).online_epochs == 6  # saved with the extension
    with pytest.raises(YolosslError, match=r"an online run's rounds share one schedule, set when it started"):
        read_run_config(tmp_path, rounds=3)  # one run, already set: more rounds would change nothing, silently
    assert read_run_config(tmp_path, rounds=2).rounds == 2  # the same rounds again: a plain resume
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({**saved, "online_epochs": None}))
    new = read_run_config(tmp_path)
    assert (new.online_epochs, new.strong_scale, new.strong_translate) == (None, 0.5, 0.1)
    assert new.online_val  # no online_val saved: it validated every epoch then
    save_config(CycleConfig(data="d.yaml", mode="online"), tmp_path / "config.yaml")
    assert read_run_config(tmp_path).online_val is False  # saved with every config now
    assert read_run_config(tmp_path).online_rounds  # and the online run in rounds
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(saved))
    assert not read_run_config(tmp_path).online_rounds  # saved when the online run was one round: it stays one


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "yolossl", "cycle", *args]


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"the run ended before {path} appeared, where it was to be killed"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


@pytest.fixture(scope="module")
def interruptible(tmp_path_factory) -> tuple[list[str], Path]:
    """A tiny dataset with a 400-image pool (labeling takes a few seconds at batch 1), and an uninterrupted run."""
    from yolossl.demo import DemoSpec, write_demo_dataset

    root = tmp_path_factory.mktemp("interruptible")
    write_demo_dataset(root / "data", DemoSpec(n_labeled=8, n_unlabeled=400, n_val=6, size=64, seed=3))
    options = [
        "--data",
        str(root / "data" / "data.yaml"),
        "-u",
        str(root / "data" / "unlabeled"),
        "--rounds",
        "1",
        "--epochs",
        "1",
        "--round-epochs",
        "2",
        "--imgsz",
        "64",
        "--batch",
        "1",
        "--conf",
        "0.002",
        "--mode",
        "offline",
        "--device",
        "cpu",
        "--workers",
        "0",
        "--project",
        str(root / "runs"),
        "--no-control",  # its length follows the clock; its resume is pinned in test_control.py
        "-q",
    ]
    subprocess.run(_cli(*options, "--name", "whole"), check=True, env=_ENV, capture_output=True)
    return options, root / "runs" / "whole"


_ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


@pytest.mark.parametrize(
    ("step", "marker"),
    [
        ("predicting and writing labels", "round_1/pseudo.partial/record.csv"),
        ("training", "round_1/train/weights/last.pt"),  # epoch 1 of 2 saved
    ],
)
def test_killed_run_resumes_to_the_same_result(step: str, marker: str, interruptible, tmp_path: Path) -> None:
    """SIGKILL in the middle of a step; --resume must finish with the uninterrupted run's labels and summary."""
    options, whole = interruptible
    name = f"killed-{marker.split('/')[1].split('.')[0]}"
    proc = subprocess.Popen(
        _cli(*options, "--name", name), env=_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    killed = whole.parent / name
    _wait_for(killed / marker, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "round_1" / "metrics.json").exists(), f"the run finished before being killed while {step}"

    subprocess.run(_cli("--resume", str(killed), "-q"), check=True, env=_ENV, capture_output=True)
    drop = {"wall_time_s"}
    assert [{k: v for k, v in r.items() if k not in drop} for r in _summary(killed)] == [
        {k: v for k, v in r.items() if k not in drop} for r in _summary(whole)
    ]
    labels = sorted((whole / "round_1" / "pseudo" / "labels").glob("*.txt"))
    assert len(labels) == 400
    for label in labels:
        assert label.read_bytes() == (killed / "round_1" / "pseudo" / "labels" / label.name).read_bytes()
    assert not (killed / "round_1" / "pseudo.partial").exists()


@pytest.mark.parametrize(
    ("setting", "n_labeled", "n_pseudo", "expected"),
    [(1, 100, 900, 1), (4, 100, 900, 4), (None, 100, 900, 5), (None, 100, 150, 1), (None, 100, 0, 1), (None, 0, 9, 1)],
)
def test_labeled_repeat(setting, n_labeled: int, n_pseudo: int, expected: int) -> None:
    from yolossl.merge import labeled_repeat

    assert labeled_repeat(setting, n_labeled, n_pseudo) == expected
    if setting is None and n_labeled and n_pseudo:
        assert n_labeled * expected >= (n_labeled * expected + n_pseudo) / 3  # labels stay a third or more


def test_the_run_keeps_its_log_and_reports_progress(tiny_dataset: Path, tmp_path: Path) -> None:
    events = []
    result = run_cycle(_tiny_config(tiny_dataset, tmp_path, rounds=1), on_progress=events.append)
    log = (result.run_dir / "cycle.log").read_text()
    assert "Round 0: training from yolo11n.yaml" in log and "Round 1: labeled 12 images" in log
    steps = {(e.round, e.step) for e in events}
    assert {(0, "merge"), (0, "train"), (1, "label"), (1, "merge"), (1, "train")} <= steps
    last_label = [e for e in events if e.step == "label"][-1]
    assert last_label.done == last_label.total == 12
    assert [e.done for e in events if e.round == 0 and e.step == "train"][-1] == 1  # epoch 1 of 1


def _saturating(tiny_weights: Path, first: float, curve, calls: list[tuple]):
    """A trainer: round 0's first run scores `first`; a run given a saturation watch is validated where the watch
    asks, scores `curve(epoch)` there, and stops when the watch says so. Records (model, save_dir, settings,
    validated epochs)."""
    import shutil

    from yolossl.train import TrainResult

    def training(model, data_yaml, save_dir, settings, on_epoch=None, watch=None):
        validated: list[int] = []
        calls.append((str(model), save_dir, settings, validated))
        weights = save_dir / "weights" / "best.pt"
        weights.parent.mkdir(parents=True)
        shutil.copyfile(tiny_weights, weights)
        score = first
        if watch is not None:
            for epoch in range(1, settings.epochs + 1):
                if watch.validates(epoch):
                    validated.append(epoch)
                    if watch.observe(epoch, curve(epoch)):
                        break
            score = watch.best()[1]
        return TrainResult(weights, Metrics(score, score, 0.5, 0.5), save_dir, 0.1)

    return training


def _saturate_config(tiny_dataset: Path, tmp_path: Path, **overrides) -> CycleConfig:
    rule = {"saturate_every": 5, "saturate_window": 30, "saturate_min_gain": 0.01, "saturate_epochs": 500}
    return _tiny_config(tiny_dataset, tmp_path, rounds=0, epochs=10, **{**rule, **overrides})


def test_round0_saturates_in_one_continued_run_and_a_plateau_stops_it(
    tiny_dataset: Path, tmp_path: Path, tiny_weights: Path
) -> None:
    """Rising to 0.40 at epoch 20, flat after: the best of the last 30 epochs is not 0.01 above the best before them
    first at epoch 50. One run after round 0's first: nothing replayed, no warm restart."""
    calls: list[tuple] = []
    curve = lambda epoch: 0.30 + 0.005 * min(epoch, 20)  # noqa: E731
    result = run_cycle(_saturate_config(tiny_dataset, tmp_path), trainer=_saturating(tiny_weights, 0.30, curve, calls))
    run = result.run_dir / "round_0"
    assert [save_dir for _, save_dir, _, _ in calls] == [run / "train", run / "saturate"]
    model, _, settings, validated = calls[1]
    assert model == str(run / "train" / "weights" / "best.pt")  # continues round 0's model
    assert validated == list(range(5, 55, 5))  # every 5 epochs, stopped at 50 of at most 500
    # the rounds' regime: constant rate, no warm-up; the watch, not Ultralytics' patience, ends it; human labels only
    assert settings.epochs == 500 and settings.loss == "ultralytics" and settings.extra["patience"] > 500
    assert settings.extra["warmup_epochs"] == 0.0 and settings.extra["lrf"] == 1.0
    record = json.loads((run / "saturation.json").read_text())
    assert record["saturated"] is True and record["done"] is True and record["best_epoch"] == 20
    assert [e for e, _ in record["curve"]] == [0, *validated] and record["curve"][0][1] == pytest.approx(0.30)
    assert record["rule"] == {"every": 5, "window": 30, "min_gain": 0.01}
    round0 = result.rounds[0]
    assert round0.metrics.map50_95 == pytest.approx(0.40) and round0.weights == run / "saturate" / "weights" / "best.pt"
    assert round0.epochs == 10 + 50


def test_a_slow_climb_is_not_saturation(tiny_dataset: Path, tmp_path: Path, tiny_weights: Path, caplog) -> None:
    """+0.015 per 30 epochs (above the 0.01 that counts): it runs to its cap and says it did not saturate."""
    calls: list[tuple] = []
    curve = lambda epoch: 0.30 + 0.0005 * epoch  # noqa: E731
    config = _saturate_config(tiny_dataset, tmp_path, saturate_epochs=100)
    result = run_cycle(config, trainer=_saturating(tiny_weights, 0.30, curve, calls))
    assert calls[1][3][-1] == 100 and len(calls) == 2
    record = json.loads((result.run_dir / "round_0" / "saturation.json").read_text())
    assert record["saturated"] is False and record["done"] is True
    assert "NOT saturated after 100 more epochs" in caplog.text
    assert result.rounds[0].metrics.map50_95 == pytest.approx(0.35)


def test_a_saturation_run_that_never_beats_round0_keeps_round0(
    tiny_dataset: Path, tmp_path: Path, tiny_weights: Path
) -> None:
    calls: list[tuple] = []
    config = _saturate_config(tiny_dataset, tmp_path)
    result = run_cycle(config, trainer=_saturating(tiny_weights, 0.50, lambda epoch: 0.45, calls))
    run = result.run_dir / "round_0"
    assert calls[1][3] == [5, 10, 15, 20, 25, 30]  # the start (epoch 0) is a point: 30 epochs on, it is decided
    assert result.rounds[0].weights == run / "train" / "weights" / "best.pt"
    assert result.rounds[0].metrics.map50_95 == 0.50 and result.rounds[0].epochs == 10 + 30


def test_saturation_continues_start_weights(tiny_dataset: Path, tmp_path: Path, tiny_weights: Path) -> None:
    """The user's own model as round 0: validated, then trained on until saturated."""
    calls: list[tuple] = []
    config = _saturate_config(tiny_dataset, tmp_path, start_weights=str(tiny_weights))
    result = run_cycle(config, trainer=_saturating(tiny_weights, 0.0, lambda epoch: 0.9, calls))
    run = result.run_dir / "round_0"
    assert len(calls) == 1 and calls[0][0] == str(run / "train" / "weights" / "best.pt")
    assert result.rounds[0].epochs == 35 and result.rounds[0].metrics.map50_95 == 0.9


@pytest.mark.parametrize(
    ("curve", "saturated"),
    [
        ([(0, 0.30), (10, 0.35), (20, 0.355), (30, 0.356)], True),  # +0.006 within the last 20 epochs
        ([(0, 0.30), (10, 0.35), (20, 0.36), (30, 0.371)], False),  # +0.021 within them
        ([(0, 0.30), (10, 0.30)], False),  # no full window behind it yet: undecided
        ([(0, 0.40), (10, 0.30), (20, 0.31), (30, 0.32)], True),  # nothing beat the start by the gain that counts
    ],
)
def test_the_saturation_rule(curve: list, saturated: bool) -> None:
    from yolossl.train.saturation import SaturationRule

    assert SaturationRule(every=10, window=20, min_gain=0.01).saturated(curve) is saturated


def test_saturation_stops_ultralytics_training(tiny_dataset: Path, tmp_path: Path) -> None:
    """The watch drives Ultralytics' own trainer: validated each epoch (every 1), stopped once saturated (a gain of
    1.0 never comes: decided at epoch 2 of at most 5)."""
    config = _tiny_config(
        tiny_dataset, tmp_path, rounds=0, saturate_epochs=5, saturate_every=1, saturate_window=2, saturate_min_gain=1.0
    )
    result = run_cycle(config)
    saturate = result.run_dir / "round_0" / "saturate"
    assert len((saturate / "results.csv").read_text().strip().splitlines()) == 1 + 2  # header + 2 epochs
    record = json.loads((result.run_dir / "round_0" / "saturation.json").read_text())
    assert [e for e, _ in record["curve"]] == [0, 1, 2] and record["saturated"] is True
    assert result.rounds[0].epochs == 1 + 2


@pytest.mark.parametrize("schedule", ["continue", "fresh"])
def test_rounds_after_round0_train_on_the_round_schedule(
    tiny_dataset: Path, tmp_path: Path, tiny_weights: Path, schedule: str
) -> None:
    calls: list[tuple] = []
    config = _tiny_config(
        tiny_dataset, tmp_path, rounds=1, round_schedule=schedule, round_lr_scale=0.25, train_args={"mosaic": 0.5}
    )
    run_cycle(config, trainer=_saturating(tiny_weights, 0.30, None, calls))
    round0, round1 = (settings.extra for _, _, settings, _ in calls)
    assert round0 == {"mosaic": 0.5}  # round 0 is trained as Ultralytics would
    if schedule == "fresh":
        assert round1 == {"mosaic": 0.5}
    else:  # no warm-up; constant: a quarter of the AdamW rate Ultralytics picks for 5 classes
        assert round1 == {
            "optimizer": "AdamW",
            "lr0": 0.001111 * 0.25,
            "lrf": 1.0,
            "warmup_epochs": 0.0,
            "mosaic": 0.5,
        }


def test_a_second_process_on_a_busy_run_folder_is_refused_and_the_lock_dies_with_its_holder(tmp_path: Path) -> None:
    """The lock is the OS's (flock): a holder SIGKILLed mid-run leaves nothing that refuses the resume."""
    from yolossl.cycle.state import run_lock

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump({"data": str(tmp_path / "d.yaml"), "mode": "offline"}))
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from pathlib import Path; from yolossl.cycle.state import run_lock\n"
            f"with run_lock(Path({str(run)!r})):\n    print('held', flush=True)\n    import time; time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        refused = subprocess.run(_cli("--resume", str(run)), capture_output=True, text=True, timeout=120)
        assert refused.returncode == 2
        assert f"{run}: in use by another yolossl process (pid {holder.pid}); wait for it to end or stop it" in (
            refused.stderr
        )
        assert len(refused.stderr.strip().splitlines()) == 1
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with run_lock(run):  # free again, at once: the kernel dropped the dead holder's lock
        assert (run / ".lock").read_text().strip() == str(os.getpid())


def test_a_python_caller_sees_the_runs_warnings_and_ultralytics_only_when_asked(tmp_path: Path, capsys, monkeypatch):
    """As a library logs: with no handler for yolossl's logger (a plain script), a run's warnings still reach stderr
    (cycle.log's handler used to swallow them), INFO goes to cycle.log only, and Ultralytics' per-epoch output is
    quiet while the run executes unless its level was chosen (DEBUG: all of it)."""
    import logging

    from ultralytics.utils import LOGGER

    from yolossl.cycle.state import logging_to_run_folder

    package, log = logging.getLogger("yolossl"), logging.getLogger("yolossl.cycle.loop")
    monkeypatch.setattr(package, "handlers", [])
    monkeypatch.setattr(package, "propagate", False)  # reaches no handler, as when logging is not set up
    level = LOGGER.level
    try:
        LOGGER.setLevel(logging.INFO)  # as Ultralytics sets itself up
        with logging_to_run_folder(tmp_path):
            assert LOGGER.level == logging.WARNING
            log.warning("Round 1: no pseudo-labels (every class out of reach)")
            log.info("Round 1: training")
        assert LOGGER.level == logging.INFO
        LOGGER.setLevel(logging.DEBUG)  # asked for
        with logging_to_run_folder(tmp_path):
            assert LOGGER.level == logging.DEBUG
    finally:
        LOGGER.setLevel(level)
    err = capsys.readouterr().err
    assert "Round 1: no pseudo-labels (every class out of reach)" in err and "training" not in err
    assert "Round 1: training" in (tmp_path / "cycle.log").read_text()
    assert package.handlers == []
