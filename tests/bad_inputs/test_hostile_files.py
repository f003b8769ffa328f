"""Hostile files on disk: folders named like ours, FIFOs, decompression bombs, YAML bombs, HTML in run files.

Each case pins its exact outcome (a warning naming the file, or one `error:` line and exit 2) and
that nothing under the test's folder changed outside `--out`. Cases that could hang run the
command in a subprocess with a timeout, or under `signal.alarm`, so that a regression fails.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.bad_inputs.conftest import no_hang, tree_snapshot
from yolossl.cli import app
from yolossl.cli._ui import MAX_ERROR_CHARS
from yolossl.data import ImageItem
from yolossl.errors import YolosslError
from yolossl.label import LabelSettings
from yolossl.label.pool import label_folders
from yolossl.leakage import find_leaks

runner = CliRunner()
ROOT = Path(__file__).parents[2]


def _good(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((48, 64, 3), 120, np.uint8))
    return path


def _one_line_error(result, words: str) -> None:
    """Exit 2 and exactly one `error:` line, the last thing said, with `words` in it; no traceback."""
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and words in lines[-1], lines[-1]
    assert sum(line.startswith("error: ") for line in lines) == 1 and "Traceback" not in result.stderr


def _cli(*args: str, timeout: int) -> subprocess.CompletedProcess:
    """`yolossl ARGS` in its own process: a command that blocks fails the test at `timeout` instead of hanging it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false"}
    command = [sys.executable, "-m", "yolossl", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


# ---------------------------------------------------------------- folders named like the ones we build


def test_a_users_partial_folder_is_refused_not_deleted(tiny_weights, tmp_path, untouched_outside) -> None:
    pool = tmp_path / "pool"
    _good(pool / "a.jpg")
    reviewed = tmp_path / "reviewed"
    (tmp_path / "reviewed.partial").mkdir()
    (tmp_path / "reviewed.partial" / "notes.txt").write_text("my review notes")
    before = tree_snapshot(tmp_path / "reviewed.partial")
    check = untouched_outside(reviewed)
    result = runner.invoke(
        app, ["label", str(pool), "--model", str(tiny_weights), "--out", str(reviewed), "--imgsz", "64"]
    )
    _one_line_error(
        result,
        f"{tmp_path / 'reviewed.partial'}: exists and was not built by yolossl (no .yolossl-build in it); "
        "yolossl never deletes it: move it away or choose another --out",
    )
    assert tree_snapshot(tmp_path / "reviewed.partial") == before  # `out.*` siblings are not in check()'s picture
    assert not reviewed.exists()
    check()


def test_an_input_folder_named_like_our_partial_survives(tiny_weights, tmp_path, untouched_outside) -> None:
    inputs = tmp_path / "ds.partial"
    _good(inputs / "a.jpg")
    before = tree_snapshot(inputs)
    check = untouched_outside(tmp_path / "ds")
    result = runner.invoke(
        app, ["label", str(inputs), "--model", str(tiny_weights), "--out", str(tmp_path / "ds"), "--imgsz", "64"]
    )
    _one_line_error(result, f"{inputs}: exists and was not built by yolossl")
    assert tree_snapshot(inputs) == before
    check()


def test_an_earlier_label_output_is_replaced_and_carries_the_marker(tiny_weights, tmp_path, untouched_outside) -> None:
    pool = tmp_path / "pool"
    _good(pool / "a.jpg")
    out = tmp_path / "out"
    check = untouched_outside(out)
    args = ["label", str(pool), "--model", str(tiny_weights), "--out", str(out), "--imgsz", "64"]
    assert runner.invoke(app, args).exit_code == 0
    assert (out / ".yolossl-build").is_file()
    assert runner.invoke(app, [*args, "--exist-ok"]).exit_code == 0  # ours: replaced whole
    assert not (tmp_path / "out.partial").exists()
    check()


# ---------------------------------------------------------------- FIFOs, sockets and devices


def test_a_fifo_in_the_pool_is_skipped_by_label(tiny_weights, tmp_path, untouched_outside) -> None:
    pool = tmp_path / "pool"
    _good(pool / "a.jpg")
    os.mkfifo(pool / "x.jpg")
    out = tmp_path / "out"
    check = untouched_outside(out)
    result = _cli("label", str(pool), "--model", str(tiny_weights), "--out", str(out), "--imgsz", "64", timeout=180)
    assert result.returncode == 0, result.stderr
    assert f"WARNING {pool / 'x.jpg'}: not a regular file (a FIFO), skipped" in result.stderr
    assert [p.name.split("-")[0] for p in (out / "labels").iterdir()] == ["a"]
    assert not (tmp_path / "out.partial").exists()
    check()


def test_fifos_in_the_pool_and_among_labels_are_skipped_by_the_cycle(tiny_dataset, tmp_path, untouched_outside):
    pool = tmp_path / "pool"
    shutil.copytree(tiny_dataset / "unlabeled", pool)
    os.mkfifo(pool / "x.jpg")
    label = sorted((tiny_dataset / "labeled" / "labels").glob("*.txt"))[0]
    label.unlink()
    os.mkfifo(label)
    runs = tmp_path / "runs"
    check = untouched_outside(runs)
    args = ["cycle", "--data", str(tiny_dataset / "data.yaml"), "-u", str(pool), "--rounds", "1", "--epochs", "1"]
    args += ["--round-epochs", "1", "--imgsz", "64", "--device", "cpu", "--project", str(runs), "--name", "r"]
    result = _cli(*args, timeout=420)
    assert result.returncode == 0, result.stderr
    assert f"WARNING {pool / 'x.jpg'}: not a regular file (a FIFO), skipped" in result.stderr
    assert f"WARNING train split: {label}: not a regular file (a FIFO), skipped, the image trains as a background" in (
        result.stderr
    )
    labeled = (runs / "r" / "round_1" / "pseudo" / "labels").iterdir()
    assert not [p for p in labeled if p.name.startswith("x-")]
    check()


def test_the_leakage_guard_never_opens_a_fifo(tmp_path, caplog) -> None:
    os.mkfifo(tmp_path / "x.jpg")
    (tmp_path / "empty.jpg").write_bytes(b"")  # a val file of the FIFO's size (0): the hash would be compared
    pool = [ImageItem("x", tmp_path / "x.jpg")]
    val = [ImageItem("v", tmp_path / "empty.jpg"), ImageItem("w", _good(tmp_path / "val.jpg"))]
    with no_hang(20), caplog.at_level(logging.WARNING, logger="yolossl"):
        assert find_leaks(pool, val, "hash") == {}
        assert find_leaks(pool, val, "phash") == {}
    assert f"{tmp_path / 'x.jpg'}: not a regular file (a FIFO), left out of the leakage check" in caplog.text


@pytest.mark.parametrize(("option", "what"), [("--data", "data YAML"), ("--config", "config file")])
def test_a_fifo_given_as_a_yaml_is_one_error_line(option, what, tmp_path, untouched_outside) -> None:
    fifo = tmp_path / "given.yaml"
    os.mkfifo(fifo)
    check = untouched_outside(tmp_path / "runs")
    with no_hang(20):
        result = runner.invoke(app, ["cycle", option, str(fifo), "--project", str(tmp_path / "runs")])
    _one_line_error(result, f"{fifo}: a FIFO, not a {what}; not read")
    check()


# ---------------------------------------------------------------- decompression bombs


@pytest.fixture(scope="module")
def huge_png(tmp_path_factory) -> Path:
    """20000x20000 grey pixels in 389 KB: 1.2 GB once decoded."""
    path = tmp_path_factory.mktemp("bomb") / "huge.png"
    Image.new("L", (20000, 20000)).save(path)
    return path


def test_a_20000x20000_png_is_skipped_before_decoding(huge_png, tiny_weights, tmp_path, caplog, monkeypatch) -> None:
    import yolossl.images as engine

    pool = tmp_path / "pool"
    _good(pool / "a.jpg")
    shutil.copyfile(huge_png, pool / "huge.png")
    real = engine.cv2.imdecode

    def imdecode(data, flags):
        assert len(data) != os.path.getsize(huge_png), "the huge PNG was handed to the decoder"
        return real(data, flags)

    monkeypatch.setattr(engine.cv2, "imdecode", imdecode)
    with caplog.at_level(logging.WARNING, logger="yolossl"):
        stats = label_folders([tiny_weights], [pool], tmp_path / "out", LabelSettings(imgsz=64, batch=2))
    assert (
        f"{pool / 'huge.png'}: 20000x20000 PNG, more than the 67108864 pixels (8192x8192) an image may decode to, "
        "skipped" in caplog.text
    )
    assert stats.unreadable == [str(pool / "huge.png")] and stats.images == 1


def test_a_huge_png_is_no_crash_for_the_phash_guard(huge_png, tmp_path) -> None:
    """Pillow's own Image.open raises DecompressionBombError on it; the guard leaves it to the labeling step."""
    val = [ImageItem("v", _good(tmp_path / "val.jpg"))]
    assert find_leaks([ImageItem("h", huge_png)], val, "phash") == {}


# ---------------------------------------------------------------- YAML bombs and tags


def _alias_bomb() -> str:
    """Ten levels of ten aliases each: 10**10 names from about 560 bytes."""
    lines = ["train: images", "val: images", 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, 10):
        lines.append(f"a{level}: &a{level} [{','.join([f'*a{level - 1}'] * 10)}]")
    lines.append("names: *a9")
    return "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_is_refused_in_one_line(tmp_path, untouched_outside) -> None:
    (tmp_path / "images").mkdir()
    _good(tmp_path / "images" / "a.jpg")
    bomb = tmp_path / "data.yaml"
    bomb.write_text(_alias_bomb())
    assert bomb.stat().st_size < 600
    check = untouched_outside(tmp_path / "runs")
    with no_hang(20):
        result = runner.invoke(app, ["cycle", "--data", str(bomb), "--project", str(tmp_path / "runs")])
    _one_line_error(result, f"{bomb}: aliases are not accepted (*a0 on line 4): they can expand without bound")
    check()


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("rounds: 1\nunlabeled: &u [a]\nname: *u\n", "aliases are not accepted (*u on line 3)"),
        (
            "rounds: !!python/object/apply:os.system [touch pwned]\n",
            "not valid YAML (could not determine a constructor for the tag "
            "'tag:yaml.org,2002:python/object/apply:os.system')",
        ),
        ("rounds: " + "[" * 5000 + "\n", "not valid YAML (nested too deeply)"),
    ],
    ids=["alias", "python tag", "deep nesting"],
)
def test_config_yaml_bombs_are_refused_in_one_line(text, words, tmp_path, untouched_outside) -> None:
    config = tmp_path / "cycle.yaml"
    config.write_text(text)
    check = untouched_outside(tmp_path / "runs")
    result = runner.invoke(app, ["cycle", "--config", str(config), "--project", str(tmp_path / "runs")])
    _one_line_error(result, f"{config}: {words}")
    assert not (tmp_path / "pwned").exists()
    check()


def test_a_train_arg_alias_is_refused(tmp_path) -> None:
    result = runner.invoke(app, ["cycle", "--train-arg", "x={a: &a [1, 2], b: *a}", "--project", str(tmp_path)])
    _one_line_error(result, "--train-arg x: aliases are not accepted (*a on line 1)")


# ---------------------------------------------------------------- the report


def test_the_report_escapes_what_it_reads(tmp_path) -> None:
    from yolossl.report import write_report

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("unlabeled: ['/cams/<img src=x onerror=alert(1)>']\n")
    head = "round,images_used,pseudo_boxes,map50,map50_95,precision,recall,wall_time_s,skipped_images"
    head += ",boxes_<script>alert(1)</script>"
    (run / "summary.csv").write_text(f"{head}\n0,8,0,0.1,0.05,0.2,0.3,1,<b>2</b>,0\n")
    (run / "data_report.json").write_text(
        '{"splits": {"<script>alert(2)</script>": {"images": "<i>8</i>", "counts": {"<img src=y onerror=z>": 1}}},'
        ' "pool": {"images": "<u>3</u>", "leakage_mode": "<svg onload=q>"}}'
    )
    page = write_report(run).read_text()
    for raw in ("<script>alert", "<img src=", "<b>2", "<i>8", "<u>3", "<svg"):
        assert raw not in page, raw
    for escaped in ("&lt;img src=x onerror=alert(1)&gt;", "&lt;script&gt;alert(2)&lt;/script&gt;", "&lt;b&gt;2"):
        assert escaped in page, escaped


# ---------------------------------------------------------------- the command line's errors


def test_the_exit_code_does_not_depend_on_verbose(tmp_path) -> None:
    """An image Pillow cannot identify: once answered 2 with -v and 1 without (Ultralytics' Image.open patch)."""
    (tmp_path / "ds" / "images").mkdir(parents=True)
    (tmp_path / "ds" / "labels").mkdir()
    (tmp_path / "ds" / "images" / "a.jpg").write_text("text")
    (tmp_path / "ds" / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (tmp_path / "data.yaml").write_text("path: ds\ntrain: images\nval: images\nnames: [x]\n")
    codes = [
        _cli("export", str(tmp_path / "data.yaml"), "-f", "coco", "--out", str(tmp_path / name), *flag, timeout=120)
        for name, flag in (("plain", []), ("verbose", ["-v"]))
    ]
    assert codes[0].returncode == codes[1].returncode, (codes[0].stderr[-300:], codes[1].stderr[-300:])


def test_a_huge_error_is_one_short_line(tmp_path) -> None:
    data = tmp_path / "data.yaml"
    data.write_text(f"path: {'x' * 300_000}\ntrain: a\nval: a\nnames: [a]\n")
    result = runner.invoke(app, ["cycle", "--data", str(data), "--project", str(tmp_path / "runs")])
    message = f"{data}: 'path: {'x' * 300_000}' does not exist (relative to the working directory or the YAML)"
    _one_line_error(result, f"{data}: 'path: xxx")
    cap = MAX_ERROR_CHARS
    assert result.stderr.strip().splitlines()[-1] == f"error: {message[:cap]}… ({len(message) - cap} more characters)"


def test_an_error_is_never_read_as_markup(tmp_path) -> None:
    """A name with rich markup in it: once a MarkupError traceback, or a style applied to the user's text."""
    data = tmp_path / "data.yaml"
    data.write_text('path: "[/bold] nowhere\\n\\u001b[2J"\ntrain: a\nval: a\nnames: [a]\n')
    result = runner.invoke(app, ["cycle", "--data", str(data), "--project", str(tmp_path / "runs")])
    _one_line_error(result, "'path: [/bold] nowhere\\n\\x1b[2J' does not exist")


def test_a_missing_data_yaml_is_still_named(tmp_path) -> None:
    with pytest.raises(YolosslError, match=r"missing\.yaml: data YAML not found"):
        from yolossl.data import load_data_yaml

        load_data_yaml(tmp_path / "missing.yaml")
