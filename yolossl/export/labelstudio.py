"""Label Studio: tasks whose boxes are `predictions` (drafts to accept or fix), and the labeling config.

Writes `tasks.json` (one task per image; `model_version` = run/round; a score per box and per
task), `labeling_config.xml` (an image with RectangleLabels, one label per class) and `README.md`
on serving the images through Label Studio's local files storage. Reads Label Studio's JSON
export: only human `annotations` become labels (tasks nobody reviewed are left out and counted).
"""

from __future__ import annotations

import json
import logging
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlparse

import numpy as np

from yolossl.errors import YolosslError
from yolossl.export.model import AnnotatedImage, Annotations

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
    """A Label Studio JSON export; image URLs of local files are resolved against `images_dir`."""
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise YolosslError(f"{path}: not a Label Studio JSON export ({e.msg})") from e
    if not isinstance(tasks, list):
        raise YolosslError(f"{path}: not a Label Studio JSON export (expected a list of tasks)")
    found: list[str] = []
    reviewed = []
    for number, task in enumerate(tasks, start=1):
        done = [a for a in task.get("annotations", []) if not a.get("was_cancelled")]
        if not done:
            continue
        results = [r for r in done[-1].get("result", []) if r.get("type") == "rectanglelabels"]
        found.extend(label for r in results for label in r["value"].get("rectanglelabels", []))
        reviewed.append((number, task, results))
    if len(reviewed) < len(tasks):
        logger.warning(
            "%s: %d of %d tasks have no annotation (not reviewed) and are left out",
            path,
            len(tasks) - len(reviewed),
            len(tasks),
        )
    names = names if names is not None else dict(enumerate(sorted(set(found))))
    index = {name: k for k, name in names.items()}
    images = []
    for number, task, results in reviewed:
        name = _image_name(task, path, number)
        classes, xyxy = [], []
        width = height = 0
        for r in results:
            label = (r["value"].get("rectanglelabels") or [""])[0]
            if label not in index:
                raise YolosslError(f"{path}: task {number}: unknown class {label!r} (known: {', '.join(index)})")
            width, height = int(r["original_width"]), int(r["original_height"])
            v = r["value"]
            x1, y1 = v["x"] / 100 * width, v["y"] / 100 * height
            xyxy.append([x1, y1, x1 + v["width"] / 100 * width, y1 + v["height"] / 100 * height])
            classes.append(index[label])
        image_path = images_dir / name
        if not results:
            from yolossl.export.model import image_size

            width, height = image_size(image_path)
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


def _image_name(task: dict, path: Path, number: int) -> str:
    url = str(task.get("data", {}).get(TO_NAME, ""))
    if not url:
        raise YolosslError(f"{path}: task {number}: no data.{TO_NAME}")
    if url.startswith("/data/local-files/"):
        return unquote(parse_qs(urlparse(url).query).get("d", [""])[0])
    return unquote(Path(urlparse(url).path).name)
