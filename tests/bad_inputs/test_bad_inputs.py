"""The bad-input corpus: every case is generated here, run through yolossl, and its outcome pinned.

The expected behaviour of each case is in the `expected` column of the tables below and in
README.md beside this file. The rule: a warning naming the file and what was done, or one line
on stderr and exit code 2 for what cannot go on; never a traceback, never a silent drop.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from yolossl.cli import app
from yolossl.data import scan_image_folders
from yolossl.label import LabelSettings
from yolossl.label.pool import label_folders
from yolossl.labels import clean_label_file

runner = CliRunner()


# ---------------------------------------------------------------- images in an unlabeled pool


def _good(path: Path) -> Path:
    cv2.imwrite(str(path), np.full((48, 64, 3), 120, np.uint8))
    return path


def _zero_byte(d: Path) -> Path:
    (d / "zero.jpg").write_bytes(b"")
    return d / "zero.jpg"


def _truncated(d: Path) -> Path:
    data = _good(d / "full.jpg").read_bytes()
    (d / "full.jpg").unlink()
    (d / "truncated.jpg").write_bytes(data[: len(data) // 2])
    return d / "truncated.jpg"


def _text_as_jpg(d: Path) -> Path:
    (d / "notes.jpg").write_text("this is a text file")
    return d / "notes.jpg"


def _cmyk(d: Path) -> Path:
    Image.new("CMYK", (40, 30), (0, 128, 255, 0)).save(d / "cmyk.jpg")
    return d / "cmyk.jpg"


def _png16(d: Path) -> Path:
    cv2.imwrite(str(d / "deep.png"), np.full((30, 40, 3), 40000, np.uint16))
    return d / "deep.png"


def _grayscale(d: Path) -> Path:
    cv2.imwrite(str(d / "gray.png"), np.full((30, 40), 90, np.uint8))
    return d / "gray.png"


def _rgba(d: Path) -> Path:
    cv2.imwrite(str(d / "alpha.png"), np.full((30, 40, 4), 200, np.uint8))
    return d / "alpha.png"


def _exif_rotated(d: Path) -> Path:
    image = Image.new("RGB", (80, 40), (200, 30, 30))
    exif = image.getexif()
    exif[0x0112] = 6  # stored landscape, shown portrait
    image.save(d / "rotated.jpg", exif=exif)
    return d / "rotated.jpg"


def _one_pixel(d: Path) -> Path:
    cv2.imwrite(str(d / "dot.png"), np.zeros((1, 1, 3), np.uint8))
    return d / "dot.png"


def _very_large(d: Path) -> Path:
    cv2.imwrite(str(d / "huge.jpg"), np.full((9000, 12000, 3), 77, np.uint8))
    return d / "huge.jpg"


def _upper_case(d: Path) -> Path:
    return _good(d / "SHOUT.JPG")


def _unicode_spaces(d: Path) -> Path:
    return _good(d / "caméra 北 1.jpg")


def _symlink_loop(d: Path) -> Path:
    os.symlink(d / "loop_b.jpg", d / "loop_a.jpg")
    os.symlink(d / "loop_a.jpg", d / "loop_b.jpg")
    os.symlink(d, d / "self")  # a folder loop: not followed
    return d / "loop_a.jpg"


# (case, make it, expected outcome, the warning's words or None)
IMAGE_CASES = [
    ("zero-byte file", _zero_byte, "skipped", "empty file (0 bytes), skipped"),
    ("truncated JPEG", _truncated, "skipped", "truncated JPEG (no end marker), skipped"),
    ("text file named .jpg", _text_as_jpg, "skipped", "not an image (OpenCV cannot decode it), skipped"),
    ("CMYK JPEG", _cmyk, "labeled", None),
    ("16-bit PNG", _png16, "labeled", None),
    ("grayscale", _grayscale, "labeled", None),
    ("RGBA", _rgba, "labeled", None),
    ("EXIF-rotated", _exif_rotated, "labeled", None),
    ("1x1 image", _one_pixel, "labeled", None),
    ("12000x9000 image", _very_large, "labeled", None),
    ("upper-case extension", _upper_case, "labeled", None),
    ("unicode and spaces in the name", _unicode_spaces, "labeled", None),
    ("symlink loop", _symlink_loop, "skipped", "Too many levels of symbolic links, skipped"),
]


@pytest.mark.parametrize(("case", "make", "expected", "warning"), IMAGE_CASES, ids=[c[0] for c in IMAGE_CASES])
def test_image_case(case, make, expected, warning, tiny_weights, tmp_path, caplog) -> None:
    pool = tmp_path / "pool"
    pool.mkdir()
    _good(pool / "fine.jpg")
    bad = make(pool)
    with caplog.at_level(logging.WARNING, logger="yolossl"):
        stats = label_folders([tiny_weights], [pool], tmp_path / "out", LabelSettings(imgsz=64, batch=2))
    labels = {p.name for p in (tmp_path / "out" / "labels").iterdir()}
    bad_id = next(i.id for i in scan_image_folders([pool]).images if i.path == bad)
    if expected == "skipped":
        assert f"{bad}: {warning}" in caplog.text
        assert str(bad) in stats.unreadable and f"{bad_id}.txt" not in labels
    else:
        assert f"{bad_id}.txt" in labels and not stats.unreadable
        assert "Traceback" not in caplog.text
    assert f"{next(i.id for i in scan_image_folders([pool]).images if i.path.name == 'fine.jpg')}.txt" in labels


def test_exif_rotation_is_applied_like_ultralytics_reads_it(tmp_path: Path) -> None:
    from yolossl.images import read_image

    assert read_image(_exif_rotated(tmp_path)).shape[:2] == (80, 40)  # upright: portrait
    from ultralytics.utils.patches import imread

    assert imread(str(tmp_path / "rotated.jpg")).shape[:2] == (80, 40)  # the trainer sees the same


def test_very_large_images_are_decoded_small(tmp_path: Path) -> None:
    from yolossl.images import read_image

    assert read_image(_very_large(tmp_path), imgsz=640).shape[:2] == (1125, 1500)  # 1/8, still > 2x imgsz


def test_unreadable_permissions(tiny_weights, tmp_path, caplog, monkeypatch) -> None:
    pool = tmp_path / "pool"
    pool.mkdir()
    secret = _good(pool / "secret.jpg")
    _good(pool / "fine.jpg")
    secret.chmod(0)
    if os.geteuid() == 0:  # root reads anything: inject the error the OS would give anyone else
        real = np.fromfile

        def fromfile(path, *args, **kwargs):
            if Path(path) == secret:
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return real(path, *args, **kwargs)

        monkeypatch.setattr(np, "fromfile", fromfile)
    with caplog.at_level(logging.WARNING, logger="yolossl"):
        stats = label_folders([tiny_weights], [pool], tmp_path / "out", LabelSettings(imgsz=64))
    assert f"{secret}: no permission to read it, skipped" in caplog.text
    assert stats.unreadable == [str(secret)] and stats.images == 1


def test_broken_files_are_found_from_their_headers(tmp_path: Path) -> None:
    from yolossl.images import unreadable_reason

    cases = {_zero_byte(tmp_path): "empty file (0 bytes)", _truncated(tmp_path): "truncated JPEG (no end marker)"}
    cases[_text_as_jpg(tmp_path)] = "not an image (OpenCV cannot decode it)"
    for path, why in cases.items():
        assert unreadable_reason(path) == why
    assert unreadable_reason(_good(tmp_path / "good.jpg")) is None and unreadable_reason(_cmyk(tmp_path)) is None
    cv2.imwrite(str(tmp_path / "good.png"), np.zeros((20, 30, 3), np.uint8))
    assert unreadable_reason(tmp_path / "good.png") is None


@pytest.mark.parametrize("mode", ["online", "offline"])
def test_broken_pool_files_never_stop_a_cycle_and_are_named_once(
    mode: str, tiny_dataset: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A zero-byte .jpg, a truncated JPEG and a text file named .jpg: found before round 0, each named in one
    warning, counted in data_report.json, never trained on or labeled; a resume does not look at them again."""
    import json

    from tests.conftest import tiny_cycle_config
    from yolossl import resume_cycle, run_cycle

    pool = tmp_path / "pool"
    shutil.copytree(tiny_dataset / "unlabeled", pool)
    broken = [_zero_byte(pool), _truncated(pool), _text_as_jpg(pool)]
    config = tiny_cycle_config(
        tiny_dataset, tmp_path, mode=mode, unlabeled=[str(pool)], online_epochs=1, conf=0.002, uncertain_low=0.001
    )
    with caplog.at_level(logging.WARNING, logger="yolossl"):
        result = run_cycle(config)
    assert [r.index for r in result.rounds] == [0, 1]
    for path in broken:
        assert sum(str(path) in r.getMessage() for r in caplog.records) == 1, path
        assert not list((result.run_dir / "round_1" / "pseudo" / "labels").glob(f"{path.stem}*"))
    report = json.loads((result.run_dir / "data_report.json").read_text())["pool"]
    assert report["unreadable_excluded"] == 3 and set(report["unreadable"]) == {str(p) for p in broken}
    assert report["images"] == 12

    def no_second_look(path: Path) -> str:
        raise AssertionError(f"checked {path} again")

    monkeypatch.setattr("yolossl.cycle.inputs.unreadable_reason", no_second_look)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="yolossl"):
        resume_cycle(result.run_dir)
    assert not [r for r in caplog.records if "left out" in r.getMessage()]
    assert json.loads((result.run_dir / "data_report.json").read_text())["pool"]["unreadable_excluded"] == 3


def test_the_online_loader_skips_an_image_broken_after_the_check(tmp_path: Path, caplog) -> None:
    from yolossl.train.online import UnlabeledImages

    good = _good(tmp_path / "good.jpg")
    images = UnlabeledImages([str(_truncated(tmp_path)), str(good)], 64)
    with caplog.at_level(logging.WARNING, logger="yolossl"):
        first, again = images[0], images[0]
    assert first["im_file"] == again["im_file"] == str(good) and tuple(first["img"].shape) == (3, 64, 64)
    broken = tmp_path / "truncated.jpg"
    assert [r.getMessage() for r in caplog.records] == [
        f"Skipping an unlabeled image that cannot be read: {broken} (truncated JPEG (no end marker))"
    ]


# ---------------------------------------------------------------- label files of the labeled split

LABEL_CASES = [
    ("wrong column count", "0 0.5 0.5 0.2\n", 0, "4 columns instead of 5", "line dropped"),
    ("class id out of range", "7 0.5 0.5 0.2 0.2\n", 0, "class id 7 out of range (0..4)", "line dropped"),
    ("NaN", "1 nan 0.5 0.2 0.2\n", 0, "NaN or infinite value", "line dropped"),
    ("coordinates outside 0-1", "1 0.95 0.5 0.2 0.2\n", 1, "box reaches outside the image", "clipped"),
    ("zero-area box", "1 0.5 0.5 0.0 0.2\n", 0, "zero-area box", "line dropped"),
    ("duplicate lines", "1 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.2 0.2\n", 1, "duplicate box", "dropped"),
    ("CRLF endings", "1 0.5 0.5 0.2 0.2\r\n2 0.3 0.3 0.1 0.1\r\n", 2, None, None),
    ("polygon instead of a box", "3 0.1 0.1 0.4 0.1 0.4 0.3\n", 1, "polygon instead of a box", "converted"),
]


@pytest.mark.parametrize(("case", "text", "kept", "problem", "action"), LABEL_CASES, ids=[c[0] for c in LABEL_CASES])
def test_label_case(case, text, kept, problem, action, tmp_path: Path) -> None:
    path = tmp_path / "img.txt"
    path.write_bytes(text.encode())
    cleaned = clean_label_file(path, n_classes=5)
    assert len(cleaned.rows) == kept
    if problem is None:
        assert not cleaned.issues
    else:
        assert any(problem in i.problem and action in i.action for i in cleaned.issues), cleaned.issues
        assert all(str(path) in str(i) for i in cleaned.issues)  # every issue names the file (and line)
    if case == "coordinates outside 0-1":
        x, w = cleaned.rows[0, 1], cleaned.rows[0, 3]
        assert x + w / 2 == pytest.approx(1.0) and x - w / 2 == pytest.approx(0.85)


def _messy_dataset(root: Path, tiny: Path) -> Path:
    """The tiny dataset with one of each label problem a run trains past (a class id beyond `names` stops it), a label
    without an image and an image without a label."""
    shutil.copytree(tiny, root)
    labels = sorted((root / "labeled" / "labels").glob("*.txt"))
    cases = [case for case in LABEL_CASES if case[0] != "class id out of range"]
    for path, (_, text, *_rest) in zip(labels, cases, strict=False):
        path.write_bytes(text.encode())
    labels[-1].unlink()  # an image without a label
    (root / "labeled" / "labels" / "ghost.txt").write_text("0 0.5 0.5 0.1 0.1\n")  # a label without an image
    return root / "data.yaml"


def test_a_messy_labeled_split_trains_with_warnings_and_cleaned_copies(tiny_dataset: Path, tmp_path: Path) -> None:
    data = _messy_dataset(tmp_path / "messy", tiny_dataset)
    before = {p: p.read_bytes() for p in (tmp_path / "messy").rglob("*") if p.is_file()}
    args = [
        "cycle",
        "--data",
        str(data),
        "--rounds",
        "0",
        "--epochs",
        "1",
        "--imgsz",
        "64",
        "--device",
        "cpu",
        "--project",
        str(tmp_path / "runs"),
        "--name",
        "messy",
    ]
    result = runner.invoke(app, args, terminal_width=250)
    assert result.exit_code == 0, result.stderr
    out = result.stderr
    for words in (
        "4 columns instead of 5 (class xc yc w h), line dropped",
        "NaN or infinite value, line dropped",
        "box reaches outside the image, clipped to the image",
        "zero-area box, line dropped",
        "duplicate box, dropped",
        "no label file, trained as a background",
        "ghost.txt: label file without an image, ignored",
    ):
        assert words in out, words
    assert "Traceback" not in out
    mirrored = tmp_path / "runs" / "messy" / "round_0" / "dataset" / "labels" / "labeled"
    for path in mirrored.glob("*.txt"):  # what Ultralytics trains on is clean
        for line in path.read_text().splitlines():
            cls, *xywh = line.split()
            assert 0 <= int(cls) < 5 and len(xywh) == 4 and all(0 <= float(v) <= 1 for v in xywh)
    report = yaml.safe_load((tmp_path / "runs" / "messy" / "data_report.json").read_text())
    assert report["splits"]["train"]["counts"]["label file without an image (ignored)"] == 1
    assert {p: p.read_bytes() for p in (tmp_path / "messy").rglob("*") if p.is_file()} == before  # untouched


# ---------------------------------------------------------------- data YAMLs and folders


def _cycle(*args: str):
    return runner.invoke(app, ["cycle", "--epochs", "1", "--imgsz", "64", "--device", "cpu", *args])


def _one_line_error(result, words: str) -> None:
    """Exit 2 and one `error:` line, the last thing said (earlier lines are the run's progress logs)."""
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and words in lines[-1], lines[-1]
    assert sum(line.startswith("error: ") for line in lines) == 1 and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("meta", "words"),
    [
        ({"train": "labeled/images", "names": ["a"]}, "'val:' is missing"),
        ({"train": "labeled/images", "val": "nowhere/images", "names": ["a"]}, "'val:' entry nowhere/images not found"),
    ],
)
def test_yaml_errors_are_one_line(meta, words, tiny_dataset: Path) -> None:
    path = tiny_dataset / "bad.yaml"
    path.write_text(yaml.safe_dump(meta))
    _one_line_error(_cycle("--data", str(path), "--rounds", "0"), f"{path}: {words}")


def test_empty_and_image_free_folders(tiny_dataset: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "readme.md").write_text("no images here")
    data = str(tiny_dataset / "data.yaml")
    _one_line_error(_cycle("--data", data, "-u", str(tmp_path / "empty")), f"no images found in {tmp_path / 'empty'}")
    result = _cycle("--data", data, "-u", str(tmp_path / "docs"))
    _one_line_error(result, f"no images found in {tmp_path / 'docs'}")


def test_unwritable_output_folder(tiny_dataset: Path, tmp_path: Path) -> None:
    """A --project that cannot be created (here: under a file; a read-only folder fails the same way)."""
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    result = _cycle("--data", str(tiny_dataset / "data.yaml"), "--rounds", "0", "--project", str(blocker / "runs"))
    _one_line_error(result, f"{blocker / 'runs'}")
    assert "--resume" not in result.stderr  # no run folder was made: nothing to continue


def test_disk_full_stops_in_one_line_and_resume_finishes(tiny_dataset: Path, tmp_path: Path, monkeypatch) -> None:
    import yolossl.label.writer as writer

    real = writer.write_yolo_labels
    calls = {"n": 0}

    def full_disk(path, *args):
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, *args)

    monkeypatch.setattr(writer, "write_yolo_labels", full_disk)
    args = [
        "--data",
        str(tiny_dataset / "data.yaml"),
        "-u",
        str(tiny_dataset / "unlabeled"),
        "--rounds",
        "1",
        "--round-epochs",
        "1",
        "--project",
        str(tmp_path / "runs"),
        "--name",
        "full",
    ]
    result = _cycle(*args)
    run = tmp_path / "runs" / "full"
    _one_line_error(result, f"No space left on device; continue later with 'yolossl cycle --resume {run}'")
    assert not (run / "round_1" / "pseudo").exists()  # no half-written step in place
    monkeypatch.setattr(writer, "write_yolo_labels", real)  # space freed
    resumed = runner.invoke(app, ["cycle", "--resume", str(run)])
    assert resumed.exit_code == 0, resumed.stderr
    assert len(list((run / "round_1" / "pseudo" / "labels").iterdir())) == 12


def test_leakage_guard_leaves_out_copies_of_val_images(tiny_dataset: Path, tmp_path: Path) -> None:
    pool = tmp_path / "pool"
    shutil.copytree(tiny_dataset / "unlabeled", pool)
    val_image = next((tiny_dataset / "val" / "images").glob("*.jpg"))
    shutil.copyfile(val_image, pool / "copy_of_val.jpg")
    args = [
        "--data",
        str(tiny_dataset / "data.yaml"),
        "-u",
        str(pool),
        "--rounds",
        "1",
        "--round-epochs",
        "1",
        "--project",
        str(tmp_path / "runs"),
        "--name",
        "leak",
    ]
    result = runner.invoke(
        app, ["cycle", "--epochs", "1", "--imgsz", "64", "--device", "cpu", *args], terminal_width=250
    )
    assert result.exit_code == 0, result.stderr
    assert "Leakage guard: 1 unlabeled images are copies of val or test images" in result.stderr
    run = tmp_path / "runs" / "leak"
    assert not [p for p in (run / "round_1" / "pseudo" / "labels").iterdir() if p.name.startswith("copy_of_val")]
    assert yaml.safe_load((run / "data_report.json").read_text())["pool"]["leakage_excluded"] == 1
