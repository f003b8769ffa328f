"""An Ultralytics user's habits (issue 38): `name=value` arguments, settings checked before a run folder exists,
`--resume` from anywhere, wrong `names`, an earlier `--out`. Each case runs the command as the user typed it."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from yolossl.cli import app

runner = CliRunner()
TINY_RUN = ["epochs=1", "imgsz=64", "batch=8", "device=cpu", "workers=0", "mode=offline", "quiet=true"]


def _one_line(result, words: str, code: int = 2) -> None:
    """The exit code, and `error: ...words...` as the only thing on stderr."""
    assert result.exit_code == code, result.output + result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()], result.stderr
    assert result.stderr.startswith("error: ") and words in result.stderr, result.stderr


def test_key_value_arguments_train_as_the_options(tiny_dataset: Path, tmp_path: Path, monkeypatch) -> None:
    """`yolossl cycle data=X epochs=1 ...` as `yolo train` takes it: the same options, not an unlabeled folder (which
    used to start the demo)."""
    monkeypatch.chdir(tmp_path)
    data = f"data={tiny_dataset / 'data.yaml'}"
    args = ["cycle", data, "rounds=0", *TINY_RUN, "project=runs", "name=kv", "keep-empty=true", "train_arg=mosaic=0"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    saved = yaml.safe_load((tmp_path / "runs" / "kv" / "config.yaml").read_text())
    assert saved["data"] == str(tiny_dataset / "data.yaml") and saved["rounds"] == 0 and saved["imgsz"] == 64
    assert saved["keep_empty"] is True and saved["train_args"] == {"mosaic": 0}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs", "tiny"]  # no demo drawn


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["cycle", "dat=small/data.yaml"], "dat=small/data.yaml: no option 'dat'; did you mean data=... (--data)?"),
        (["cycle", "mosaic=0.5"], "an Ultralytics training argument goes as --train-arg mosaic=0.5"),
        (["cycle", "tta=maybe"], "tta=maybe: expected true or false"),
        (["label", "imgs", "model=best.pt", "outt=lab"], "did you mean out=... (--out)?"),
        (["bench", "seed=1"], "did you mean seeds=... (--seeds)?"),
    ],
)
def test_unknown_key_value_arguments_are_refused_before_anything(args, words, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    _one_line(runner.invoke(app, args), words)
    assert not list(tmp_path.iterdir())


def test_option_values_and_existing_paths_are_not_read_as_key_value(tmp_path: Path, monkeypatch) -> None:
    """`--train-arg mosaic=0.5` is the option's value; a folder named `a=b` is a folder."""
    import typer.main

    from yolossl.cli._args import key_values_as_options

    monkeypatch.chdir(tmp_path)
    (tmp_path / "cams=2").mkdir()
    params = typer.main.get_command(app).commands["cycle"].params
    args = ["--train-arg", "mosaic=0.5", "cams=2", "from_scratch=false", "online-rounds=no", "quiet=false"]
    expected = ["--train-arg", "mosaic=0.5", "cams=2", "--fine-tune", "--one-online-round"]
    assert key_values_as_options(params, args) == expected


def test_help_and_version_as_commands_usually_take_them() -> None:
    from yolossl import __version__

    assert runner.invoke(app, ["-h"]).exit_code == 0
    assert "Usage" in runner.invoke(app, ["cycle", "-h"]).output
    version = runner.invoke(app, ["--version"])
    assert version.exit_code == 0 and version.output.strip() == f"yolossl {__version__}"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--device", "cuda"], "--device cuda: CUDA is not available on this machine; use --device cpu"),
        (["--device", "foo"], "--device foo: not a device (cpu, mps, cuda, 0, 0,1, cuda:0)"),
        (["--model", "yolo11n"], "--model yolo11n: a model is a .pt weights file or a .yaml model config"),
        (["--model", "./missing.pt"], "--model ./missing.pt: model file not found"),
        (["--train-arg", "foo=1"], "--train-arg foo=1: not an Ultralytics training argument"),
        (["--train-arg", "mosaic=abc"], "--train-arg: 'mosaic=abc' is of invalid type str"),
    ],
)
@pytest.mark.parametrize("with_data", [True, False], ids=["data", "demo"])
def test_settings_ultralytics_would_refuse_are_refused_before_the_run_folder(
    args, words, with_data, tiny_dataset: Path, tmp_path: Path, monkeypatch
) -> None:
    """One line naming what was typed, exit 2, no run folder (and no demo drawn), no network (Ultralytics looks a
    missing .pt up on GitHub, even offline)."""

    def no_network(*_args, **_kwargs):
        raise AssertionError("a network call")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.chdir(tmp_path)
    data = ["--data", str(tiny_dataset / "data.yaml"), "-u", str(tiny_dataset / "unlabeled")] if with_data else []
    _one_line(runner.invoke(app, ["cycle", *data, *args, "--project", "runs"]), words)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]


def test_labels_beyond_names_stop_the_run_in_one_line(tiny_dataset: Path, tmp_path: Path) -> None:
    """Two names for five-class labels: not a run that drops most boxes with a warning each."""
    data = tiny_dataset / "two_names.yaml"
    data.write_text(yaml.safe_dump({"train": "labeled/images", "val": "val/images", "names": ["circle", "square"]}))
    result = runner.invoke(app, ["cycle", "--data", str(data), "--rounds", "0", "--project", str(tmp_path / "runs")])
    _one_line(result, f"{data}: ")
    assert "label(s) in train, val use class ids outside its 2 names (0..1; first: " in result.stderr
    assert "fix 'names:' or the labels" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_resume_from_another_folder_applies_what_can_change_and_refuses_the_rest(
    tiny_dataset: Path, tmp_path: Path, monkeypatch
) -> None:
    """config.yaml keeps absolute paths, so `--resume /abs/run` works from anywhere (here adding a round to a run
    started elsewhere with relative paths); --imgsz and --conf given with it are refused by name rather than ignored;
    --device and --workers apply."""
    started, elsewhere = tmp_path / "a", tmp_path / "b"
    started.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(started)
    relative = ["--data", "../tiny/data.yaml", "-u", "../tiny/unlabeled", "--rounds", "0", "--epochs", "1"]
    args = [*relative, "--round-epochs", "1", "--imgsz", "64", "--batch", "8", "--mode", "offline", "--conf", "0.003"]
    args += ["--uncertain-low", "0.002", "--device", "cpu", "--workers", "0", "--name", "r", "-q"]
    assert runner.invoke(app, ["cycle", *args]).exit_code == 0
    run = started / "runs" / "cycle" / "r"
    assert yaml.safe_load((run / "config.yaml").read_text())["data"] == str(tiny_dataset / "data.yaml")

    monkeypatch.chdir(elsewhere)
    refused = runner.invoke(app, ["cycle", "--resume", str(run), "--imgsz", "96", "--conf", "0.3"])
    _one_line(refused, f"--resume continues {run} with the options it started with: --conf, --imgsz cannot change")
    resumed = runner.invoke(app, ["cycle", "--resume", str(run), "--rounds", "1", "--device", "cpu", "--workers", "1"])
    assert resumed.exit_code == 0, resumed.stderr
    assert "Resuming with workers 1 (started with workers 0)" in resumed.stderr
    assert yaml.safe_load((run / "config.yaml").read_text())["workers"] == 1
    assert (run / "round_1" / "metrics.json").is_file() and f"{run / 'weights' / 'best.pt'}" in resumed.output
    assert not (elsewhere / "runs").exists()


def test_an_earlier_label_output_is_replaced_only_when_asked(tiny_weights: Path, tiny_dataset: Path, tmp_path) -> None:
    """`label --out` over an earlier output is refused as `export` refuses it; --exist-ok replaces it, in one line."""
    out = tmp_path / "lab1"
    args = ["label", str(tiny_dataset / "unlabeled"), "--model", str(tiny_weights), "--out", str(out), "--imgsz", "64"]
    assert runner.invoke(app, [*args, "-q"]).exit_code == 0
    before = sorted(p.name for p in (out / "labels").iterdir())
    again = runner.invoke(app, [*args, "--conf", "0.9", "-q"])
    _one_line(again, f"{out}: exists and is not empty; choose a new --out folder (or --exist-ok to replace")
    assert sorted(p.name for p in (out / "labels").iterdir()) == before
    exported = runner.invoke(app, ["export", str(tiny_dataset / "data.yaml"), "-f", "yolo", "--out", str(out)])
    _one_line(exported, f"{out}: exists and is not empty; choose a new --out folder (or --exist-ok to replace")
    replaced = runner.invoke(app, [*args, "--conf", "0.9", "--exist-ok"])
    assert replaced.exit_code == 0, replaced.stderr
    assert f"{out}: an earlier output, replaced by this one (--exist-ok)" in replaced.stderr


# ---------------------------------------------------------------- the smaller ones


def test_help_shows_flags_without_a_value_an_example_and_no_repository_path() -> None:
    result = runner.invoke(app, ["cycle", "--help"], terminal_width=200)
    assert "<bool>" not in result.output and "Example: yolossl cycle --data data.yaml" in result.output
    assert "docs/" not in result.output and "python -m yolossl.cli.reference" in result.output
    assert "[OPTIONS] [FOLDERS]..." in result.output
    assert "[OPTIONS] SOURCE" in runner.invoke(app, ["export", "--help"], terminal_width=200).output  # not {source}


def test_an_image_given_as_the_unlabeled_folder_is_named_as_a_file(tiny_dataset: Path, tmp_path: Path) -> None:
    image = next((tiny_dataset / "unlabeled").iterdir())
    result = runner.invoke(app, ["cycle", "--data", str(tiny_dataset / "data.yaml"), "-u", str(image)])
    _one_line(result, f"{image}: a file, not a folder; images are taken from folders (give its folder)")


def test_a_pool_that_cannot_be_read_is_one_line_and_no_run_folder(tiny_dataset: Path, tmp_path: Path) -> None:
    """It used to print its error twice (the run log's "Stopped: ..." line too) and leave a run folder."""
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "a.jpg").write_text("not an image")
    args = ["cycle", "--data", str(tiny_dataset / "data.yaml"), "-u", str(tmp_path / "fake"), "-q"]
    result = runner.invoke(app, [*args, "--project", str(tmp_path / "runs")])
    _one_line(result, f"no unlabeled image in {tmp_path / 'fake'} can be read (e.g. {tmp_path / 'fake' / 'a.jpg'}: ")
    assert not (tmp_path / "runs").exists()


def test_a_stopped_run_says_why_in_cycle_log_and_leaves_the_terminal_to_the_caller(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    """The caller gets the error (the CLI prints it once); the "Stopped: ..." line is for cycle.log alone, even where
    the run's warnings go to stderr (no logging set up)."""
    import logging

    from yolossl.cycle.state import logging_to_run_folder
    from yolossl.errors import YolosslError

    monkeypatch.setattr(logging.getLogger("yolossl"), "handlers", [])
    monkeypatch.setattr(logging.getLogger("yolossl"), "propagate", False)
    with pytest.raises(YolosslError), logging_to_run_folder(tmp_path):
        raise YolosslError("disk gone")
    assert "Stopped" not in capsys.readouterr().err
    assert "Stopped: YolosslError: disk gone" in (tmp_path / "cycle.log").read_text()


def test_val_made_of_train_images_is_flagged(tiny_dataset: Path, caplog) -> None:
    from yolossl.config import CycleConfig
    from yolossl.cycle.inputs import log_inputs, read_inputs

    data = tiny_dataset / "same.yaml"
    data.write_text(yaml.safe_dump({"train": "labeled/images", "val": "labeled/images", "names": ["a"] * 5}))
    log_inputs(read_inputs(CycleConfig(data=str(data), rounds=0), data))
    assert "8 of the 8 val images are train images too (val is train)" in caplog.text


def test_autobatch_is_refused_saying_why() -> None:
    from yolossl.config import CycleConfig
    from yolossl.errors import YolosslError

    with pytest.raises(YolosslError, match=r"batch must be >= 1, got -1: Ultralytics' AutoBatch \(-1\) is not"):
        CycleConfig(batch=-1)


def test_the_training_bar_shows_no_images_per_second() -> None:
    from rich.progress import Progress

    from yolossl.cli._ui import SpeedColumn

    progress = Progress()
    epochs = progress.add_task("round 0: training epochs", total=10, unit=None)
    images = progress.add_task("round 1: pseudo-labeling", total=100, unit="img/s")
    for task in (epochs, images):
        progress.update(task, advance=1)
        progress.update(task, advance=1)
    column = SpeedColumn()
    assert str(column.render(progress.tasks[epochs])) == ""
    assert str(column.render(progress.tasks[images])).endswith(" img/s")


def test_yolo_import_takes_a_folder_and_says_what_it_cleaned(tiny_dataset: Path, tmp_path: Path) -> None:
    """`import -f yolo` of an export's folder, as the help promises; a duplicated box, dropped, is said (COCO, CVAT
    and VOC keep every box, so a count that differs has a reason)."""
    label = next((tiny_dataset / "labeled" / "labels").iterdir())
    label.write_text(label.read_text() * 2)
    out = tmp_path / "yolo"
    exported = runner.invoke(app, ["export", str(tiny_dataset / "data.yaml"), "-f", "yolo", "--out", str(out)])
    assert exported.exit_code == 0, exported.stderr
    assert "label line(s) cleaned as a cycle trains on them (" in exported.stderr
    assert "x duplicate box, dropped" in exported.stderr
    imported = runner.invoke(app, ["import", str(out), "-f", "yolo", "--out", str(tmp_path / "back"), "-q"])
    assert imported.exit_code == 0, imported.stderr
    assert (tmp_path / "back" / "data.yaml").is_file()


def test_exporting_a_labeling_without_boxes_says_why(tiny_weights: Path, tiny_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "none"
    args = ["label", str(tiny_dataset / "unlabeled"), "-m", str(tiny_weights), "--out", str(out), "--imgsz", "64"]
    assert runner.invoke(app, [*args, "--conf", "0.999", "--uncertain-low", "0.999", "-q"]).exit_code == 0
    result = runner.invoke(app, ["export", str(out), "-f", "coco", "--out", str(tmp_path / "coco")])
    assert result.exit_code == 0, result.stderr
    assert f"{out}: no kept or uncertain box in {out / 'record.csv'}, so no image to export" in result.stderr


def test_the_bench_checks_device_model_and_training_arguments_before_its_folder(
    tiny_dataset: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data = str(tiny_dataset / "data.yaml")
    _one_line(runner.invoke(app, ["bench", f"data={data}", "device=foo", "seeds=1"]), "--device foo: not a device")
    _one_line(runner.invoke(app, ["bench", "--data", data, "--train-arg", "mosaik=0.5"]), "did you mean mosaic?")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]
