"""The one name rule (`resolve_inside`) and the bounded readers every importer goes through."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from yolossl._fs import resolve_inside
from yolossl.errors import YolosslError
from yolossl.export.annotations import AnnotatedImage, with_distinct_stems
from yolossl.export.files import number, side


@pytest.mark.parametrize("name", ["a.jpg", "sub/a.jpg", "./a.jpg", "a..b.jpg", "..a.jpg", "xy:z.jpg"])
def test_names_inside_the_root_are_kept(tmp_path: Path, name: str) -> None:
    assert resolve_inside(tmp_path, name, source="f.json", entry="images[0]") == tmp_path / name


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("../a.jpg", "leaves the folder (absolute or '..')"),
        ("sub/../../a.jpg", "leaves the folder (absolute or '..')"),
        ("sub/..", "leaves the folder (absolute or '..')"),
        ("/etc/passwd", "leaves the folder (absolute or '..')"),
        ("//server/share/a.jpg", "leaves the folder (absolute or '..')"),
        ("..\\a.jpg", "has a backslash, NUL or drive letter; only plain relative names"),
        ("C:a.jpg", "has a backslash, NUL or drive letter; only plain relative names"),
        ("a\0.jpg", "has a backslash, NUL or drive letter; only plain relative names"),
        ("", "is not a file name"),
        ("  ", "is not a file name"),
        (None, "is not a file name"),
        (7, "is not a file name"),
    ],
)
def test_names_leaving_the_root_are_refused(tmp_path: Path, name: object, problem: str) -> None:
    with pytest.raises(YolosslError) as raised:
        resolve_inside(tmp_path, name, source="f.json", entry="images[0].file_name")
    assert str(raised.value) == f"f.json: images[0].file_name {name!r} {problem}"


def test_a_link_leaving_the_root_is_refused_and_one_staying_inside_is_kept(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", root / "out")
    os.symlink(root / "sub", root / "in")
    assert resolve_inside(root, "in/a.jpg", source="f", entry="e") == root / "in" / "a.jpg"
    with pytest.raises(YolosslError, match=r"^f: e 'out/a.jpg' is a link leaving the folder \(to .*outside/a.jpg\)$"):
        resolve_inside(root, "out/a.jpg", source="f", entry="e")


@pytest.mark.parametrize(("value", "expected"), [(3, 3.0), ("2.5", 2.5), (-1, -1.0)])
def test_number_reads_finite_numbers(value: object, expected: float) -> None:
    assert number(value, Path("f"), "e") == expected


@pytest.mark.parametrize("value", [None, "x", float("nan"), float("inf"), "1e999", True, [1]])
def test_number_refuses_the_rest(value: object) -> None:
    with pytest.raises(YolosslError, match=r"^f: e: expected a finite number, got "):
        number(value, Path("f"), "e")


@pytest.mark.parametrize(("value", "expected"), [(1, 1), ("640", 640), (480.0, 480), (65535, 65535)])
def test_side_reads_whole_pixels(value: object, expected: int) -> None:
    assert side(value, Path("f"), "w") == expected


@pytest.mark.parametrize("value", [0, -3, 2.5, 65536, 1e30, "nan", None, False])
def test_side_refuses_the_rest(value: object) -> None:
    with pytest.raises(YolosslError, match=r"^f: w: expected a whole number of pixels from 1 to 65535, got "):
        side(value, Path("f"), "w")


def test_distinct_stems_rename_only_the_later_clashes_within_a_folder(caplog: pytest.LogCaptureFixture) -> None:
    names = ["a.jpg", "a.png", "x/a.jpg", "x/a.png", "a-1.jpg", "b.jpg"]
    images = [AnnotatedImage(Path(n), n, 4, 4) for n in names]
    renamed = [image.name for image in with_distinct_stems(images, Path("f.json"))]
    assert renamed == ["a.jpg", "a-1.png", "x/a.jpg", "x/a-1.png", "a-1-1.jpg", "b.jpg"]
    assert caplog.messages == [
        "f.json: 3 images share a file stem with another; renamed so each has its own label file: "
        "a.png -> a-1.png, x/a.png -> x/a-1.png, a-1.jpg -> a-1-1.jpg"
    ]
