"""Exports name images as the user's folder does; imports find those names (and older id names) back."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.export.test_formats import IMPORT_PATH, _datumaro
from yolossl.cli import app
from yolossl.data import image_id
from yolossl.errors import YolosslError
from yolossl.export import EXPORT_FORMATS, export_source, import_annotations

# The user's labels, by name under the train folder: a same-name pair in two subfolders, and a PNG.
LABELS = {
    "cams/a/0001.jpg": "0 0.500000 0.500000 0.250000 0.250000\n",
    "cams/b/0001.jpg": "1 0.250000 0.750000 0.125000 0.375000\n0 0.625000 0.250000 0.250000 0.125000\n",
    "cams/b/0002.png": "1 0.375000 0.375000 0.500000 0.250000\n",
}


def _image(path: Path, size: tuple[int, int] = (64, 48)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 120, 150)).save(path)
    return path


@pytest.fixture
def nested(tmp_path: Path) -> Path:
    """A dataset whose train images sit in subfolders: images/train/cams/{a,b}/..., labels beside as YOLO wants."""
    root = tmp_path / "data"
    for name, text in LABELS.items():
        _image(root / "images" / "train" / name)
        label = root / "labels" / "train" / Path(name).with_suffix(".txt")
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text(text)
    _image(root / "images" / "val" / "v.jpg")
    (root / "data.yaml").write_text("train: images/train\nval: images/val\nnames: [circle, square]\n")
    return root / "data.yaml"


def _labels(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).with_suffix("").as_posix(): p.read_text() for p in folder.rglob("*.txt")}


ORIGINAL = {str(Path(name).with_suffix("")): text for name, text in LABELS.items()}


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_subfolders_and_a_same_name_pair_round_trip_under_the_original_names(fmt: str, nested: Path, tmp_path: Path):
    exported = export_source(nested, fmt, tmp_path / "export")
    import_annotations(exported / IMPORT_PATH[fmt], fmt, tmp_path / "back", data=nested)
    assert _labels(tmp_path / "back" / "labels") == ORIGINAL
    images = tmp_path / "back" / "images"
    assert sorted(p.relative_to(images).as_posix() for p in images.rglob("*") if p.is_symlink()) == sorted(LABELS)


def test_every_format_uses_the_relative_name(nested: Path, tmp_path: Path) -> None:
    coco = json.loads((export_source(nested, "coco", tmp_path / "c") / IMPORT_PATH["coco"]).read_text())
    assert [i["file_name"] for i in coco["images"]] == list(LABELS)
    assert (tmp_path / "c" / "images" / "default" / "cams" / "a" / "0001.jpg").is_file()
    cvat = (export_source(nested, "cvat", tmp_path / "v") / "annotations.xml").read_text()
    assert all(f'name="{name}"' in cvat for name in LABELS)
    voc = export_source(nested, "voc", tmp_path / "o")
    assert (voc / "Annotations" / "cams" / "b" / "0001.xml").read_text().count("<filename>cams/b/0001.jpg<") == 1
    assert (voc / "ImageSets" / "Main" / "default.txt").read_text() == "cams/a/0001\ncams/b/0001\ncams/b/0002\n"
    tasks = json.loads((export_source(nested, "labelstudio", tmp_path / "l") / "tasks.json").read_text())
    assert [t["data"]["image"] for t in tasks] == [f"/data/local-files/?d=images/{name}" for name in LABELS]


@pytest.mark.parametrize(
    ("fmt", "datumaro_format"), [("cvat", "cvat"), ("voc", "voc_detection"), ("coco", "coco_instances")]
)
def test_datumaro_reads_subfolder_names(fmt: str, datumaro_format: str, nested: Path, tmp_path: Path) -> None:
    seen = _datumaro(export_source(nested, fmt, tmp_path / "export"), datumaro_format, full_ids=True)
    assert sorted(seen) == sorted(ORIGINAL)
    assert [box[0] for box in seen["cams/b/0001"]] == ["circle", "square"]
    assert seen["cams/a/0001"] == [["circle", 24.0, 18.0, 16.0, 12.0]]


# ---------------------------------------------------------------- Label Studio with the user's storage


@pytest.mark.parametrize(
    ("prefix", "first"),
    [
        ("s3://bucket/my cams/", "s3://bucket/my cams/cams/a/0001.jpg"),
        ("https://host/x y/", "https://host/x y/cams/a/0001.jpg"),
        ("/data/local-files/?d=photos/", "/data/local-files/?d=photos/cams/a/0001.jpg"),
    ],
)
def test_labelstudio_tasks_point_at_the_users_storage(nested: Path, tmp_path: Path, prefix: str, first: str) -> None:
    out = export_source(nested, "labelstudio", tmp_path / "ls", image_url_prefix=prefix)
    tasks = json.loads((out / "tasks.json").read_text())
    assert tasks[0]["data"]["image"] == first
    assert not (out / "images").exists()
    assert f"The tasks point at `{prefix}<name>`" in (out / "README.md").read_text()
    back = import_annotations(out / "tasks.json", "labelstudio", tmp_path / "back", nested.parent / "images" / "train")
    assert _labels(back.parent / "labels") == ORIGINAL


def test_a_name_with_a_space_is_quoted_in_a_web_url(tmp_path: Path) -> None:
    from yolossl.export.labelstudio import image_url

    assert image_url("a b/c#1.jpg", "https://h/") == "https://h/a%20b/c%231.jpg"
    assert image_url("a b/c#1.jpg", "gs://bucket/") == "gs://bucket/a b/c#1.jpg"
    assert image_url("a b.jpg", None) == "/data/local-files/?d=images/a%20b.jpg"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["-f", "coco", "--image-url-prefix", "s3://b/"],
            "error: --image-url-prefix: only Label Studio tasks carry image URLs; coco names images relative to "
            "your folder, so create the task from your own images and drop --image-url-prefix",
        ),
        (
            ["-f", "yolo", "--no-copy-images"],
            "error: --no-copy-images: a YOLO dataset needs its images; use coco, cvat or voc for labels only",
        ),
        (
            ["-f", "labelstudio", "--no-copy-images"],
            "error: --no-copy-images: Label Studio tasks must say where the images are; add --image-url-prefix PREFIX",
        ),
    ],
)
def test_image_options_that_cannot_work_are_refused(nested: Path, tmp_path: Path, args, message) -> None:
    result = CliRunner().invoke(app, ["export", str(nested), "--out", str(tmp_path / "x"), *args])
    assert result.exit_code == 2 and result.stderr.strip().splitlines()[-1] == message
    assert not (tmp_path / "x").exists()


def test_no_copy_images_writes_annotations_only(nested: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["export", str(nested), "-f", "cvat", "--out", str(tmp_path / "x"), "--no-copy-images"]
    )
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["README.md", "annotations.xml"]
    back = import_annotations(
        tmp_path / "x" / "annotations.xml", "cvat", tmp_path / "b", nested.parent / "images" / "train"
    )
    assert _labels(back.parent / "labels") == ORIGINAL


# ---------------------------------------------------------------- several unlabeled folders, old id names, misses


def _record_round(tmp_path: Path, images: list[Path]) -> Path:
    """A labeling pass's folder with one kept box per image, as `yolossl label` writes it."""
    pseudo = tmp_path / "round_1" / "pseudo"
    pseudo.mkdir(parents=True)
    rows = "".join(f"{p},{image_id(p)},0,circle,kept,0.9,0.5,0.5,0.25,0.25\n" for p in images)
    (pseudo / "record.csv").write_text(
        "image,image_id,class_id,class_name,status,score,x_center,y_center,width,height\n" + rows
    )
    return pseudo.parent


def test_a_real_collision_keeps_the_id_and_the_readme_says_so(tmp_path: Path, caplog) -> None:
    first, second = _image(tmp_path / "pool1" / "x" / "0001.jpg"), _image(tmp_path / "pool2" / "x" / "0001.jpg")
    other = _image(tmp_path / "pool2" / "y" / "0002.jpg")
    source = _record_round(tmp_path, [first, second, other])
    out = export_source(source, "coco", tmp_path / "export", unlabeled=[tmp_path / "pool1", tmp_path / "pool2"])
    names = [i["file_name"] for i in json.loads((out / IMPORT_PATH["coco"]).read_text())["images"]]
    renamed = f"x/{image_id(second)}.jpg"
    assert names == ["x/0001.jpg", renamed, "y/0002.jpg"]
    assert f"- `{second} -> {renamed}`" in (out / "README.md").read_text()
    assert caplog.messages[0] == (
        f"{source}: 1 images have the same name under another folder; named by their id instead: {second} -> {renamed}"
    )
    back = import_annotations(
        out / IMPORT_PATH["coco"], "coco", tmp_path / "back", [tmp_path / "pool1", tmp_path / "pool2"]
    )
    images = back.parent / "images"
    assert os.readlink(images / "x" / "0001.jpg") == str(first)
    assert os.readlink(images / "x" / "0001-1.jpg") == str(second)  # the id found the user's image; one folder here
    assert os.readlink(images / "y" / "0002.jpg") == str(other)


def test_a_round_names_images_under_the_runs_unlabeled_folders(tmp_path: Path) -> None:
    image = _image(tmp_path / "pool" / "cams" / "a" / "0001.jpg")
    source = _record_round(tmp_path / "run", [image])
    (tmp_path / "run" / "config.yaml").write_text(f"unlabeled: [{tmp_path / 'pool'}]\n")
    out = export_source(source, "coco", tmp_path / "export")
    assert json.loads((out / IMPORT_PATH["coco"]).read_text())["images"][0]["file_name"] == "cams/a/0001.jpg"


def test_an_earlier_export_with_id_names_imports_under_the_users_names(nested: Path, tmp_path: Path) -> None:
    """What exports wrote before: `0001-<8 hex>.jpg` linked into images/default; the id finds the user's image."""
    train = nested.parent / "images" / "train"
    images, entries, boxes = tmp_path / "old" / "images" / "default", [], []
    for k, name in enumerate(LABELS, start=1):
        old = f"{image_id(train / name)}{Path(name).suffix}"
        _image(images / old)
        entries.append({"id": k, "file_name": old, "width": 64, "height": 48})
        boxes.append({"id": k, "image_id": k, "category_id": 1, "bbox": [24, 18, 16, 12]})
    coco = tmp_path / "old" / "annotations" / "instances_default.json"
    coco.parent.mkdir()
    coco.write_text(json.dumps({"images": entries, "annotations": boxes, "categories": [{"id": 1, "name": "circle"}]}))
    back = import_annotations(coco, "coco", tmp_path / "back", data=nested)
    assert sorted(_labels(back.parent / "labels")) == sorted(ORIGINAL)
    assert os.readlink(back.parent / "images" / "cams" / "b" / "0001.jpg") == str(train / "cams" / "b" / "0001.jpg")
    without_data = import_annotations(coco, "coco", tmp_path / "back2")  # nothing to map the ids to: kept as they are
    assert sorted(_labels(without_data.parent / "labels")) == sorted(Path(e["file_name"]).stem for e in entries)


def _coco(path: Path, names: list[str]) -> Path:
    images = [{"id": k, "file_name": n, "width": 64, "height": 48} for k, n in enumerate(names, start=1)]
    boxes = [{"id": k, "image_id": k, "category_id": 1, "bbox": [24, 18, 16, 12]} for k in range(1, len(names) + 1)]
    path.write_text(json.dumps({"images": images, "annotations": boxes, "categories": [{"id": 1, "name": "circle"}]}))
    return path


def test_annotations_without_an_image_are_named_in_one_warning(nested: Path, tmp_path: Path, caplog) -> None:
    train = nested.parent / "images" / "train"
    coco = _coco(tmp_path / "tool.json", ["bucket/cams/a/0001.jpg", "gone/x.jpg", "gone/y.jpg"])
    back = import_annotations(coco, "coco", tmp_path / "back", train)
    assert sorted(_labels(back.parent / "labels")) == ["cams/a/0001"]  # found by its tail under --images
    assert caplog.messages[0] == (
        f"{coco}: 2 of 3 annotated images have no matching image under {train} and are left out: "
        "'gone/x.jpg', 'gone/y.jpg'"
    )
    with pytest.raises(YolosslError) as raised:
        import_annotations(_coco(tmp_path / "none.json", ["gone/x.jpg"]), "coco", tmp_path / "b2", train)
    assert (
        str(raised.value)
        == f"{tmp_path / 'none.json'}: no annotated image found under {train}: 'gone/x.jpg' (use --images DIR)"
    )
    assert not (tmp_path / "b2").exists()


# ---------------------------------------------------------------- hostile


def test_a_tail_through_a_link_leaving_images_is_refused(tmp_path: Path, untouched_outside) -> None:
    _image(tmp_path / "outside" / "a.jpg")
    root = tmp_path / "images"
    root.mkdir()
    os.symlink(tmp_path / "outside", root / "evil")
    coco = _coco(tmp_path / "tool.json", ["x/evil/a.jpg"])
    out = tmp_path / "back"
    check = untouched_outside(out)
    result = CliRunner().invoke(app, ["import", str(coco), "-f", "coco", "--out", str(out), "--images", str(root)])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {coco}: image 'x/evil/a.jpg' 'evil/a.jpg' is a link leaving the images folder "
        f"(to {(tmp_path / 'outside' / 'a.jpg').resolve()})"
    )
    check()
    assert not out.exists()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"rule": "f1"}', "kept: expected an object, got null"),
        ('{"kept": {"zero": 0.5}}', "kept: 'zero' is not a class id"),
        ('{"kept": {"0": "high"}}', "kept.0: expected a finite number, got 'high'"),
        ("[1, 2", "not a thresholds file (Expecting ',' delimiter at line 1 column 6)"),
    ],
)
def test_a_tampered_thresholds_file_is_one_line(tmp_path: Path, untouched_outside, content: str, problem: str) -> None:
    source = _record_round(tmp_path, [_image(tmp_path / "pool" / "a.jpg")])
    thresholds = source / "pseudo" / "thresholds.json"
    thresholds.write_text(content)
    out = tmp_path / "export"
    check = untouched_outside(out)
    result = CliRunner().invoke(app, ["export", str(source), "-f", "coco", "--out", str(out), "--review", "1"])
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"error: {thresholds}: {problem}"
    check()
