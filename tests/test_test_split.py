"""The data YAML's `test:` split is scored and never chosen on: thresholds, the round guard and the final model
see only val."""

from __future__ import annotations

import csv
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from tests.conftest import TINY, tiny_cycle_config
from yolossl import run_cycle
from yolossl.data import load_data_yaml
from yolossl.demo import write_demo_dataset
from yolossl.train import Metrics, TrainResult

VAL_SCORES = [0.30, 0.35, 0.32]  # val: round 1 is the best, round 2 is rejected by the guard
TEST_SCORES = {0: 0.90, 1: 0.10, 2: 0.95}  # test ranks the rounds the other way round


@pytest.fixture
def tested_dataset(tmp_path: Path) -> Path:
    root = tmp_path / "tested"
    write_demo_dataset(root, replace(TINY, n_test=4))
    return root


def _image_names(data_yaml: Path) -> set[str]:
    spec = load_data_yaml(data_yaml)
    return {item.path.resolve().name for item in spec.train_items() + spec.val_items() + spec.test_items()}


def test_the_test_split_reaches_no_threshold_guard_or_final_model(
    tested_dataset: Path, tmp_path: Path, tiny_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    test_names = {p.name for p in (tested_dataset / "test" / "images").iterdir()}
    trained_on: list[Path] = []
    scores = iter(VAL_SCORES)

    def scripted_trainer(model, data_yaml, save_dir, settings, on_epoch=None):
        trained_on.append(Path(data_yaml))
        weights = save_dir / "weights" / "best.pt"
        weights.parent.mkdir(parents=True)
        shutil.copyfile(tiny_weights, weights)
        score = next(scores)
        return TrainResult(weights, Metrics(score, score, 0.5, 0.5), save_dir, 0.1)

    threshold_images: list[str] = []
    import yolossl.cycle.labeler as labeler

    real_choose = labeler.choose_thresholds

    def recording_choose(detector, items, *args, **kwargs):
        threshold_images.extend(item.path.resolve().name for item in items)
        return real_choose(detector, items, *args, **kwargs)

    scored: list[tuple[Path, Path]] = []

    def scripted_scorer(weights, data_yaml, settings):
        scored.append((Path(weights), Path(data_yaml)))
        index = int(next(part for part in Path(weights).parts if part.startswith("round_")).split("_")[1])
        return Metrics(TEST_SCORES[index], TEST_SCORES[index], 0.5, 0.5)

    monkeypatch.setattr(labeler, "choose_thresholds", recording_choose)
    monkeypatch.setattr("yolossl.cycle.loop.validate_detector", scripted_scorer)
    config = tiny_cycle_config(tested_dataset, tmp_path / "runs", rounds=2, mode="offline")
    result = run_cycle(config, trainer=scripted_trainer)

    # the round guard and the final model follow val alone
    assert [r.accepted for r in result.rounds] == [True, True, False]
    assert result.best.index == 1 and result.best.test.map50_95 == TEST_SCORES[1]
    assert result.weights.read_bytes() == result.rounds[1].weights.read_bytes()
    # nothing trained or chose thresholds on a test image
    assert len(trained_on) == 3 and not any(_image_names(y) & test_names for y in trained_on)
    assert threshold_images and not set(threshold_images) & test_names
    # ... and every round was scored on test, on a YAML of its own, after its choices were made
    test_yaml = result.run_dir / "test" / "data.yaml"
    assert [y for _, y in scored] == [test_yaml] * 3 and _image_names(test_yaml) == test_names
    rows = list(csv.DictReader((result.run_dir / "summary.csv").open()))
    assert [float(r["test_map50_95"]) for r in rows] == [0.90, 0.10, 0.95]
    assert [float(r["map50_95"]) for r in rows] == VAL_SCORES
    log = (result.run_dir / "cycle.log").read_text()
    assert "Final model on test: mAP50 0.100, mAP50-95 0.100 (chosen on val; test chose nothing)" in log
    assert "4 test images (scored, never chosen on)" in log


def test_a_pool_copy_of_a_test_image_is_left_out(tested_dataset: Path, tmp_path: Path) -> None:
    """Training on a test image would make its score a memory test: the leakage guard covers test as val."""
    from yolossl.cycle.inputs import read_inputs

    pool = tested_dataset / "unlabeled"
    copied = sorted((tested_dataset / "test" / "images").iterdir())[0]
    shutil.copyfile(copied, pool / "copy_of_test.jpg")
    config = tiny_cycle_config(tested_dataset, tmp_path / "runs", rounds=1)
    inputs = read_inputs(config, Path("config.yaml"))
    assert len(inputs.test) == 4 and len(inputs.leaks) == 1
    assert all(item.path.name != "copy_of_test.jpg" for item in inputs.pool.images)
