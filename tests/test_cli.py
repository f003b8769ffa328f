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


def test_the_demo_fills_in_only_the_options_not_given(tmp_path: Path, tiny_dataset: Path, monkeypatch) -> None:
    """`yolossl cycle --imgsz 640` on the demo trains at 640, and a config file's `round_epochs: 10` stays 10, though
    both equal the defaults the demo fills in when they are not given; the options given nowhere get the demo's."""
    import yolossl.cycle
    import yolossl.demo
    from yolossl.demo import DEMO_CYCLE_DEFAULTS
    from yolossl.errors import YolosslError

    def stop(*args) -> None:  # the run's config.yaml is written before its rounds: no training needed to read it
        raise YolosslError("stopped before round 0")

    monkeypatch.setattr(yolossl.demo, "ensure_demo_dataset", lambda root: tiny_dataset / "data.yaml")
    monkeypatch.setattr(yolossl.cycle, "_cycle_class", lambda config: stop)
    (tmp_path / "cycle.yaml").write_text("round_epochs: 10\n")
    args = ["--imgsz", "640", "--config", str(tmp_path / "cycle.yaml"), "-u", str(tiny_dataset / "unlabeled")]
    result = runner.invoke(app, ["cycle", *args, "--project", str(tmp_path / "runs"), "--name", "demo", "-q"])
    assert "stopped before round 0" in result.output, result.output
    saved = yaml.safe_load((tmp_path / "runs/demo/config.yaml").read_text())
    assert saved["data"] == str(tiny_dataset / "data.yaml")
    assert (saved["imgsz"], saved["round_epochs"]) == (640, 10)  # given, at their default values
    assert (saved["epochs"], saved["train_args"]) == (DEMO_CYCLE_DEFAULTS["epochs"], DEMO_CYCLE_DEFAULTS["train_args"])


def test_the_summary_table_shows_what_the_online_teacher_did_each_round(tmp_path: Path, capsys) -> None:
    """Online rounds: the teacher's targets per class and the epochs a class had no threshold, beside the pool's
    labeling; with the unsure boxes left out of the labels (`uncertain keep`), no masked count to show."""
    from yolossl.cli.cycle import print_summary
    from yolossl.config import CycleConfig
    from yolossl.cycle import CycleResult, RoundResult
    from yolossl.cycle.results import TeacherRound
    from yolossl.train import Metrics

    def round_result(index: int, teacher: TeacherRound | None) -> RoundResult:
        return RoundResult(
            index, 10, 5 * index, 7 * index, {"a": 7 * index, "b": 0}, 3 * index, 0, Metrics(0.5, 0.3, 0.6, 0.4),
            tmp_path / "w.pt", tmp_path / "d.yaml", 12.0, teacher=teacher,
        )  # fmt: skip

    teacher = TeacherRound(epochs=5, kept={"a": 40, "b": 0}, seen={"a": 50, "b": 30}, epochs_without_threshold={"b": 5})
    config = CycleConfig(data="d.yaml")  # online: uncertain keep
    print_summary(CycleResult(tmp_path, config, ["a", "b"], [round_result(0, None), round_result(1, teacher)]))
    table = capsys.readouterr().out
    assert "teacher kept" in table and "a:40 b:0 (50%)" in table and "b:5" in table
    assert "imgs masked" not in table
    offline = CycleConfig(data="d.yaml", mode="offline")  # uncertain mask: the masked count is shown
    print_summary(CycleResult(tmp_path, offline, ["a", "b"], [round_result(0, None), round_result(1, None)]))
    table = capsys.readouterr().out
    assert "3 (0 imgs masked)" in table and "teacher kept" not in table
