"""Label Studio: tasks whose boxes are `predictions` (drafts to accept or fix), and the labeling config.

Writes `tasks.json` (one task per image; `model_version` = run/round; a score per box and per
task), `labeling_config.xml` (an image with RectangleLabels, one label per class) and `README.md`
on serving the images through Label Studio's local files storage. Reads Label Studio's JSON
export: only human `annotations` become labels (tasks nobody reviewed are left out and counted).
"""

from __future__ import annotations

import json
import logging
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlparse

import numpy as np

from yolossl._fs import resolve_inside
from yolossl.errors import YolosslError
from yolossl.export.files import field, items, load_json, mapping, number, refuse_duplicate_names, side
from yolossl.export.model import AnnotatedImage, Annotations, image_size

logger = logging.getLogger(__name__)

FROM_NAME, TO_NAME = "label", "image"
LOCAL_FILES_PREFIX = "/data/local-files/?d="


def labeling_config(names: dict[int, str]) -> str:
    view = ET.Element("View")
    ET.SubElement(view, "Image", name=TO_NAME, value="$image")
    labels = ET.SubElement(view, "RectangleLabels", name=FROM_NAME, toName=TO_NAME)
    for name in names.values():
        ET.SubElement(labels, "Label", value=name)
    ET.indent(view)
    return ET.tostring(view, encoding="unicode") + "\n"


def to_results(image: AnnotatedImage, names: dict[int, str]) -> list[dict]:
    """Boxes as Label Studio rectangle results: percentages of the image, label by name."""
    results = []
    for k in range(len(image)):
        x1, y1, x2, y2 = (float(v) for v in image.xyxy[k])
        result = {
            "id": f"b{k}",
            "from_name": FROM_NAME,
            "to_name": TO_NAME,
            "type": "rectanglelabels",
            "original_width": image.width,
            "original_height": image.height,
            "image_rotation": 0,
            "value": {
                "x": 100 * x1 / image.width,
                "y": 100 * y1 / image.height,
                "width": 100 * (x2 - x1) / image.width,
                "height": 100 * (y2 - y1) / image.height,
                "rotation": 0,
                "rectanglelabels": [names[int(image.classes[k])]],
            },
        }
        if image.scores is not None:
            result["score"] = float(image.scores[k])
        results.append(result)
    return results


def write_labelstudio(annotations: Annotations, out: Path) -> Path:
    tasks = []
    for image in annotations.images:
        task: dict = {"data": {TO_NAME: LOCAL_FILES_PREFIX + quote(f"images/{image.name}")}}
        results = to_results(image, annotations.names)
        if annotations.is_prediction:
            score = float(np.mean(image.scores)) if image.scores is not None and len(image) else 0.0
            task["predictions"] = [{"model_version": annotations.model_version, "score": score, "result": results}]
        else:
            task["annotations"] = [{"result": results}]
        tasks.append(task)
    path = out / "tasks.json"
    path.write_text(json.dumps(tasks, indent=1), encoding="utf-8")
    (out / "labeling_config.xml").write_text(labeling_config(annotations.names), encoding="utf-8")
    (out / "README.md").write_text(_SERVING.format(root=out.resolve()), encoding="utf-8")
    return path


_SERVING = """# Review these pseudo-labels in Label Studio

1. Start Label Studio with local files serving, rooted at this folder:

       LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true \\
       LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT={root} \\
       label-studio start

2. Create a project; in Settings > Labeling Interface > Code, paste `labeling_config.xml`.
3. In Settings > Cloud Storage, add a *Local files* source storage with the absolute path
   `{root}/images` (do not sync it: the tasks below already point at the images).
4. Import `tasks.json`. Our boxes arrive as predictions (model version and scores shown);
   accept or correct them, then Export > JSON.
5. `yolossl import export.json --format labelstudio --images {root} --data your/data.yaml --out reviewed/`
   writes a dataset for `yolossl cycle --data reviewed/data.yaml`.
"""


def read_labelstudio(path: Path, images_dir: Path, names: dict[int, str] | None = None) -> Annotations:
    """A Label Studio JSON export; image URLs of local files are resolved against `images_dir`, and stay inside it."""
    tasks = items(load_json(path, "Label Studio JSON export"), path, "the file (a list of tasks)")
    reviewed = []
    for task_number, task in enumerate(tasks, start=1):
        where = f"task {task_number}"
        annotations = items(mapping(task, path, where).get("annotations", []), path, f"{where}.annotations")
        done = [
            k
            for k, a in enumerate(annotations)
            if not mapping(a, path, f"{where}.annotations[{k}]").get("was_cancelled")
        ]
        if done:
            last = f"{where}.annotations[{done[-1]}]"
            reviewed.append((where, task, _boxes(annotations[done[-1]], path, last)))
    if len(reviewed) < len(tasks):
        logger.warning(
            "%s: %d of %d tasks have no annotation (not reviewed) and are left out",
            path,
            len(tasks) - len(reviewed),
            len(tasks),
        )
    if names is None:
        names = dict(enumerate(sorted({label for _, _, boxes in reviewed for label, *_ in boxes})))
    index = {name: k for k, name in names.items()}
    named = [(where, _image_name(task, path, where, images_dir), boxes) for where, task, boxes in reviewed]
    refuse_duplicate_names([name for _, name, _ in named], path, f"data.{TO_NAME}")
    images = []
    for where, name, boxes in named:
        image_path = resolve_inside(
            images_dir, name, source=path, entry=f"{where} data.{TO_NAME}", what="--images folder"
        )
        classes, xyxy = [], []
        width = height = 0
        for label, width, height, box in boxes:
            if label not in index:
                raise YolosslError(f"{path}: {where}: unknown class {label!r} (known: {', '.join(index)})")
            x, y, w, h = box
            xyxy.append([x / 100 * width, y / 100 * height, (x + w) / 100 * width, (y + h) / 100 * height])
            classes.append(index[label])
        if not boxes:  # no box said the image's size
            width, height = _size_of(image_path, path, where)
        images.append(
            AnnotatedImage(
                image_path,
                Path(name).name,
                width,
                height,
                np.array(classes, dtype=np.int64),
                np.array(xyxy, dtype=np.float64).reshape(-1, 4),
            )
        )
    return Annotations(names, images)


def _size_of(image_path: Path, path: Path, where: str) -> tuple[int, int]:
    if not image_path.exists():
        raise YolosslError(f"{path}: {where}: image not found at {image_path} (use --images DIR)")
    try:
        return image_size(image_path)
    except YolosslError as e:
        raise YolosslError(f"{path}: {where}: {e}") from e


def _boxes(annotation: dict, path: Path, where: str) -> list[tuple[str, int, int, tuple[float, ...]]]:
    """The rectangles of one annotation: (label, image width, image height, (x, y, w, h) in percent)."""
    boxes = []
    results = items(annotation.get("result", []), path, f"{where}.result")
    for k, result in enumerate(results):
        entry = f"{where}.result[{k}]"
        if mapping(result, path, entry).get("type") != "rectanglelabels":
            continue
        value = field(result, "value", dict, path, entry)
        labels = field(value, "rectanglelabels", list, path, f"{entry}.value")
        if not labels or not isinstance(labels[0], str):
            raise YolosslError(f"{path}: {entry}.value.rectanglelabels: expected a list with a class name")
        width = side(field(result, "original_width", (int, float), path, entry), path, f"{entry}.original_width")
        height = side(field(result, "original_height", (int, float), path, entry), path, f"{entry}.original_height")
        box = tuple(
            number(field(value, c, (int, float), path, f"{entry}.value"), path, f"{entry}.value.{c}")
            for c in ("x", "y", "width", "height")
        )
        boxes.append((labels[0], width, height, box))
    return boxes


def _image_name(task: dict, path: Path, where: str, images_dir: Path) -> str:
    """The image's name under `images_dir`: a local file's `?d=` path (absolute only inside it), else the URL's name."""
    url = field(field(task, "data", dict, path, where), TO_NAME, str, path, f"{where}.data")
    if not url:
        raise YolosslError(f"{path}: {where}: data.{TO_NAME} is empty")
    if not url.startswith("/data/local-files/"):
        return unquote(Path(urlparse(url).path).name)
    name = parse_qs(urlparse(url).query).get("d", [""])[0]  # parse_qs already unquotes
    if os.path.isabs(name) and ".." not in Path(name).parts:
        root = images_dir.resolve()
        if Path(name).is_relative_to(root):  # an absolute path is accepted only under --images
            return Path(name).relative_to(root).as_posix()
    return name
