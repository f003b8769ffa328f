"""COCO instances JSON: `images`, `annotations` (pixel `[x, y, w, h]`, `score` on predictions), `categories`.

Category ids are class id + 1 (COCO reserves 0). `file_name` is relative to the export's `images/`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from yolossl._fs import resolve_inside
from yolossl.errors import YolosslError
from yolossl.export.annotations import AnnotatedImage, Annotations
from yolossl.export.files import field, items, load_json, number, refuse_duplicate_names, side


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
    """A COCO instances JSON; `file_name`s are resolved against `images_dir` and must stay inside it.

    Checked up front: every key and type, unique image and category ids, unique file names, every
    annotation pointing at an image and a category (a mistake there would silently move boxes).
    """
    payload = load_json(path, "COCO instances file")
    names, class_of = _categories(payload, path)
    images: dict[int, AnnotatedImage] = {}
    for k, entry in enumerate(items(field(payload, "images", list, path, ""), path, "images")):
        where = f"images[{k}]"
        image_id = field(entry, "id", int, path, where)
        if image_id in images:
            raise YolosslError(f"{path}: {where}.id {image_id} is used by an earlier image too")
        name = field(entry, "file_name", str, path, where)
        image_path = resolve_inside(images_dir, name, source=path, entry=f"{where}.file_name", what="images folder")
        width = side(field(entry, "width", (int, float), path, where), path, f"{where}.width")
        height = side(field(entry, "height", (int, float), path, where), path, f"{where}.height")
        images[image_id] = AnnotatedImage(image_path, name, width, height)
    refuse_duplicate_names([image.name for image in images.values()], path, "images[].file_name")
    boxes: dict[int, tuple[list[int], list[list[float]]]] = {image_id: ([], []) for image_id in images}
    for k, box in enumerate(items(payload.get("annotations", []), path, "annotations")):
        where = f"annotations[{k}]"
        image_id = field(box, "image_id", int, path, where)
        if image_id not in images:
            raise YolosslError(f"{path}: {where}.image_id {image_id} matches no image")
        category = field(box, "category_id", int, path, where)
        if category not in class_of:
            raise YolosslError(f"{path}: {where}.category_id {category} matches no category")
        bbox = items(field(box, "bbox", list, path, where), path, f"{where}.bbox")
        if len(bbox) != 4:
            raise YolosslError(f"{path}: {where}.bbox: expected [x, y, w, h], got {len(bbox)} values")
        x, y, w, h = (number(v, path, f"{where}.bbox[{i}]") for i, v in enumerate(bbox))
        boxes[image_id][0].append(class_of[category])
        boxes[image_id][1].append([x, y, x + w, y + h])
    for image_id, image in images.items():
        classes, xyxy = boxes[image_id]
        image.classes = np.array(classes, dtype=np.int64)
        image.xyxy = np.array(xyxy, dtype=np.float64).reshape(-1, 4)
    return Annotations(names, list(images.values()))


def _categories(payload: object, path: Path) -> tuple[dict[int, str], dict[int, int]]:
    """Class names in category-id order, and each category id's class id."""
    categories: dict[int, str] = {}
    for k, category in enumerate(items(field(payload, "categories", list, path, ""), path, "categories")):
        category_id = field(category, "id", int, path, f"categories[{k}]")
        if category_id in categories:
            raise YolosslError(f"{path}: categories[{k}].id {category_id} is used by an earlier category too")
        categories[category_id] = field(category, "name", str, path, f"categories[{k}]")
    ordered = sorted(categories)
    return {k: categories[cid] for k, cid in enumerate(ordered)}, {cid: k for k, cid in enumerate(ordered)}
