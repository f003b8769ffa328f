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


def test_the_summary_table_fits_80_columns_and_the_detail_is_in_summary_csv(tmp_path: Path, monkeypatch) -> None:
    """At 80 columns every round's val and test mAP50-95 show in full, with the verdict; the per-class boxes and what
    the online teacher did each round are in summary.csv (and the report), not in cells cut to `0…`."""
    import io
    import sys

    from rich.console import Console

    from yolossl.cli.cycle import print_summary
    from yolossl.config import CycleConfig
    from yolossl.cycle import CycleResult, RoundResult, summary_csv
    from yolossl.cycle.results import TeacherRound
    from yolossl.train import Metrics

    def round_result(index: int, teacher: TeacherRound | None, accepted: bool = True) -> RoundResult:
        return RoundResult(
            index, 10, 5 * index, 7 * index, {"circle": 7 * index, "square": 0}, 3 * index, 0,
            Metrics(0.5, 0.3 + index / 100, 0.6, 0.4), tmp_path / "w.pt", tmp_path / "d.yaml", 12.0,
            accepted=accepted, teacher=teacher, test=Metrics(0.4, 0.2 + index / 100, 0.5, 0.3),
        )  # fmt: skip

    teacher = TeacherRound(5, {"circle": 40, "square": 0}, {"circle": 50, "square": 30}, {"square": 5})
    rounds = [round_result(0, None), round_result(1, teacher), round_result(2, teacher, accepted=False)]
    run = tmp_path / "runs" / "cycle" / "a-long-run-name"
    result = CycleResult(run, CycleConfig(data="d.yaml"), ["circle", "square"], rounds)
    out = io.StringIO()
    monkeypatch.setattr(sys.modules["yolossl.cli.cycle"], "stdout", Console(file=out, width=80))
    print_summary(result)
    text = out.getvalue()
    paths = ("yolossl cycle:", "Final model", "On the test split", "Summary")  # lines that end in a path: not cut
    table = [line for line in text.splitlines() if not line.startswith(paths)]
    assert max(len(line) for line in table) <= 80 and "…" not in text
    header = next(line for line in table if "val mAP50-95" in line)
    for words in ("round", "images", "pseudo boxes", "test mAP50-95", "time", "verdict"):
        assert words in header
    for index, verdict in ((0, "accepted"), (1, "best"), (2, "rejected")):
        row = next(line.split() for line in table if line.split()[:1] == [str(index)])
        assert row[3:5] == [f"{0.3 + index / 100:.3f}", f"{0.2 + index / 100:.3f}"] and row[-1] == verdict
    csv = summary_csv(rounds, result.class_names)
    assert "boxes_circle" in csv and "teacher_kept_circle" in csv and "teacher_no_thr" in csv
