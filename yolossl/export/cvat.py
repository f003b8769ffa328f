"""CVAT for images 1.1: `annotations.xml`, and a zip with it and `images/` the way CVAT imports a dataset.

Pseudo-labels are boxes with `source="auto"` (CVAT's mark for automatic annotation) and their
score in a `score` attribute; the status (kept / uncertain) goes in a `status` attribute.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np

from yolossl.errors import YolosslError
from yolossl.export.model import AnnotatedImage, Annotations


def write_cvat(annotations: Annotations, out: Path) -> Path:
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
    """A CVAT for images 1.1 XML (or a CVAT dataset zip containing one); classes by name."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            try:
                text = archive.read("annotations.xml")
            except KeyError as e:
                raise YolosslError(f"{path}: the zip has no annotations.xml") from e
    else:
        text = path.read_bytes()
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise YolosslError(f"{path}: not a CVAT XML ({e})") from e
    if names is None:
        declared = root.findall("meta/task/labels/label") + root.findall("meta/project/labels/label")
        found = [label.findtext("name") for label in declared] or sorted({b.get("label") for b in root.iter("box")})
        names = dict(enumerate(n for n in found if n))
    index = {name: k for k, name in names.items()}
    images = []
    for node in root.iter("image"):
        classes, xyxy = [], []
        for number, box in enumerate(node.iter("box"), start=1):
            label = box.get("label")
            if label not in index:
                raise YolosslError(
                    f"{path}: image {node.get('name')}, box {number}: unknown class {label!r} "
                    f"(known: {', '.join(index)})"
                )
            try:
                xyxy.append([float(box.get(k)) for k in ("xtl", "ytl", "xbr", "ybr")])
            except (TypeError, ValueError) as e:
                raise YolosslError(f"{path}: image {node.get('name')}, box {number}: bad coordinates") from e
            classes.append(index[label])
        name = node.get("name") or ""
        images.append(
            AnnotatedImage(
                images_dir / name,
                name,
                int(node.get("width", 0)),
                int(node.get("height", 0)),
                np.array(classes, dtype=np.int64),
                np.array(xyxy, dtype=np.float64).reshape(-1, 4),
            )
        )
    return Annotations(names, images)
