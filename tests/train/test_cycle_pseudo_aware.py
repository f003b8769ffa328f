"""A cycle with `--loss pseudo-aware`: each round's targets reach the trainer, and a killed run resumes."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import yaml

from tests.conftest import killed_and_resumed, tiny_cycle_config
from yolossl import run_cycle
from yolossl._fs import link_file
from yolossl.data import scan_image_folders
from yolossl.label import ClassThresholds, LabelStats
from yolossl.label.record import RecordRow, RecordWriter
from yolossl.train import train_detector
from yolossl.train.targets import DATA_KEY, LossRules, load_pseudo_targets


def _scripted_labeler(pool_folder: Path):
    """A labeler with known output: 4 of the pool's images keep a class-0 box and have a class-1 box in the
    uncertain band; every image has a class-2 candidate, a class whose threshold is out of reach."""

    def label(index: int, weights: Path, round_dir: Path, advance) -> LabelStats:
        out = round_dir / "pseudo"
        (out / "images").mkdir(parents=True)
        (out / "labels").mkdir()
        rows = []
        for k, item in enumerate(scan_image_folders([str(pool_folder)]).images):
            link_file(item.path, out / "images" / f"{item.id}{item.path.suffix}")
            kept = k < 4
            (out / "labels" / f"{item.id}.txt").write_text("0 0.500000 0.500000 0.300000 0.300000\n" if kept else "")
            if kept:
                rows.append(RecordRow(item.id, str(item.path), 0, "a", 0.9, (0.5, 0.5, 0.3, 0.3), "kept", ""))
                rows.append(RecordRow(item.id, str(item.path), 1, "b", 0.3, (0.2, 0.2, 0.1, 0.1), "uncertain", ""))
            rows.append(RecordRow(item.id, str(item.path), 2, "c", 0.2, (0.8, 0.8, 0.1, 0.1), "dropped", ""))
        with RecordWriter(out / "record.csv") as record:
            record.write(rows)
        ClassThresholds({0: 0.5, 1: 0.8, 2: math.inf, 3: 0.5, 4: 0.5}, 0.1, "scripted").save(out / "thresholds.json")
        return LabelStats(images=12, images_with_boxes=4, kept=4, uncertain=4, dropped=12)

    return label


def test_a_one_round_cycle_trains_round_1_with_its_pseudo_targets(tiny_dataset: Path, tmp_path: Path) -> None:
    losses = []

    def trainer(model, data_yaml, save_dir, settings, on_epoch):  # the real trainer, watched
        losses.append((settings.loss, DATA_KEY in yaml.safe_load(data_yaml.read_text())))
        return train_detector(model, data_yaml, save_dir, settings, on_epoch)

    config = tiny_cycle_config(tiny_dataset, tmp_path, loss="pseudo-aware", lambda_u=0.5)
    result = run_cycle(config, trainer=trainer, labeler=_scripted_labeler(tiny_dataset / "unlabeled"))
    assert [r.index for r in result.rounds] == [0, 1] and result.rounds[1].pseudo_images == 4
    assert losses == [("pseudo-aware", False), ("pseudo-aware", True)]  # round 0 has no pseudo images

    round_1 = result.run_dir / "round_1"
    targets = load_pseudo_targets(Path(yaml.safe_load((round_1 / "data.yaml").read_text())[DATA_KEY]))
    assert targets.rules == LossRules(lambda_u=0.5, box_min_score=0.5, no_threshold_classes=(2,))
    assert len(targets.images) == 4
    for image in targets.images.values():
        assert image.kept == [(0, 0.9, 0.5, 0.5, 0.3, 0.3)]
        # the uncertain box and the dropped one: ignore regions by default (LossRules.unsure)
        assert image.unsure == [(1, 0.3, 0.2, 0.2, 0.1, 0.1), (2, 0.2, 0.8, 0.8, 0.1, 0.1)] and image.ignore == []
    log = (result.run_dir / "cycle.log").read_text()
    line = "Round 1: pseudo-aware loss: 8 unsure boxes (ignore regions) on 4 images; no background loss for classes: "
    assert line + result.class_names[2] + "\n" in log


def test_a_killed_pseudo_aware_run_resumes_to_the_same_result(tmp_path: Path) -> None:
    """SIGKILL after round 1's first epoch (of 2); --resume ends with the uninterrupted run's summary."""
    options = [
        *("--rounds", "1", "--epochs", "1", "--round-epochs", "2", "--imgsz", "64", "--batch", "8"),
        *("--conf", "0.002", "--loss", "pseudo-aware", "--mode", "offline", "--device", "cpu", "--workers", "0"),
        "--no-control",  # its length follows the clock; its resume is pinned in tests/test_control.py
    ]
    whole, killed = killed_and_resumed(tmp_path, options)

    def summary(run: Path) -> list[dict[str, str]]:
        return [
            {k: v for k, v in r.items() if k != "wall_time_s"} for r in csv.DictReader((run / "summary.csv").open())
        ]

    assert summary(killed) == summary(whole)
    assert summary(killed)[1]["pseudo_images"] == "12"  # round 1 trained on pseudo-labels, with our trainer
    assert yaml.safe_load((killed / "config.yaml").read_text())["uncertain"] == "keep"
