from __future__ import annotations

from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from yolossl.cli import app

runner = CliRunner()


def _tiny_args(tiny_dataset: Path, tmp_path: Path) -> list[str]:
    return [
        "--data",
        str(tiny_dataset / "data.yaml"),
        "--unlabeled",
        str(tiny_dataset / "unlabeled"),
        "--epochs",
        "1",
        "--round-epochs",
        "1",
        "--imgsz",
        "64",
        "--batch",
        "8",
        "--device",
        "cpu",
        "--workers",
        "0",
        "--project",
        str(tmp_path / "runs"),
    ]


def test_every_option_is_explained_in_one_line() -> None:
    cycle = typer.main.get_command(app).commands["cycle"]
    for param in cycle.params:
        text = getattr(param, "help", None)
        assert text and "\n" not in text, f"{param.name} has no one-line help"
    result = runner.invoke(app, ["cycle", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for flag in (
        "--data",
        "--unlabeled",
        "--rounds",
        "--model",
        "--conf",
        "--epochs",
        "--imgsz",
        "--batch",
        "--device",
        "--name",
        "--project",
        "--seed",
        "--resume",
        "--from-scratch",
        "--config",
    ):
        assert flag in result.output
    assert "yolossl[ray]" in result.output  # extras' brackets survive rich markup
    assert runner.invoke(app, ["--help"]).exit_code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "missing.yaml"], "missing.yaml: data YAML not found"),
        (["--conf", "2"], "conf must be between 0 and 1"),
        (["--config", "nope.yaml"], "nope.yaml: config file not found"),
        (["--train-arg", "mosaic"], "--train-arg expects key=value"),
        (["--resume", "."], "not a yolossl run folder"),
    ],
)
def test_user_mistakes_are_one_line_and_exit_2(args: list[str], message: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["cycle", *args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()  # nothing is created for a run that cannot start


def test_missing_unlabeled_folder_is_named(tiny_dataset: Path, tmp_path: Path) -> None:
    args = _tiny_args(tiny_dataset, tmp_path)
    args[args.index("--unlabeled") + 1] = str(tmp_path / "cams")
    result = runner.invoke(app, ["cycle", *args])
    assert result.exit_code == 2
    assert f"{tmp_path / 'cams'}: unlabeled folder not found" in result.stderr


def test_cycle_from_the_command_line(tiny_dataset: Path, tmp_path: Path) -> None:
    config = tmp_path / "cycle.yaml"
    config.write_text(yaml.safe_dump({"rounds": 3, "conf": 0.2, "seed": 7}))
    extra = str(tiny_dataset / "unlabeled")  # a positional folder is one more --unlabeled
    args = [
        *_tiny_args(tiny_dataset, tmp_path),
        "--config",
        str(config),
        "--rounds",
        "1",
        "--name",
        "cli",
        "--train-arg",
        "mosaic=0.0",
        "-q",
        extra,
    ]
    result = runner.invoke(app, ["cycle", *args])
    assert result.exit_code == 0, result.output + result.stderr
    run = tmp_path / "runs" / "cli"
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["rounds"] == 1 and saved["conf"] == 0.2 and saved["seed"] == 7  # command line over file
    assert saved["train_args"] == {"mosaic": 0.0}
    assert saved["unlabeled"] == [extra, extra]
    assert yaml.safe_load((run / "round_1" / "train" / "args.yaml").read_text())["mosaic"] == 0.0
    assert "mAP50-95" in result.output and str(run / "summary.csv") in result.output.replace("\n", "")


def test_no_data_runs_the_bundled_demo(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["cycle", "--rounds", "0", "--epochs", "1", "--imgsz", "64", "--device", "cpu", "-q"])
    assert result.exit_code == 0, result.output + result.stderr
    saved = yaml.safe_load((tmp_path / "runs/cycle/exp/config.yaml").read_text())
    assert saved["data"] == str((tmp_path / "datasets/demo/data.yaml").resolve())
    assert saved["unlabeled"] == [str((tmp_path / "datasets/demo/unlabeled").resolve())]
    assert saved["train_args"] == {"nbs": 16} and saved["imgsz"] == 64  # the demo's settings, the command line's imgsz
