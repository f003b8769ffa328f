"""COCO instances JSON: `images`, `annotations` (pixel `[x, y, w, h]`, `score` on predictions), `categories`.

Category ids are class id + 1 (COCO reserves 0). `file_name` is relative to the export's `images/`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from yolossl.errors import YolosslError
from yolossl.export.model import AnnotatedImage, Annotations


def write_coco(annotations: Annotations, out: Path, filename: str = "instances.json") -> Path:
    images, boxes = [], []
    for image_id, image in enumerate(annotations.images, start=1):
        images.append({"id": image_id, "file_name": image.name, "width": image.width, "height": image.height})
        for k in range(len(image)):
            x1, y1, x2, y2 = (float(v) for v in image.xyxy[k])
            box = {
                "id": len(boxes) + 1,
                "image_id": image_id,
                "category_id": int(image.classes[k]) + 1,
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "area": (x2 - x1) * (y2 - y1),
                "iscrowd": 0,
            }
            if image.scores is not None:
                box["score"] = float(image.scores[k])
            if image.status is not None:
                box["attributes"] = {"status": image.status[k]}
            boxes.append(box)
    categories = [{"id": k + 1, "name": name, "supercategory": "object"} for k, name in annotations.names.items()]
    payload = {
        "info": {"description": annotations.model_version or "yolossl export"},
        "images": images,
        "annotations": boxes,
        "categories": categories,
    }
    path = out / filename
    path.write_text(json.dumps(payload, indent=1), encoding="utf-8")
    return path


def read_coco(path: Path, images_dir: Path) -> Annotations:
    """A COCO instances JSON; `file_name`s are resolved against `images_dir`."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        categories = {int(c["id"]): str(c["name"]) for c in payload["categories"]}
        entries = payload["images"]
        boxes = payload.get("annotations", [])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise YolosslError(f"{path}: not a COCO instances file ({type(e).__name__}: {e})") from e
    ordered = sorted(categories)
    names = {k: categories[cid] for k, cid in enumerate(ordered)}
    class_of = {cid: k for k, cid in enumerate(ordered)}
    by_image: dict[int, list[dict]] = {}
    for box in boxes:
        by_image.setdefault(box.get("image_id"), []).append(box)
    images = []
    for entry in entries:
        mine = by_image.get(entry["id"], [])
        classes, xyxy = [], []
        for box in mine:
            if box.get("category_id") not in class_of:
                raise YolosslError(f"{path}: annotation {box.get('id')}: unknown category_id {box.get('category_id')}")
            x, y, w, h = (float(v) for v in box["bbox"])
            classes.append(class_of[box["category_id"]])
            xyxy.append([x, y, x + w, y + h])
        images.append(
            AnnotatedImage(
                images_dir / entry["file_name"],
                entry["file_name"],
                int(entry["width"]),
                int(entry["height"]),
                np.array(classes, dtype=np.int64),
                np.array(xyxy, dtype=np.float64).reshape(-1, 4),
            )
        )
    return Annotations(names, images)
