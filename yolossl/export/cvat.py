"""CVAT for images 1.1: `annotations.xml`, and a zip with it and `images/` the way CVAT imports a dataset.

`<image name>` is the image's name relative to the user's folder (`cams/a/0001.jpg`), as a task
created from that folder names it.

Pseudo-labels are boxes with `source="auto"` (CVAT's mark for automatic annotation) and their
score in a `score` attribute; the status (kept / uncertain) goes in a `status` attribute.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np

from yolossl._fs import resolve_inside
from yolossl.errors import YolosslError
from yolossl.export.annotations import AnnotatedImage, Annotations
from yolossl.export.files import is_zip, number, parse_xml, read_zip_member, refuse_duplicate_names, side


def write_cvat(annotations: Annotations, out: Path, with_images: bool = True) -> Path:
    """`annotations.xml`; with the images, also `cvat_dataset.zip` (XML + `images/<name>`) to create a task from."""
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    task = ET.SubElement(ET.SubElement(root, "meta"), "task")
    ET.SubElement(task, "name").text = annotations.model_version or "yolossl export"
    ET.SubElement(task, "size").text = str(len(annotations.images))
    labels = ET.SubElement(task, "labels")
    for name in annotations.names.values():
        label = ET.SubElement(labels, "label")
        ET.SubElement(label, "name").text = name
        ET.SubElement(label, "type").text = "rectangle"
        if annotations.is_prediction:
            attributes = ET.SubElement(label, "attributes")
            _attribute_spec(attributes, "score", "number", "0", "0;1;0.00001")
            _attribute_spec(attributes, "status", "select", "kept", "kept\nuncertain")
    for image_id, image in enumerate(annotations.images):
        node = ET.SubElement(
            root, "image", id=str(image_id), name=image.name, width=str(image.width), height=str(image.height)
        )
        for k in range(len(image)):
            x1, y1, x2, y2 = (f"{float(v):.6f}" for v in image.xyxy[k])
            box = ET.SubElement(
                node,
                "box",
                label=annotations.names[int(image.classes[k])],
                source="auto" if image.scores is not None else "manual",
                occluded="0",
                xtl=x1,
                ytl=y1,
                xbr=x2,
                ybr=y2,
                z_order="0",
            )
            if image.scores is not None:
                ET.SubElement(box, "attribute", name="score").text = f"{float(image.scores[k]):.6f}"
            if image.status is not None:
                ET.SubElement(box, "attribute", name="status").text = image.status[k]
    ET.indent(root)
    xml_path = out / "annotations.xml"
    ET.ElementTree(root).write(xml_path, encoding="utf-8", xml_declaration=True)
    if not with_images:  # the task is made from the user's own images: upload annotations.xml into it
        return xml_path
    with zipfile.ZipFile(out / "cvat_dataset.zip", "w", compression=zipfile.ZIP_STORED) as archive:
        archive.write(xml_path, "annotations.xml")
        for image in annotations.images:
            archive.write(image.path, f"images/{image.name}")
    return xml_path


def _attribute_spec(parent: ET.Element, name: str, kind: str, default: str, values: str) -> None:
    attribute = ET.SubElement(parent, "attribute")
    for tag, text in (
        ("name", name),
        ("mutable", "False"),
        ("input_type", kind),
        ("default_value", default),
        ("values", values),
    ):
        ET.SubElement(attribute, tag).text = text


def read_cvat(path: Path, images_dir: Path, names: dict[int, str] | None = None) -> Annotations:
    """A CVAT for images 1.1 XML (or a CVAT dataset zip containing one); classes by name.

    Image names must stay inside `images_dir`, appear once, and carry a real width and height.
    """
    text = read_zip_member(path, "annotations.xml") if is_zip(path) else None
    root = parse_xml(path, text, "CVAT XML")
    if root.tag != "annotations":
        raise YolosslError(f"{path}: not a CVAT XML (the root element is <{root.tag[:50]}>, not <annotations>)")
    if names is None:
        declared = root.findall("meta/task/labels/label") + root.findall("meta/project/labels/label")
        found = [label.findtext("name") for label in declared] or sorted(
            {b.get("label") or "" for b in root.iter("box")}
        )
        names = dict(enumerate(dict.fromkeys(n for n in found if n)))
    index = {name: k for k, name in names.items()}
    images = [_read_image(node, k, path, images_dir, index) for k, node in enumerate(root.iter("image"))]
    refuse_duplicate_names([image.name for image in images], path, "<image name>")
    return Annotations(names, images)


def _read_image(node: ET.Element, k: int, path: Path, images_dir: Path, index: dict[str, int]) -> AnnotatedImage:
    """The `k`-th `<image>`, every attribute checked; errors name the file, the image and the box."""
    where = f"<image> {k + 1}"
    name = node.get("name")
    image_path = resolve_inside(images_dir, name, source=path, entry=f"{where} name", what="images folder")
    width = side(node.get("width"), path, f"{where} ({name}) width")
    height = side(node.get("height"), path, f"{where} ({name}) height")
    classes, xyxy = [], []
    for box_number, box in enumerate(node.iter("box"), start=1):
        label = box.get("label")
        if label not in index:
            raise YolosslError(
                f"{path}: image {name}, box {box_number}: unknown class {label!r} (known: {', '.join(index)})"
            )
        xyxy.append(
            [number(box.get(c), path, f"image {name}, box {box_number} {c}") for c in ("xtl", "ytl", "xbr", "ybr")]
        )
        classes.append(index[label])
    return AnnotatedImage(
        image_path,
        name,
        width,
        height,
        np.array(classes, dtype=np.int64),
        np.array(xyxy, dtype=np.float64).reshape(-1, 4),
    )
