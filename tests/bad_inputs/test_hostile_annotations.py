"""Hostile annotation files and names, through `yolossl import` and `yolossl export`.

Each case is built here, run, and its exact outcome pinned; every case also proves that nothing
under the test's folder outside `--out` was written, changed or deleted. The rule: one `error:`
line naming the file and the entry (exit 2), or a warning naming what was skipped or renamed.
"""

from __future__ import annotations

import json
import os
import struct
import zipfile
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.bad_inputs.conftest import no_hang
from yolossl.cli import app
from yolossl.errors import YolosslError
from yolossl.export import export_source, import_annotations
from yolossl.export.files import MAX_ANNOTATION_BYTES

runner = CliRunner()


def _image(path: Path, size: tuple[int, int] = (64, 48)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 120, 150)).save(path)
    return path


def _coco(path: Path, images: list[dict], annotations: list[dict] | None = None) -> Path:
    payload = {
        "images": images,
        "annotations": annotations if annotations is not None else [],
        "categories": [{"id": 1, "name": "circle"}],
    }
    path.write_text(json.dumps(payload))
    return path


def _coco_image(image_id: int, name: str, width: object = 64, height: object = 48) -> dict:
    return {"id": image_id, "file_name": name, "width": width, "height": height}


def _box(box_id: int, image_id: int, category: int = 1) -> dict:
    return {"id": box_id, "image_id": image_id, "category_id": category, "bbox": [4, 4, 20, 20]}


def _cvat(path: Path, name: str) -> Path:
    path.write_text(
        "<annotations><meta><task><labels><label><name>circle</name></label></labels></task></meta>"
        f'<image id="0" name="{name}" width="64" height="48">'
        '<box label="circle" xtl="4" ytl="4" xbr="24" ybr="24"/></image></annotations>'
    )
    return path


def _voc(folder: Path, filename: str) -> Path:
    (folder / "Annotations").mkdir(parents=True)
    (folder / "Annotations" / "a.xml").write_text(
        f"<annotation><folder>JPEGImages</folder><filename>{filename}</filename>"
        "<size><width>64</width><height>48</height><depth>3</depth></size>"
        "<object><name>circle</name><bndbox><xmin>4</xmin><ymin>4</ymin><xmax>24</xmax><ymax>24</ymax></bndbox>"
        "</object></annotation>"
    )
    return folder


def _labelstudio(path: Path, urls: list[str]) -> Path:
    box = {
        "type": "rectanglelabels",
        "original_width": 64,
        "original_height": 48,
        "value": {"x": 10, "y": 10, "width": 20, "height": 20, "rectanglelabels": ["circle"]},
    }
    tasks = [{"data": {"image": url}, "annotations": [{"result": [box]}]} for url in urls]
    path.write_text(json.dumps(tasks))
    return path


def _import(path: Path, fmt: str, out: Path, images: Path | None = None):
    args = ["import", str(path), "--format", fmt, "--out", str(out)]
    return runner.invoke(app, args + (["--images", str(images)] if images else []))


def _one_error(result) -> str:
    """The single `error:` line of a refused command (exit 2, no traceback)."""
    assert result.exit_code == 2, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


# ---------------------------------------------------------------- names that leave their folder


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A user's folder with images, and a secret beside it that no name may reach."""
    _image(tmp_path / "project" / "images" / "a.jpg")
    (tmp_path / "secret.txt").write_text("do not link me")
    return tmp_path / "project"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("../../secret.txt", "images[0].file_name '../../secret.txt' leaves the images folder (absolute or '..')"),
        ("/etc/hostname", "images[0].file_name '/etc/hostname' leaves the images folder (absolute or '..')"),
        (
            "..\\..\\secret.txt",
            "images[0].file_name '..\\\\..\\\\secret.txt' has a backslash, NUL or drive letter; "
            "only plain relative names",
        ),
        (
            "C:/secret.txt",
            "images[0].file_name 'C:/secret.txt' has a backslash, NUL or drive letter; only plain relative names",
        ),
    ],
)
def test_coco_file_name_outside_the_images_folder_is_refused(tree: Path, untouched_outside, name, message) -> None:
    coco = _coco(tree / "export.json", [_coco_image(1, name)], [_box(1, 1)])
    out = tree / "reviewed"
    check = untouched_outside(out)
    assert _one_error(_import(coco, "coco", out, tree / "images")) == f"error: {coco}: {message}"
    check()
    assert not out.exists()


def test_coco_file_name_that_is_a_link_leaving_the_folder_is_refused(tree: Path, untouched_outside) -> None:
    os.symlink(tree.parent / "secret.txt", tree / "images" / "b.jpg")
    coco = _coco(tree / "export.json", [_coco_image(1, "b.jpg")])
    out = tree / "reviewed"
    check = untouched_outside(out)
    error = _one_error(_import(coco, "coco", out, tree / "images"))
    assert error == (
        f"error: {coco}: images[0].file_name 'b.jpg' is a link leaving the images folder "
        f"(to {(tree.parent / 'secret.txt').resolve()})"
    )
    check()


def test_cvat_image_name_outside_is_refused(tree: Path, untouched_outside) -> None:
    xml = _cvat(tree / "annotations.xml", "../../secret.txt")
    out = tree / "reviewed"
    check = untouched_outside(out)
    error = _one_error(_import(xml, "cvat", out, tree / "images"))
    assert error == f"error: {xml}: <image> 1 name '../../secret.txt' leaves the images folder (absolute or '..')"
    check()


def test_voc_filename_outside_is_refused(tree: Path, untouched_outside) -> None:
    voc = _voc(tree / "voc", "../../../secret.txt")
    out = tree / "reviewed"
    check = untouched_outside(out)
    error = _one_error(_import(voc, "voc", out, tree / "images"))
    xml = voc / "Annotations" / "a.xml"
    assert error == f"error: {xml}: <filename> '../../../secret.txt' leaves the images folder (absolute or '..')"
    check()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("/data/local-files/?d=../../secret.txt", "'../../secret.txt' leaves the --images folder (absolute or '..')"),
        ("/data/local-files/?d=/etc/hostname", "'/etc/hostname' leaves the --images folder (absolute or '..')"),
        ("/data/local-files/?d=%2E%2E/secret.txt", "'../secret.txt' leaves the --images folder (absolute or '..')"),
        ("https://host/x/%2E%2E%2F..%2Fsecret.txt", "'../../secret.txt' leaves the --images folder (absolute or '..')"),
    ],
)
def test_labelstudio_urls_outside_images_are_refused(tree: Path, untouched_outside, url: str, shown: str) -> None:
    tasks = _labelstudio(tree / "export.json", [url])
    out = tree / "reviewed"
    check = untouched_outside(out)
    error = _one_error(_import(tasks, "labelstudio", out, tree / "images"))
    assert error == f"error: {tasks}: task 1 data.image {shown}"
    check()


def test_labelstudio_absolute_path_inside_images_is_accepted(tree: Path, untouched_outside) -> None:
    inside = (tree / "images" / "a.jpg").resolve()
    tasks = _labelstudio(tree / "export.json", [f"/data/local-files/?d={inside}"])
    out = tree / "reviewed"
    check = untouched_outside(out)
    result = _import(tasks, "labelstudio", out, tree / "images")
    assert result.exit_code == 0, result.stderr
    assert os.readlink(out / "images" / "a.jpg") == str(tree / "images" / "a.jpg")
    check()


def test_yolo_import_whose_train_leaves_its_folder_is_refused(tree: Path, untouched_outside) -> None:
    (tree / "export").mkdir()
    yaml_path = tree / "export" / "data.yaml"
    yaml_path.write_text("train: ../images\nval: ../images\nnames: [circle]\n")
    out = tree / "reviewed"
    check = untouched_outside(out)
    error = _one_error(_import(yaml_path, "yolo", out))
    assert error == (
        f"error: {yaml_path}: 'train:' entry {tree / 'export' / '..' / 'images'} '../images' leaves the "
        "dataset folder (absolute or '..')"
    )
    check()


def test_yolo_import_whose_label_links_out_is_refused(tree: Path, untouched_outside) -> None:
    export = tree / "export"
    _image(export / "images" / "a.jpg")
    (export / "labels").mkdir()
    os.symlink(tree.parent / "secret.txt", export / "labels" / "a.txt")
    yaml_path = export / "data.yaml"
    yaml_path.write_text("train: images\nval: images\nnames: [circle]\n")
    out = tree / "reviewed"
    check = untouched_outside(out)
    error = _one_error(_import(yaml_path, "yolo", out))
    assert error == (
        f"error: {yaml_path}: label {export / 'labels' / 'a.txt'} 'labels/a.txt' is a link leaving the dataset "
        f"folder (to {(tree.parent / 'secret.txt').resolve()})"
    )
    check()


def _round(tmp_path: Path, image_id: str) -> Path:
    """A labeling pass's folder whose record.csv names one pseudo box of one image with `image_id`."""
    image = _image(tmp_path / "pool" / "a.jpg")
    pseudo = tmp_path / "run" / "round_1" / "pseudo"
    pseudo.mkdir(parents=True)
    (pseudo / "record.csv").write_text(
        "image,image_id,class_id,class_name,status,score,x_center,y_center,width,height\n"
        f"{image},{image_id},0,circle,kept,0.9,0.5,0.5,0.2,0.2\n"
    )
    return pseudo.parent


@pytest.mark.parametrize("fmt", ["cvat", "yolo"])
def test_export_of_a_record_whose_image_id_leaves_out_is_refused(tmp_path: Path, untouched_outside, fmt) -> None:
    source = _round(tmp_path, "../../../planted")
    out = tmp_path / "out" / "export"
    check = untouched_outside(out)
    result = runner.invoke(app, ["export", str(source), "--format", fmt, "--out", str(out)])
    record = source / "pseudo" / "record.csv"
    leaves = "row 1 image_id '../../../planted' leaves the folder (absolute or '..')"
    assert _one_error(result) == f"error: {record}: {leaves}"
    check()
    assert not out.exists() and not out.with_name("export.partial").exists()


def test_export_zip_members_are_plain_names(tmp_path: Path, untouched_outside) -> None:
    source = _round(tmp_path, "a-1234")
    out = tmp_path / "export"
    check = untouched_outside(out)
    export_source(source, "cvat", out)
    with zipfile.ZipFile(out / "cvat_dataset.zip") as archive:
        assert archive.namelist() == ["annotations.xml", "images/a.jpg"]  # the user's name, not the id
    check()


# ---------------------------------------------------------------- sizes, zip bombs, nesting, entities


def _zip_bomb(path: Path, size: int) -> Path:
    """A small zip whose annotations.xml unpacks to `size` bytes of spaces inside a valid root."""
    with (
        zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive,
        archive.open("annotations.xml", "w", force_zip64=True) as member,
    ):
        member.write(b"<annotations>")
        chunk = b" " * (1 << 20)
        for _ in range(size >> 20):
            member.write(chunk)
        member.write(b"</annotations>")
    return path


def test_cvat_zip_bomb_is_refused_by_its_size(tmp_path: Path, untouched_outside) -> None:
    bomb = _zip_bomb(tmp_path / "cvat.zip", MAX_ANNOTATION_BYTES + (1 << 20))
    assert bomb.stat().st_size < 1_000_000
    out = tmp_path / "reviewed"
    check = untouched_outside(out)
    error = _one_error(_import(bomb, "cvat", out))
    assert error == (
        f"error: {bomb}: annotations.xml unpacks to {MAX_ANNOTATION_BYTES + (1 << 20) + 27} bytes, "
        "over the 512 MiB annotation file limit"
    )
    check()


def test_zip_member_that_unpacks_past_its_header_is_refused(tmp_path: Path, untouched_outside) -> None:
    """The header says 13 bytes; the member holds 1 MiB: never read past what the header promised."""
    path = tmp_path / "cvat.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("annotations.xml", b"<annotations>" + b" " * (1 << 20) + b"</annotations>")
    data = bytearray(path.read_bytes())
    real = (1 << 20) + 27
    for offset in [i for i in range(len(data) - 4) if struct.unpack_from("<I", data, i)[0] == real]:
        struct.pack_into("<I", data, offset, 13)  # local header and central directory both lie
    path.write_bytes(bytes(data))
    out = tmp_path / "reviewed"
    check = untouched_outside(out)
    error = _one_error(_import(path, "cvat", out))
    assert error == f"error: {path}: a broken or unsupported zip (BadZipFile: Bad CRC-32 for file 'annotations.xml')"
    check()


def test_json_over_the_size_limit_is_refused_without_reading_it(tmp_path: Path, untouched_outside) -> None:
    path = tmp_path / "export.json"
    with open(path, "wb") as f:
        f.truncate(MAX_ANNOTATION_BYTES + 1)  # sparse: no disk used
    out = tmp_path / "reviewed"
    check = untouched_outside(out)
    error = _one_error(_import(path, "coco", out))
    assert error == f"error: {path}: {MAX_ANNOTATION_BYTES + 1} bytes, over the 512 MiB annotation file limit"
    check()


@pytest.mark.parametrize(
    ("fmt", "kind"), [("coco", "COCO instances file"), ("labelstudio", "Label Studio JSON export")]
)
def test_deeply_nested_json_is_one_line(tmp_path: Path, untouched_outside, fmt: str, kind: str) -> None:
    path = tmp_path / "export.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    out = tmp_path / "reviewed"
    check = untouched_outside(out)
    assert _one_error(_import(path, fmt, out)) == f"error: {path}: not a {kind} (nested too deeply to read)"
    check()


@pytest.mark.parametrize(
    "doctype",
    [
        '<!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/hostname">]>',  # XXE
        '<!DOCTYPE a SYSTEM "http://example.com/a.dtd">',  # external DTD
        '<!DOCTYPE a [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>',  # laughs
    ],
)
def test_xml_with_a_dtd_is_refused(tmp_path: Path, untouched_outside, doctype: str) -> None:
    path = tmp_path / "annotations.xml"
    path.write_text(f'<?xml version="1.0"?>{doctype}<annotations><image name="&e;"/></annotations>')
    out = tmp_path / "reviewed"
    check = untouched_outside(out)
    error = _one_error(_import(path, "cvat", out))
    assert error == f"error: {path}: not a CVAT XML (a DTD or entity declaration; annotation exports have none)"
    check()


def test_xinclude_is_not_followed(tmp_path: Path, untouched_outside) -> None:
    _image(tmp_path / "images" / "a.jpg")
    path = tmp_path / "annotations.xml"
    path.write_text(
        '<annotations xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="/etc/hostname" parse="text"/>'
        '<image name="a.jpg" width="64" height="48"/></annotations>'
    )
    out = tmp_path / "reviewed"
    check = untouched_outside(out)
    result = _import(path, "cvat", out)
    assert result.exit_code == 0, result.stderr
    assert (out / "labels" / "a.txt").read_text() == ""
    check()


# ---------------------------------------------------------------- files that are not regular files


def test_fifo_as_annotation_file_is_refused_without_blocking(tmp_path: Path, untouched_outside) -> None:
    fifo = tmp_path / "export.json"
    os.mkfifo(fifo)
    out = tmp_path / "reviewed"
    check = untouched_outside(out)
    with no_hang():
        error = _one_error(_import(fifo, "coco", out))
    assert error == (
        f"error: {fifo}: not a regular file (a FIFO, socket, device or folder); an annotation file is expected"
    )
    check()


def test_fifo_named_jpg_in_a_coco_import_is_refused(tree: Path, untouched_outside) -> None:
    os.mkfifo(tree / "images" / "b.jpg")
    coco = _coco(tree / "export.json", [_coco_image(1, "b.jpg")])
    out = tree / "reviewed"
    check = untouched_outside(out)
    with no_hang():
        error = _one_error(_import(coco, "coco", out, tree / "images"))
    assert error == (
        f"error: {coco}: image b.jpg: {tree / 'images' / 'b.jpg'} is not a regular file (a FIFO, socket or device?)"
    )
    check()


def test_fifo_named_jpg_in_an_exported_dataset_is_skipped(tmp_path: Path, untouched_outside) -> None:
    _image(tmp_path / "data" / "images" / "a.jpg")
    (tmp_path / "data" / "labels").mkdir()
    (tmp_path / "data" / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    os.mkfifo(tmp_path / "data" / "images" / "pipe.jpg")
    data = tmp_path / "data" / "data.yaml"
    data.write_text("train: images\nval: images\nnames: [circle]\n")
    out = tmp_path / "export"
    check = untouched_outside(out)
    with no_hang():
        result = runner.invoke(app, ["export", str(data), "--format", "cvat", "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    assert f"WARNING {tmp_path / 'data' / 'images' / 'pipe.jpg'}: not a regular file (a FIFO), skipped" in result.stderr
    assert [p.name for p in (out / "images").iterdir()] == ["a.jpg"]  # the user's name, no pipe
    check()


def test_fifo_among_voc_annotations_is_skipped(tree: Path, untouched_outside) -> None:
    voc = _voc(tree / "voc", "a.jpg")
    os.mkfifo(voc / "Annotations" / "b.xml")
    out = tree / "reviewed"
    check = untouched_outside(out)
    with no_hang():
        result = _import(voc, "voc", out, tree / "images")
    assert result.exit_code == 0, result.stderr
    fifo = voc / "Annotations" / "b.xml"
    assert f"WARNING {fifo}: not a regular file (a FIFO, socket, device or folder), skipped" in result.stderr
    assert sorted(p.name for p in (out / "labels").iterdir()) == ["a.txt"]
    check()


# ---------------------------------------------------------------- wrong labels, silently


@pytest.mark.parametrize(
    ("images", "annotations", "message"),
    [
        (
            [_coco_image(1, "a.jpg"), _coco_image(1, "b.jpg")],
            [_box(1, 1)],
            "images[1].id 1 is used by an earlier image too",
        ),
        ([_coco_image(1, "a.jpg")], [_box(1, 7)], "annotations[0].image_id 7 matches no image"),
        (
            [_coco_image(1, "a.jpg"), _coco_image(2, "a.jpg")],
            [],
            "images[].file_name 'a.jpg' appears twice",
        ),
        (
            [_coco_image(1, "a.jpg", width=1e30)],
            [_box(1, 1)],
            "images[0].width: expected a whole number of pixels from 1 to 65535, got 1e+30",
        ),
        ([_coco_image(1, "a.jpg")], [_box(1, 1, category=5)], "annotations[0].category_id 5 matches no category"),
    ],
)
def test_coco_ambiguities_are_errors(tree: Path, untouched_outside, images, annotations, message) -> None:
    coco = _coco(tree / "export.json", images, annotations)
    out = tree / "reviewed"
    check = untouched_outside(out)
    assert _one_error(_import(coco, "coco", out, tree / "images")) == f"error: {coco}: {message}"
    check()


def test_same_stem_images_get_distinct_label_files(tree: Path, untouched_outside) -> None:
    _image(tree / "images" / "a.png")
    coco = _coco(
        tree / "export.json",
        [_coco_image(1, "a.jpg"), _coco_image(2, "a.png")],
        [_box(1, 1), {**_box(2, 2), "bbox": [30, 10, 10, 10]}],
    )
    out = tree / "reviewed"
    check = untouched_outside(out)
    result = _import(coco, "coco", out, tree / "images")
    assert result.exit_code == 0, result.stderr
    assert (
        f"WARNING {coco}: 1 images share a file stem with another; renamed so each has its own label file: "
        "a.png -> a-1.png" in result.stderr
    )
    assert sorted(p.name for p in (out / "images").iterdir()) == ["a-1.png", "a.jpg"]
    assert (out / "labels" / "a.txt").read_text() == "0 0.218750 0.291667 0.312500 0.416667\n"
    assert (out / "labels" / "a-1.txt").read_text() == "0 0.546875 0.312500 0.156250 0.208333\n"
    check()


# ---------------------------------------------------------------- a little fuzzing: always one line naming the file

_FUZZ_JSON = {
    "empty file": b"",
    "binary garbage": bytes(range(256)) * 4,
    "not UTF-8": b'{"images": "\xff\xfe"}',
    "a number": b"42",
    "null": b"null",
    "nested 100000 deep": b"[" * 100_000 + b"]" * 100_000,
}
_COCO_VARIANTS = {
    "a list, not an object": [],
    "no images": {"categories": []},
    "images is a dict": {"images": {}, "categories": []},
    "image is a list": {"images": [[1]], "categories": []},
    "image without id": {"images": [{"file_name": "a.jpg", "width": 1, "height": 1}], "categories": []},
    "id is a string": {"images": [{"id": "1", "file_name": "a.jpg", "width": 1, "height": 1}], "categories": []},
    "file_name is a number": {"images": [{"id": 1, "file_name": 3, "width": 1, "height": 1}], "categories": []},
    "width is NaN": {"images": [{"id": 1, "file_name": "a.jpg", "width": float("nan"), "height": 1}], "categories": []},
    "height is negative": {"images": [{"id": 1, "file_name": "a.jpg", "width": 1, "height": -4}], "categories": []},
    "width is zero": {"images": [{"id": 1, "file_name": "a.jpg", "width": 0, "height": 4}], "categories": []},
    "width is a fraction": {"images": [{"id": 1, "file_name": "a.jpg", "width": 2.5, "height": 4}], "categories": []},
    "category without name": {"images": [], "categories": [{"id": 1}]},
    "duplicate category": {"images": [], "categories": [{"id": 1, "name": "a"}, {"id": 1, "name": "b"}]},
    "annotations is a string": {"images": [], "categories": [], "annotations": "x"},
    "bbox too short": {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 4, "height": 4}],
        "categories": [{"id": 1, "name": "a"}],
        "annotations": [{"image_id": 1, "category_id": 1, "bbox": [1, 2]}],
    },
    "bbox with text": {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 4, "height": 4}],
        "categories": [{"id": 1, "name": "a"}],
        "annotations": [{"image_id": 1, "category_id": 1, "bbox": [1, 2, "x", 1]}],
    },
    "bbox with infinity": {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 4, "height": 4}],
        "categories": [{"id": 1, "name": "a"}],
        "annotations": [{"image_id": 1, "category_id": 1, "bbox": [1, 2, 1e999, 1]}],
    },
    "image_id is true": {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 4, "height": 4}],
        "categories": [{"id": 1, "name": "a"}],
        "annotations": [{"image_id": True, "category_id": 1, "bbox": [1, 2, 1, 1]}],
    },
}
_LS_BOX = {"type": "rectanglelabels", "original_width": 4, "original_height": 4, "value": {}}
_LABELSTUDIO_VARIANTS = {
    "an object, not a list": {},
    "task is a string": ["x"],
    "annotations is a dict": [{"annotations": {}}],
    "annotation is a list": [{"annotations": [[]]}],
    "result is a string": [{"annotations": [{"result": "x"}]}],
    "result is a number": [{"annotations": [{"result": [3]}]}],
    "no value": [{"annotations": [{"result": [{"type": "rectanglelabels"}]}]}],
    "value is a list": [{"annotations": [{"result": [{"type": "rectanglelabels", "value": []}]}]}],
    "no labels": [{"annotations": [{"result": [{**_LS_BOX, "value": {"rectanglelabels": []}}]}]}],
    "no original size": [
        {"annotations": [{"result": [{"type": "rectanglelabels", "value": {"rectanglelabels": ["a"]}}]}]}
    ],
    "x missing": [{"annotations": [{"result": [{**_LS_BOX, "value": {"rectanglelabels": ["a"], "y": 1}}]}]}],
    "width 1e30": [
        {"annotations": [{"result": [{**_LS_BOX, "original_width": 1e30, "value": {"rectanglelabels": ["a"]}}]}]}
    ],
    "no data": [{"annotations": [{"result": []}]}],
    "data.image is a number": [{"data": {"image": 5}, "annotations": [{"result": []}]}],
    "data.image is empty": [{"data": {"image": ""}, "annotations": [{"result": []}]}],
    "the same image twice": [
        {"data": {"image": "/data/local-files/?d=a.jpg"}, "annotations": [{"result": []}]},
        {"data": {"image": "/data/local-files/?d=a.jpg"}, "annotations": [{"result": []}]},
    ],
}
_CVAT_VARIANTS = {
    "empty file": "",
    "binary garbage": bytes(range(256)).decode("latin-1"),
    "another root": "<svg/>",
    "image without name": '<annotations><image width="4" height="4"/></annotations>',
    "width missing": '<annotations><image name="a.jpg" height="4"/></annotations>',
    "width is text": '<annotations><image name="a.jpg" width="wide" height="4"/></annotations>',
    "width is inf": '<annotations><image name="a.jpg" width="inf" height="4"/></annotations>',
    "height 1e30": '<annotations><image name="a.jpg" width="4" height="1e30"/></annotations>',
    "box without coordinates": (
        '<annotations><image name="a.jpg" width="4" height="4"><box label="a"/></image></annotations>'
    ),
    "box coordinate NaN": (
        '<annotations><image name="a.jpg" width="4" height="4">'
        '<box label="a" xtl="nan" ytl="0" xbr="1" ybr="1"/></image></annotations>'
    ),
    "unknown label": (
        "<annotations><meta><task><labels><label><name>a</name></label></labels></task></meta>"
        '<image name="a.jpg" width="4" height="4"><box label="b" xtl="0" ytl="0" xbr="1" ybr="1"/></image>'
        "</annotations>"
    ),
    "the same image twice": (
        '<annotations><image name="a.jpg" width="4" height="4"/><image name="a.jpg" width="4" height="4"/>'
        "</annotations>"
    ),
    "nested 100000 deep": "<annotations>" + "<a>" * 100_000 + "</a>" * 100_000 + "</annotations>",
    "unclosed": "<annotations><image name='x'",
    "absolute name": '<annotations><image name="/etc/hostname" width="4" height="4"/></annotations>',
}
_VOC_SIZE = (
    "<annotation><filename>a.jpg</filename><size><width>{width}</width><height>{height}</height></size></annotation>"
)
_VOC_VARIANTS = {
    "empty file": "",
    "another root": "<annotations/>",
    "no filename": "<annotation><size><width>4</width><height>4</height></size></annotation>",
    "no size": "<annotation><filename>a.jpg</filename></annotation>",
    "width is text": _VOC_SIZE.format(width="w", height="4"),
    "height negative": _VOC_SIZE.format(width="4", height="-4"),
    "width 1e30": _VOC_SIZE.format(width="1e30", height="4"),
    "object without box": (
        "<annotation><filename>a.jpg</filename><size><width>4</width><height>4</height></size>"
        "<object><name>a</name></object></annotation>"
    ),
    "box with NaN": (
        "<annotation><filename>a.jpg</filename><size><width>4</width><height>4</height></size>"
        "<object><name>a</name><bndbox><xmin>nan</xmin><ymin>0</ymin><xmax>1</xmax><ymax>1</ymax></bndbox>"
        "</object></annotation>"
    ),
    "filename outside": (
        "<annotation><filename>../../x.jpg</filename><size><width>4</width><height>4</height></size></annotation>"
    ),
}


def _fuzz_cases() -> list:
    cases = []
    for fmt in ("coco", "labelstudio"):
        cases += [pytest.param(fmt, "export.json", raw, id=f"{fmt}-{name}") for name, raw in _FUZZ_JSON.items()]
    cases += [pytest.param("coco", "export.json", json.dumps(v), id=f"coco-{k}") for k, v in _COCO_VARIANTS.items()]
    cases += [
        pytest.param("labelstudio", "export.json", json.dumps(v), id=f"labelstudio-{k}")
        for k, v in _LABELSTUDIO_VARIANTS.items()
    ]
    cases += [pytest.param("cvat", "annotations.xml", v, id=f"cvat-{k}") for k, v in _CVAT_VARIANTS.items()]
    cases += [pytest.param("voc", "a.xml", v, id=f"voc-{k}") for k, v in _VOC_VARIANTS.items()]
    return cases


@pytest.mark.parametrize(("fmt", "filename", "content"), _fuzz_cases())
def test_malformed_files_end_in_one_line_naming_the_file(tmp_path: Path, fmt, filename, content) -> None:
    path = tmp_path / filename
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    with pytest.raises(YolosslError) as raised:
        import_annotations(path, fmt, tmp_path / "out", images_dir=tmp_path)
    message = str(raised.value)
    assert message.startswith(f"{path}: ") and "\n" not in message and len(message) < 400, message
    assert not (tmp_path / "out").exists()
