"""A real Label Studio server on 127.0.0.1: our tasks go in as predictions, reviewed annotations come back.

Its local-files document root is the folder holding both the export and the user's data, so that
tasks pointing at the export's links and tasks pointing at the user's own images both open.

Label Studio lives in its own virtual environment (its pins clash with ours): .ci/run makes
.venvs/labelstudio; YOLOSSL_LABEL_STUDIO_VENV points elsewhere. Its client side runs there too,
through label-studio-sdk, as a small script.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import tiny_cycle_config
from yolossl import run_cycle
from yolossl.export import export_source, import_annotations

REPO = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("YOLOSSL_LABEL_STUDIO_VENV", REPO / ".venvs" / "labelstudio"))
TOKEN = "0123456789abcdef0123456789abcdef01234567"

# Legacy tokens are off per organization since Label Studio 1.17: switch them on in its own database.
ENABLE_TOKENS = """
import os, sys, label_studio
sys.path.insert(0, os.path.dirname(label_studio.__file__))
import django; django.setup()
from jwt_auth.models import JWTSettings
from organizations.models import Organization
for org in Organization.objects.all():
    settings, _ = JWTSettings.objects.get_or_create(organization=org)
    settings.legacy_api_tokens_enabled = True
    settings.save()
"""

# The reviewer, through label-studio-sdk: create the project, import our tasks, read back the predictions,
# accept them all but correct the first box's class, export the annotations.
REVIEW = """
import json, sys
from label_studio_sdk.client import LabelStudio
url, token, config_path, tasks_path, export_path = sys.argv[1:6]
client = LabelStudio(base_url=url, api_key=token)
project = client.projects.create(title="yolossl review", label_config=open(config_path).read())
client.projects.import_tasks(id=project.id, request=json.load(open(tasks_path)))
seen = []
for task in client.tasks.list(project=project.id, fields="all"):
    prediction = client.predictions.list(task=task.id)[0]
    result = [dict(r) for r in prediction.result]
    seen.append({"image": task.data["image"], "model_version": prediction.model_version, "score": prediction.score,
                 "boxes": [[r["value"]["rectanglelabels"][0], r.get("score")] for r in result]})
    if len(seen) == 1:
        label = result[0]["value"]["rectanglelabels"][0]
        result[0]["value"]["rectanglelabels"] = ["ring" if label != "ring" else "circle"]
    client.annotations.create(id=task.id, result=result)
json.dump(client.projects.exports.as_json(project.id), open(export_path, "w"))
print(json.dumps(seen))
"""

# The reviewer of tasks that point at the user's own images (`--image-url-prefix /data/local-files/?d=...`):
# a Local files storage on the user's folder, each task's image fetched through the server, every prediction accepted.
REVIEW_IN_PLACE = """
import hashlib, json, sys, urllib.request
from label_studio_sdk.client import LabelStudio
url, token, config_path, tasks_path, export_path, storage = sys.argv[1:7]
client = LabelStudio(base_url=url, api_key=token)
project = client.projects.create(title="yolossl in place", label_config=open(config_path).read())
client.import_storage.local.create(project=project.id, path=storage, title="the user's images")
client.projects.import_tasks(id=project.id, request=json.load(open(tasks_path)))
seen = []
for task in client.tasks.list(project=project.id, fields="all"):
    request = urllib.request.Request(url + task.data["image"], headers={"Authorization": f"Token {token}"})
    body = urllib.request.urlopen(request, timeout=30).read()
    result = [dict(r) for r in client.predictions.list(task=task.id)[0].result]
    client.annotations.create(id=task.id, result=result)
    seen.append({"image": task.data["image"], "sha256": hashlib.sha256(body).hexdigest(), "boxes": len(result)})
json.dump(client.projects.exports.as_json(project.id), open(export_path, "w"))
print(json.dumps(seen))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def review_export(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(a run's round_1, its Label Studio export, the data YAML)."""
    from tests.conftest import TINY
    from yolossl.demo import write_demo_dataset

    root = tmp_path_factory.mktemp("ls")
    write_demo_dataset(root / "data", TINY)
    config = tiny_cycle_config(root / "data", root / "runs")
    round_dir = run_cycle(config).run_dir / "round_1"
    export = export_source(round_dir, "labelstudio", root / "review", review=4)
    return round_dir, export, root / "data" / "data.yaml"


@pytest.fixture(scope="module")
def server(review_export, tmp_path_factory):
    binary = VENV / "bin" / "label-studio"
    if not binary.is_file():
        pytest.skip(f"Label Studio is not installed at {VENV} (.ci/run installs it; or set YOLOSSL_LABEL_STUDIO_VENV)")
    data_dir = tmp_path_factory.mktemp("ls-data")
    port = _free_port()
    env = {
        **os.environ,
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "LOCAL_FILES_SERVING_ENABLED": "true",
        "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
        "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(review_export[1].parent),
        "DJANGO_SETTINGS_MODULE": "core.settings.label_studio",
    }
    log = (data_dir / "server.log").open("w")
    proc = subprocess.Popen(
        [
            str(binary),
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-browser",
            "--data-dir",
            str(data_dir),
            "--username",
            "reviewer@example.com",
            "--password",
            "review-Passw0rd",
            "--user-token",
            TOKEN,
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, f"Label Studio exited: see {data_dir / 'server.log'}"
            try:
                if urllib.request.urlopen(f"{url}/health", timeout=2).status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "Label Studio did not start within 240 s"
            time.sleep(1)
        subprocess.run(
            [str(VENV / "bin" / "python"), "-c", ENABLE_TOKENS], env=env, check=True, capture_output=True, timeout=120
        )
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_label_studio_round_trip(server: str, review_export, tmp_path: Path) -> None:
    round_dir, export, data_yaml = review_export
    exported_json = tmp_path / "export.json"
    result = subprocess.run(
        [
            str(VENV / "bin" / "python"),
            "-c",
            REVIEW,
            server,
            TOKEN,
            str(export / "labeling_config.xml"),
            str(export / "tasks.json"),
            str(exported_json),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])

    # what the server holds are our boxes, as predictions, with our scores and model version
    tasks = json.loads((export / "tasks.json").read_text())
    assert len(seen) == len(tasks) == 4
    ours = {t["data"]["image"]: t["predictions"][0] for t in tasks}
    for task in seen:
        prediction = ours[task["image"]]
        assert task["model_version"] == "r/round_1" == prediction["model_version"]
        assert task["score"] == pytest.approx(prediction["score"])
        expected = [[r["value"]["rectanglelabels"][0], r["score"]] for r in prediction["result"]]
        assert [b[0] for b in task["boxes"]] == [b[0] for b in expected]
        np.testing.assert_allclose([b[1] for b in task["boxes"]], [b[1] for b in expected])

    # the reviewed annotations come back as a YOLO dataset, the correction included
    written = import_annotations(
        exported_json, "labelstudio", tmp_path / "reviewed", images_dir=export / "images", data=data_yaml
    )
    labels = {p.stem: np.loadtxt(p, ndmin=2) for p in (tmp_path / "reviewed" / "labels").glob("*.txt")}
    assert written.is_file() and len(labels) == 4
    record = [
        r for r in csv.DictReader((round_dir / "pseudo" / "record.csv").open()) if r["status"] in ("kept", "uncertain")
    ]
    first = Path(seen[0]["image"]).name.split("=")[-1].rsplit("/", 1)[-1]
    names = {0: "circle", 1: "square", 2: "triangle", 3: "cross", 4: "ring"}
    for stem, rows in labels.items():
        expected = [r for r in record if Path(r["image"]).stem == stem]
        assert len(rows) == len(expected)
        classes = [int(c) for c in rows[:, 0]]
        original = [int(r["class_id"]) for r in expected]
        if stem == Path(first).stem:
            corrected = 4 if names[original[0]] != "ring" else 0
            assert classes == [corrected, *original[1:]]
        else:
            assert classes == original
        np.testing.assert_allclose(
            rows[:, 1:],
            [[float(r[k]) for k in ("x_center", "y_center", "width", "height")] for r in expected],
            atol=1e-5,
        )


def test_label_studio_opens_tasks_on_the_users_images_and_returns_the_boxes(
    server: str, review_export, tmp_path: Path
) -> None:
    round_dir, export, data_yaml = review_export
    root = export.parent  # the server's document root
    pool = data_yaml.parent / "unlabeled"
    prefix = f"/data/local-files/?d={pool.relative_to(root).as_posix()}/"
    in_place = export_source(round_dir, "labelstudio", tmp_path / "in_place", review=3, image_url_prefix=prefix)
    assert not (in_place / "images").exists()
    exported_json = tmp_path / "export.json"
    result = subprocess.run(
        [
            str(VENV / "bin" / "python"),
            "-c",
            REVIEW_IN_PLACE,
            server,
            TOKEN,
            str(in_place / "labeling_config.xml"),
            str(in_place / "tasks.json"),
            str(exported_json),
            str(pool),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(seen) == 3
    for task in seen:  # the server served the user's own file for each task
        name = task["image"].removeprefix(prefix)
        assert task["sha256"] == hashlib.sha256((pool / name).read_bytes()).hexdigest()
        assert task["boxes"] > 0

    import_annotations(exported_json, "labelstudio", tmp_path / "reviewed", images_dir=pool, data=data_yaml)
    labels = {p.stem: np.loadtxt(p, ndmin=2) for p in (tmp_path / "reviewed" / "labels").glob("*.txt")}
    assert sorted(labels) == sorted(Path(t["image"]).stem for t in seen)
    record = [
        r for r in csv.DictReader((round_dir / "pseudo" / "record.csv").open()) if r["status"] in ("kept", "uncertain")
    ]
    for stem, rows in labels.items():
        expected = [r for r in record if Path(r["image"]).stem == stem]
        assert [int(c) for c in rows[:, 0]] == [int(r["class_id"]) for r in expected]
        np.testing.assert_allclose(
            rows[:, 1:],
            [[float(r[k]) for k in ("x_center", "y_center", "width", "height")] for r in expected],
            atol=1e-5,
        )
    for image in (tmp_path / "reviewed" / "images").iterdir():
        assert os.readlink(image) == str(pool / image.name)  # linked to the user's image, under its own name
