"""Pascal VOC: one `Annotations/<name>.xml` per image, `ImageSets/Main/default.txt`, images in `JPEGImages/`.

An image's name keeps its subfolders (`cams/a/0001.jpg`): its annotation is `Annotations/cams/a/0001.xml`,
its `<filename>` the whole name, its line in the image set `cams/a/0001`, as datumaro writes them.

Coordinates are written as pixel floats (0-based corners) so that nothing is rounded away; tools
that expect integers round them. A predicted box carries its score in an extra `<score>` element.
"""

from __future__ import annotations

import logging
import os
import xml.etree.ElementTree as ET
from pathlib import Path, PurePosixPath

import numpy as np

from yolossl._fs import resolve_inside
from yolossl.errors import YolosslError
from yolossl.export.annotations import AnnotatedImage, Annotations
from yolossl.export.files import number, parse_xml, refuse_duplicate_names, side

logger = logging.getLogger(__name__)


def write_voc(annotations: Annotations, out: Path, images_dir: str = "JPEGImages") -> Path:
    folder = out / "Annotations"
    folder.mkdir()
    (out / "ImageSets" / "Main").mkdir(parents=True)
    stems = []
    for image in annotations.images:
        root = ET.Element("annotation")
        ET.SubElement(root, "folder").text = images_dir
        ET.SubElement(root, "filename").text = image.name
        size = ET.SubElement(root, "size")
        for tag, value in (("width", image.width), ("height", image.height), ("depth", 3)):
            ET.SubElement(size, tag).text = str(value)
        for k in range(len(image)):
            obj = ET.SubElement(root, "object")
            ET.SubElement(obj, "name").text = annotations.names[int(image.classes[k])]
            for tag in ("pose", "truncated", "difficult", "occluded"):
                ET.SubElement(obj, tag).text = "Unspecified" if tag == "pose" else "0"
            box = ET.SubElement(obj, "bndbox")
            for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), image.xyxy[k], strict=True):
                ET.SubElement(box, tag).text = f"{float(value):.6f}"
            if image.scores is not None:
                ET.SubElement(obj, "score").text = f"{float(image.scores[k]):.6f}"
        ET.indent(root)
        stem = PurePosixPath(image.name).with_suffix("").as_posix()
        stems.append(stem)
        (folder / stem).parent.mkdir(parents=True, exist_ok=True)
        ET.ElementTree(root).write(folder / f"{stem}.xml", encoding="utf-8", xml_declaration=True)
    (out / "ImageSets" / "Main" / "default.txt").write_text("".join(f"{s}\n" for s in stems))
    (out / "labelmap.txt").write_text(
        "# label:color_rgb:parts:actions\nbackground:0,0,0::\n"
        + "".join(f"{name}:::\n" for name in annotations.names.values())
    )
    return folder


def read_voc(path: Path, images_dir: Path, names: dict[int, str] | None = None) -> Annotations:
    """A VOC folder (with `Annotations/`) or one XML file; classes by name (from `names`, else as found).

    Each `<filename>` must stay inside `images_dir` and name a different image.
    """
    files = _annotation_files(path)
    parsed = [(f, _parse(f)) for f in files]
    if names is None:
        found = sorted({obj[0] for _, (_, _, _, objects) in parsed for obj in objects})
        names = dict(enumerate(found))
    index = {name: k for k, name in names.items()}
    images = []
    for file, (filename, width, height, objects) in parsed:
        image_path = resolve_inside(images_dir, filename, source=file, entry="<filename>", what="images folder")
        classes, xyxy = [], []
        for number_in_file, (name, box) in enumerate(objects, start=1):
            if name not in index:
                raise YolosslError(
                    f"{file}: object {number_in_file}: unknown class {name!r} (known: {', '.join(index)})"
                )
            classes.append(index[name])
            xyxy.append(box)
        images.append(
            AnnotatedImage(
                image_path,
                filename,
                width,
                height,
                np.array(classes, dtype=np.int64),
                np.array(xyxy, dtype=np.float64).reshape(-1, 4),
            )
        )
    refuse_duplicate_names([image.name for image in images], path, "<filename>")
    return Annotations(names, images)


def _annotation_files(path: Path) -> list[Path]:
    """The XML files to read, subfolders included (links to folders not followed): regular files only
    (a FIFO among them would block the import)."""
    if not path.is_dir():
        return [path]
    found = [Path(folder) / name for folder, _, names in os.walk(path / "Annotations") for name in names]
    files = []
    for file in sorted(f for f in found if f.suffix == ".xml"):
        if file.is_file():
            files.append(file)
        else:
            logger.warning("%s: not a regular file (a FIFO, socket, device or folder), skipped", file)
    if not files:
        raise YolosslError(f"{path}: no VOC annotation XML found (expected Annotations/**/*.xml)")
    return files


def _parse(file: Path) -> tuple[str, int, int, list[tuple[str, list[float]]]]:
    root = parse_xml(file, kind="VOC annotation")
    if root.tag != "annotation":
        raise YolosslError(f"{file}: not a VOC annotation (the root element is <{root.tag[:50]}>, not <annotation>)")
    filename = root.findtext("filename") or ""
    width = side(root.findtext("size/width"), file, "<size><width>")
    height = side(root.findtext("size/height"), file, "<size><height>")
    objects = []
    for k, obj in enumerate(root.iter("object"), start=1):
        box = [
            number(obj.findtext(f"bndbox/{tag}"), file, f"object {k} <{tag}>")
            for tag in ("xmin", "ymin", "xmax", "ymax")
        ]
        objects.append((obj.findtext("name") or "", box))
    if not filename:
        raise YolosslError(f"{file}: no <filename>")
    return filename, width, height, objects
