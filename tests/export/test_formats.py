"""Exports checked by the tools themselves (pycocotools, datumaro) and round trips back to YOLO."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.conftest import tiny_cycle_config
from yolossl import run_cycle
from yolossl.cli import app
from yolossl.errors import YolosslError
from yolossl.export import EXPORT_FORMATS, export_source, import_annotations
from yolossl.export.annotations import AnnotatedImage, Annotations
from yolossl.export.coco import write_coco
from yolossl.export.source import load_dataset

REPO = Path(__file__).resolve().parents[2]
DATUMARO_PYTHON = Path(os.environ.get("YOLOSSL_DATUMARO_PYTHON", REPO / ".venvs" / "datumaro" / "bin" / "python"))
# Where each format's main file is inside an export folder, for `import`.
IMPORT_PATH = {
    "coco": "annotations/instances_default.json",
    "cvat": "annotations.xml",
    "labelstudio": "tasks.json",
    "voc": ".",
    "yolo": "data.yaml",
}


def _labels_by_stem(data_yaml: Path) -> dict[str, np.ndarray]:
    """The split's labels by the user's file stem (the tiny dataset's folders are flat)."""
    annotations = load_dataset(data_yaml, "train")
    return {image.path.stem: image.yolo_rows() for image in annotations.images}


def _checksums(root: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_yolo_to_format_to_yolo_reproduces_the_labels(fmt: str, tiny_dataset: Path, tmp_path: Path) -> None:
    before = _checksums(tiny_dataset)
    data = tiny_dataset / "data.yaml"
    exported = export_source(data, fmt, tmp_path / "export")
    imported = import_annotations(exported / IMPORT_PATH[fmt], fmt, tmp_path / "back", data=data)
    original = _labels_by_stem(data)
    back = {p.stem: np.loadtxt(p, ndmin=2).reshape(-1, 5) for p in (tmp_path / "back" / "labels").glob("*.txt")}
    assert set(back) == set(original)
    for stem, rows in original.items():
        assert back[stem].shape == rows.shape
        order_a, order_b = np.lexsort(rows.T[::-1]), np.lexsort(back[stem].T[::-1])
        np.testing.assert_allclose(back[stem][order_b], rows[order_a], atol=1e-6)
    assert all(p.is_symlink() for p in (tmp_path / "back" / "images").iterdir())
    assert _checksums(tiny_dataset) == before  # the user's dataset is only read
    assert imported.is_file()


def test_import_with_data_trains_on_both_and_validates_on_val(tiny_dataset: Path, tmp_path: Path) -> None:
    import yaml

    data = tiny_dataset / "data.yaml"
    exported = export_source(data, "coco", tmp_path / "export", split="val")
    written = import_annotations(exported / IMPORT_PATH["coco"], "coco", tmp_path / "back", data=data)
    meta = yaml.safe_load(written.read_text())
    assert meta["val"] == [str(tiny_dataset / "val" / "images")]
    assert str((tmp_path / "back" / "images").resolve()) in meta["train"] and len(meta["train"]) == 2


def _box(image: str, cls: int, xyxy: list[float], score: float | None = None) -> AnnotatedImage:
    return AnnotatedImage(
        Path(image),
        image,
        100,
        100,
        np.array([cls]),
        np.array([xyxy], float),
        None if score is None else np.array([score]),
    )


def test_cocoeval_of_exported_predictions_against_exported_truth(tmp_path: Path) -> None:
    """One true box; two predictions, the wrong one scored higher: precision 1/2 at full recall, AP 0.5."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    names = {0: "circle", 1: "square"}
    truth = Annotations(names, [_box("a.jpg", 0, [10, 10, 50, 50]), _box("b.jpg", 1, [0, 0, 1, 1])])
    truth.images[1] = AnnotatedImage(Path("b.jpg"), "b.jpg", 100, 100)  # an image with nothing in it
    predicted = Annotations(names, [_box("a.jpg", 0, [10, 10, 50, 50], 0.6), _box("b.jpg", 0, [60, 60, 90, 90], 0.9)])
    (tmp_path / "t").mkdir()
    (tmp_path / "p").mkdir()
    gt = COCO(str(write_coco(truth, tmp_path / "t")))
    detections = json.loads(write_coco(predicted, tmp_path / "p").read_text())["annotations"]
    assert all("score" in d for d in detections)
    evaluation = COCOeval(gt, gt.loadRes(detections), "bbox")
    evaluation.params.catIds = [1]  # circle: square has no truth, so no AP
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    assert evaluation.stats[0] == pytest.approx(0.5, abs=0.01)  # AP@[.5:.95]: exact box, so the same at every IoU
    assert evaluation.stats[1] == pytest.approx(0.5, abs=0.01)  # AP@.5


def _datumaro(path: Path, fmt: str, full_ids: bool = False) -> dict:
    """Item id (its last part unless `full_ids`) -> sorted boxes, as datumaro reads the export."""
    if not DATUMARO_PYTHON.is_file():
        pytest.skip(f"datumaro is not installed at {DATUMARO_PYTHON} (.ci/run makes .venvs/datumaro)")
    script = """
import json, sys
import datumaro as dm
ds = dm.Dataset.import_from(sys.argv[1], sys.argv[2])
labels = ds.categories()[dm.AnnotationType.label]
out = {}
for item in ds:
    boxes = sorted((labels[a.label].name, round(a.x, 4), round(a.y, 4), round(a.w, 4), round(a.h, 4))
                   for a in item.annotations if a.type == dm.AnnotationType.bbox)
    out[item.id if sys.argv[3] == "full" else item.id.split("/")[-1]] = boxes
print(json.dumps(out))
"""
    result = subprocess.run(
        [str(DATUMARO_PYTHON), "-c", script, str(path), fmt, "full" if full_ids else "last"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("fmt", "datumaro_format", "where"),
    [
        ("cvat", "cvat", "."),
        ("voc", "voc_detection", "."),
        ("coco", "coco_instances", "."),
    ],
)
def test_datumaro_reads_our_exports(fmt, datumaro_format, where, tiny_dataset: Path, tmp_path: Path) -> None:
    data = tiny_dataset / "data.yaml"
    exported = export_source(data, fmt, tmp_path / "export")
    seen = _datumaro(exported / where, datumaro_format)
    ours = load_dataset(data, "train")
    expected = {}
    for image in ours.images:
        boxes = []
        for cls, (x1, y1, x2, y2) in zip(image.classes, image.xyxy, strict=True):
            boxes.append([ours.names[int(cls)], round(x1, 4), round(y1, 4), round(x2 - x1, 4), round(y2 - y1, 4)])
        expected[image.path.stem] = sorted(boxes)
    assert set(seen) == set(expected)
    for stem, boxes in expected.items():
        got = sorted(seen[stem])
        assert [b[0] for b in got] == [b[0] for b in boxes]
        np.testing.assert_allclose([b[1:] for b in got], [b[1:] for b in boxes], atol=1e-3)


# ---------------------------------------------------------------- pseudo-labels of a run


@pytest.fixture(scope="module")
def round_dir(tmp_path_factory) -> Path:
    from tests.conftest import TINY
    from yolossl.demo import write_demo_dataset

    root = tmp_path_factory.mktemp("exportrun")
    write_demo_dataset(root / "data", TINY)
    config = tiny_cycle_config(root / "data", root / "runs")
    return run_cycle(config).run_dir / "round_1"


def test_pseudo_labels_export_as_predictions_with_scores(round_dir: Path, tmp_path: Path) -> None:
    record = [r for r in _record(round_dir) if r["status"] in ("kept", "uncertain")]
    assert record, "the tiny run must have pseudo boxes"
    coco = json.loads((export_source(round_dir, "coco", tmp_path / "coco") / IMPORT_PATH["coco"]).read_text())
    assert len(coco["annotations"]) == len(record) and all("score" in a for a in coco["annotations"])
    cvat = ET.parse(export_source(round_dir, "cvat", tmp_path / "cvat") / "annotations.xml").getroot()
    boxes = list(cvat.iter("box"))
    assert len(boxes) == len(record) and {b.get("source") for b in boxes} == {"auto"}
    assert all(b.find("attribute[@name='score']") is not None for b in boxes)
    assert (tmp_path / "cvat" / "cvat_dataset.zip").is_file()
    tasks = json.loads((export_source(round_dir, "labelstudio", tmp_path / "ls") / "tasks.json").read_text())
    prediction = tasks[0]["predictions"][0]
    assert prediction["model_version"] == "r/round_1" and "score" in prediction
    assert all("score" in r for t in tasks for r in t["predictions"][0]["result"]) and "annotations" not in tasks[0]
    assert (tmp_path / "ls" / "labeling_config.xml").read_text().count("<Label ") == 5


def _record(round_dir: Path) -> list[dict[str, str]]:
    import csv

    return list(csv.DictReader((round_dir / "pseudo" / "record.csv").open()))


def test_min_score_and_review(round_dir: Path, tmp_path: Path) -> None:
    record = [r for r in _record(round_dir) if r["status"] in ("kept", "uncertain")]
    cut = sorted(float(r["score"]) for r in record)[len(record) // 2]
    coco = export_source(round_dir, "coco", tmp_path / "half", min_score=cut) / IMPORT_PATH["coco"]
    assert len(json.loads(coco.read_text())["annotations"]) == sum(float(r["score"]) >= cut for r in record)
    uncertain = {}
    for r in record:
        stem = Path(r["image"]).stem  # exports name images as the user's folder does
        uncertain[stem] = uncertain.get(stem, 0) + (r["status"] == "uncertain")
    review = export_source(round_dir, "coco", tmp_path / "review", review=3) / IMPORT_PATH["coco"]
    chosen = [Path(i["file_name"]).stem for i in json.loads(review.read_text())["images"]]
    assert len(chosen) == 3
    assert sorted((uncertain[c] for c in chosen), reverse=True) == sorted(uncertain.values(), reverse=True)[:3]


# ---------------------------------------------------------------- bad files


def test_import_errors_name_the_file_and_the_item(tiny_dataset: Path, tmp_path: Path) -> None:
    data = tiny_dataset / "data.yaml"
    exported = export_source(data, "coco", tmp_path / "export")
    instances = exported / IMPORT_PATH["coco"]
    payload = json.loads(instances.read_text())
    payload["categories"].append({"id": 99, "name": "unicorn"})
    payload["annotations"][0]["category_id"] = 99
    (tmp_path / "unknown.json").write_text(json.dumps(payload))
    with pytest.raises(YolosslError, match=r"unknown\.json: unknown class\(es\) \['unicorn'\]"):
        import_annotations(
            tmp_path / "unknown.json",
            "coco",
            tmp_path / "o1",
            images_dir=instances.parent.parent / "images" / "default",
            data=data,
        )
    payload = json.loads(instances.read_text())
    payload["annotations"][0]["bbox"] = [50, 50, 500, 10]
    (tmp_path / "outside.json").write_text(json.dumps(payload))
    with pytest.raises(YolosslError, match=r"outside\.json: image .*, box 1: .* is not inside the 64x64 image"):
        import_annotations(
            tmp_path / "outside.json", "coco", tmp_path / "o2", images_dir=exported / "images" / "default"
        )
    (tmp_path / "broken.xml").write_text("<annotations><image name='x'")
    with pytest.raises(YolosslError, match=r"broken\.xml: not a CVAT XML"):
        import_annotations(tmp_path / "broken.xml", "cvat", tmp_path / "o3")
    assert not any((tmp_path / name).exists() for name in ("o1", "o2", "o3"))  # nothing half-written


def test_export_and_import_commands(tiny_dataset: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    data = str(tiny_dataset / "data.yaml")
    result = runner.invoke(app, ["export", data, "--format", "voc", "--out", str(tmp_path / "voc")])
    assert result.exit_code == 0, result.stderr
    result = runner.invoke(
        app, ["import", str(tmp_path / "voc"), "--format", "voc", "--out", str(tmp_path / "b"), "--data", data]
    )
    assert result.exit_code == 0, result.stderr
    assert len(list((tmp_path / "b" / "labels").glob("*.txt"))) == 8
    result = runner.invoke(app, ["export", data, "--format", "pdf", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "--format must be one of" in result.stderr
    result = runner.invoke(app, ["export", data, "--format", "voc", "--out", str(tmp_path / "voc")])
    assert result.exit_code == 2 and "exists and is not empty" in result.stderr
