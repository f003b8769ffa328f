"""Label Studio: tasks whose boxes are `predictions` (drafts to accept or fix), and the labeling config.

Writes `tasks.json` (one task per image; `model_version` = run/round; a score per box and per
task) and `labeling_config.xml` (an image with RectangleLabels, one label per class); each task's
image is the export's own link served by Label Studio's local files storage, or `PREFIX + name`
where the user keeps the images (`s3://bucket/cams/`, `https://...`, `/data/local-files/?d=cams/`).
Reads Label Studio's JSON export: only human `annotations` become labels (tasks nobody reviewed
are left out and counted).
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
from yolossl.export.annotations import AnnotatedImage, Annotations
from yolossl.export.files import field, items, load_json, mapping, number, refuse_duplicate_names, side

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


def image_url(name: str, prefix: str | None) -> str:
    """The task's image: `prefix + name` (URL-quoted for web paths, as is for bucket keys), else our own link."""
    if prefix is None:
        return LOCAL_FILES_PREFIX + quote(f"images/{name}")
    web = prefix.startswith(("/", "http://", "https://"))
    return prefix + (quote(name) if web else name)


def write_labelstudio(annotations: Annotations, out: Path, image_url_prefix: str | None = None) -> Path:
    tasks = []
    for image in annotations.images:
        task: dict = {"data": {TO_NAME: image_url(image.name, image_url_prefix)}}
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
    return path


def serving_readme(root: Path, prefix: str | None) -> str:
    """How to open the tasks in Label Studio: serving the export's links, or the user's own storage."""
    if prefix is None:
        serve = _LOCAL_LINKS.format(root=root)
    elif prefix.startswith(LOCAL_FILES_PREFIX):
        serve = _LOCAL_FILES.format(prefix=prefix)
    elif prefix.startswith(("http://", "https://")):
        serve = f"1. The tasks point at `{prefix}<name>`: Label Studio's browser must reach those URLs.\n"
    else:
        serve = _BUCKET.format(prefix=prefix)
    images = f"{root}/images" if prefix is None else "YOUR_IMAGES_FOLDER"
    return _REVIEW.format(serve=serve, images=images)


_REVIEW = """# Review these pseudo-labels in Label Studio

{serve}
2. Create a project; in Settings > Labeling Interface > Code, paste `labeling_config.xml`.
3. Import `tasks.json`. Our boxes arrive as predictions (model version and scores shown);
   accept or correct them, then Export > JSON.
4. `yolossl import export.json --format labelstudio --images {images} --data your/data.yaml --out reviewed/`
   writes a dataset for `yolossl cycle --data reviewed/data.yaml` (labels under your images' names).
"""

_LOCAL_LINKS = """1. Start Label Studio with local files serving, rooted at this folder:

       LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true \\
       LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT={root} \\
       label-studio start

   and in the project's Settings > Cloud Storage add a *Local files* source storage with the
   absolute path `{root}/images` (do not sync it: the tasks already point at the images).
"""

_LOCAL_FILES = """1. The tasks point at `{prefix}<name>`: start Label Studio with
   `LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true` and `LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT` set
   to the folder that `?d=` is relative to, and in the project's Settings > Cloud Storage add a
   *Local files* source storage with the absolute path of your images folder (do not sync it).
"""

_BUCKET = """1. The tasks point at `{prefix}<name>`: in the project's Settings > Cloud Storage add a source
   storage for that bucket (S3, GCS or Azure) so that Label Studio can sign the URLs; do not sync
   it (the tasks already name every image).
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
        width = height = 0  # no box says the image's size: the import reads it from the image it finds
        for label, width, height, box in boxes:
            if label not in index:
                raise YolosslError(f"{path}: {where}: unknown class {label!r} (known: {', '.join(index)})")
            x, y, w, h = box
            xyxy.append([x / 100 * width, y / 100 * height, (x + w) / 100 * width, (y + h) / 100 * height])
            classes.append(index[label])
        images.append(
            AnnotatedImage(
                image_path,
                name,
                width,
                height,
                np.array(classes, dtype=np.int64),
                np.array(xyxy, dtype=np.float64).reshape(-1, 4),
            )
        )
    return Annotations(names, images)


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
    """The image's name as the task gives it: a local file's `?d=` path (absolute only inside
    `images_dir`), else the URL's path after the host or bucket (its file name checked first).
    """
    url = field(field(task, "data", dict, path, where), TO_NAME, str, path, f"{where}.data")
    if not url:
        raise YolosslError(f"{path}: {where}: data.{TO_NAME} is empty")
    entry = f"{where} data.{TO_NAME}"
    if not url.startswith("/data/local-files/"):
        segments = [unquote(s) for s in urlparse(url).path.split("/") if s]
        if not segments:
            raise YolosslError(f"{path}: {entry} {url[:200]!r} names no file")
        resolve_inside(images_dir, segments[-1], source=path, entry=entry, what="--images folder")
        return "/".join(segments)
    name = parse_qs(urlparse(url).query).get("d", [""])[0]  # parse_qs already unquotes
    if os.path.isabs(name) and ".." not in Path(name).parts:
        root = images_dir.resolve()
        if Path(name).is_relative_to(root):  # an absolute path is accepted only under --images
            return Path(name).relative_to(root).as_posix()
    return name
