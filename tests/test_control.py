"""The labels-alone control every run shows: trained for the rounds' wall time, in the table, summary.csv, the
report and one sentence."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from tests.conftest import TINY, tiny_cycle_config
from yolossl import resume_cycle, run_cycle
from yolossl.cycle.control import CONTROL_FILE, ControlResult, verdict
from yolossl.demo import write_demo_dataset
from yolossl.train import Metrics


@pytest.fixture
def tested_dataset(tmp_path: Path) -> Path:
    root = tmp_path / "tiny"
    write_demo_dataset(root, replace(TINY, n_test=4))
    return root


def test_a_run_trains_its_control_for_the_rounds_time_and_says_what_the_images_added(
    tested_dataset: Path, tmp_path: Path
) -> None:
    result = run_cycle(tiny_cycle_config(tested_dataset, tmp_path / "runs", control=True))
    run, control = result.run_dir, result.control
    assert control is not None and control.test is not None

    # Round 0 trained on, on the labels alone, with Ultralytics' time budget: the rounds' wall time.
    args = yaml.safe_load((run / "labels_alone" / "args.yaml").read_text())
    assert Path(args["model"]) == result.rounds[0].weights.resolve()
    assert Path(args["data"]) == result.rounds[0].data_yaml
    assert args["time"] == pytest.approx(sum(r.wall_time_s for r in result.rounds[1:]) / 3600, rel=1e-3)
    assert control.budget_s == pytest.approx(sum(r.wall_time_s for r in result.rounds[1:]), abs=0.01)
    assert control.epochs >= 1 and control.weights.is_file()

    rows = list(csv.DictReader((run / "summary.csv").open()))
    for row, r in zip(rows, result.rounds, strict=True):
        assert float(row["labels_alone_map50_95"]) == pytest.approx(control.metrics.map50_95, abs=1e-4)
        assert float(row["labels_alone_test_map50_95"]) == pytest.approx(control.test.map50_95, abs=1e-4)
        assert row["vs_labels_alone_on"] == "test"  # both have test figures: test chose nothing
        assert float(row["vs_labels_alone"]) == pytest.approx(r.test.map50_95 - control.test.map50_95, abs=2e-4)

    record = json.loads((run / CONTROL_FILE).read_text())
    gain = result.best.test.map50_95 - control.test.map50_95
    assert record["verdict"] == verdict(result.best.metrics, result.best.test, control)
    assert f"{gain:+.3f} mAP50-95 on test" in record["verdict"]
    report = (run / "report.html").read_text()
    assert "labels alone, same time" in report and record["verdict"].split(":")[0] in report

    # A resumed run reads its control back: it is not trained again.
    stamp = (run / "labels_alone" / "weights" / "best.pt").stat().st_mtime_ns
    again = resume_cycle(run)
    assert again.control == control
    assert (run / "labels_alone" / "weights" / "best.pt").stat().st_mtime_ns == stamp


def test_the_control_can_be_switched_off(tiny_dataset: Path, tmp_path: Path) -> None:
    result = run_cycle(tiny_cycle_config(tiny_dataset, tmp_path / "runs", control=False))
    assert result.control is None
    assert not (result.run_dir / "labels_alone").exists() and not (result.run_dir / CONTROL_FILE).exists()
    assert "labels_alone_map50_95" not in (result.run_dir / "summary.csv").read_text()


@pytest.mark.parametrize(
    ("final", "control", "said"),
    [
        (0.40, 0.30, "The unlabeled images added +0.100 mAP50-95 on val over the labels alone"),
        (0.30, 0.40, "The unlabeled images did not beat the labels alone trained for the same time"),
        (0.30, 0.30, "did not beat"),  # a tie is no gain
    ],
)
def test_the_verdict_is_one_plain_sentence(final: float, control: float, said: str) -> None:
    def metrics(value: float) -> Metrics:
        return Metrics(0.5, value, 0.5, 0.5)

    labels_alone = ControlResult(metrics(control), None, Path("c/best.pt"), 12, 300.0, 301.0)
    sentence = verdict(metrics(final), None, labels_alone)
    assert said in sentence and "(300 s, 12 epochs from round 0)" in sentence
    assert sentence.count(".") <= 3 and "\n" not in sentence


def test_the_cli_shows_the_control_row_and_the_sentence(tiny_dataset: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from yolossl.cli import app

    args = ["cycle", "--data", str(tiny_dataset / "data.yaml"), "-u", str(tiny_dataset / "unlabeled"), "--rounds", "1"]
    args += ["--epochs", "1", "--round-epochs", "1", "--imgsz", "64", "--batch", "8", "--mode", "offline"]
    args += ["--device", "cpu", "--workers", "0", "--conf", "0.003", "--project", str(tmp_path), "--name", "c", "-q"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "c" / CONTROL_FILE).read_text())
    assert "labels alone" in result.output and record["verdict"] in " ".join(result.output.split())
