"""Pascal VOC: one `Annotations/<stem>.xml` per image, `ImageSets/Main/default.txt`, images in `JPEGImages/`.

Coordinates are written as pixel floats (0-based corners) so that nothing is rounded away; tools
that expect integers round them. A predicted box carries its score in an extra `<score>` element.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from yolossl.errors import YolosslError
from yolossl.export.model import AnnotatedImage, Annotations


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
        stem = Path(image.name).stem
        stems.append(stem)
        ET.ElementTree(root).write(folder / f"{stem}.xml", encoding="utf-8", xml_declaration=True)
    (out / "ImageSets" / "Main" / "default.txt").write_text("".join(f"{s}\n" for s in stems))
    (out / "labelmap.txt").write_text(
        "# label:color_rgb:parts:actions\nbackground:0,0,0::\n"
        + "".join(f"{name}:::\n" for name in annotations.names.values())
    )
    return folder


def read_voc(path: Path, images_dir: Path, names: dict[int, str] | None = None) -> Annotations:
    """A VOC folder (with `Annotations/`) or one XML file; classes by name (from `names`, else as found)."""
    files = sorted((path / "Annotations").glob("*.xml")) if path.is_dir() else [path]
    if not files:
        raise YolosslError(f"{path}: no VOC annotation XML found (expected Annotations/*.xml)")
    parsed = [(f, _parse(f)) for f in files]
    if names is None:
        found = sorted({obj[0] for _, (_, _, _, objects) in parsed for obj in objects})
        names = dict(enumerate(found))
    index = {name: k for k, name in names.items()}
    images = []
    for file, (filename, width, height, objects) in parsed:
        classes, xyxy = [], []
        for number, (name, box) in enumerate(objects, start=1):
            if name not in index:
                raise YolosslError(f"{file}: object {number}: unknown class {name!r} (known: {', '.join(index)})")
            classes.append(index[name])
            xyxy.append(box)
        images.append(
            AnnotatedImage(
                images_dir / filename,
                filename,
                width,
                height,
                np.array(classes, dtype=np.int64),
                np.array(xyxy, dtype=np.float64).reshape(-1, 4),
            )
        )
    return Annotations(names, images)


def _parse(file: Path) -> tuple[str, int, int, list[tuple[str, list[float]]]]:
    try:
        root = ET.parse(file).getroot()
        filename = root.findtext("filename") or ""
        width, height = int(float(root.findtext("size/width"))), int(float(root.findtext("size/height")))
        objects = []
        for obj in root.iter("object"):
            box = [float(obj.findtext(f"bndbox/{tag}")) for tag in ("xmin", "ymin", "xmax", "ymax")]
            objects.append((obj.findtext("name") or "", box))
    except (ET.ParseError, TypeError, ValueError) as e:
        raise YolosslError(f"{file}: not a VOC annotation ({type(e).__name__}: {e})") from e
    if not filename:
        raise YolosslError(f"{file}: no <filename>")
    return filename, width, height, objects
