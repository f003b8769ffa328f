from __future__ import annotations

import base64
import csv
import json
import re
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from tests.conftest import tiny_cycle_config
from yolossl import run_cycle
from yolossl.cli import app
from yolossl.errors import YolosslError
from yolossl.report import (
    boxes_per_class,
    load_run,
    map_series,
    plot_map,
    sample_images,
    scores_by_class,
    write_report,
)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A real 2-round cycle on tiny data: the report must read what the cycle writes."""
    from tests.conftest import TINY
    from yolossl.demo import write_demo_dataset

    root = tmp_path_factory.mktemp("report")
    write_demo_dataset(root / "data", TINY)
    config = tiny_cycle_config(root / "data", root / "runs", rounds=2, conf=0.002, uncertain_low=0.001, patience=3)
    return run_cycle(config).run_dir


def test_a_cycle_writes_its_report(run: Path) -> None:
    page = (run / "report.html").read_text()
    for png in ("report_map.png", "report_boxes.png", "report_scores.png", "report_samples.png"):
        assert (run / png).is_file(), png
    images = re.findall(r"src='data:image/png;base64,([^']+)'", page)
    assert len(images) == 4  # self-contained: every plot embedded
    for encoded in images:
        decoded = cv2.imdecode(np.frombuffer(base64.b64decode(encoded), np.uint8), cv2.IMREAD_COLOR)
        assert decoded is not None and decoded.shape[0] > 100 and decoded.std() > 5  # a real, non-blank picture
    assert "Effective configuration" in page and "round guard" in page


def test_the_plotted_series_are_the_runs_numbers(run: Path) -> None:
    data = load_run(run)
    summary = list(csv.DictReader((run / "summary.csv").open()))
    series = map_series(data)
    assert series["round"] == [int(r["round"]) for r in summary]
    assert series["map50_95"] == [float(r["map50_95"]) for r in summary]
    fig = plot_map(data, run / "check.png")
    lines = {line.get_label(): list(line.get_ydata()) for line in fig.axes[0].lines}
    assert lines["val mAP50-95"] == series["map50_95"] and lines["val mAP50"] == series["map50"]
    counts = boxes_per_class(data)
    for index in (1, 2):
        record = list(csv.DictReader((run / f"round_{index}" / "pseudo" / "record.csv").open()))
        kept = sum(1 for r in record if r["status"] == "kept")
        assert sum(counts[index]["kept"].values()) == kept
    last = data.records[-1]
    assert sum(len(v) for v in scores_by_class(last).values()) == len(last.rows)
    assert len(sample_images(last)) == min(8, len({r.image for r in last.rows}))


def test_oracle_line_and_rejected_rounds_are_drawn(run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run, copy, symlinks=True)
    (copy / "oracle.json").write_text(json.dumps({"map50": 0.9, "map50_95": 0.7}))
    rows = list(csv.DictReader((copy / "summary.csv").open()))
    rows[1]["accepted"] = "False"
    with (copy / "summary.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    fig = plot_map(load_run(copy), copy / "m.png")
    labels = [artist.get_label() for artist in fig.axes[0].get_children()]
    assert "oracle mAP50-95" in labels and "rejected by the round guard" in labels
    assert "rejected: below the best so far" in (write_report(copy)).read_text()


def test_partial_runs_and_non_runs(run: Path, tmp_path: Path) -> None:
    only_config = tmp_path / "fresh"
    only_config.mkdir()
    shutil.copyfile(run / "config.yaml", only_config / "config.yaml")
    assert "No round has finished yet." in write_report(only_config).read_text()  # interrupted before round 0 ended
    with pytest.raises(YolosslError, match="not a yolossl run folder"):
        write_report(tmp_path)
    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "not a yolossl run folder" in result.stderr


def test_report_command(run: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(run)], terminal_width=200)
    assert result.exit_code == 0, result.stderr
    assert str(run / "report.html") in result.output.replace("\n", "")


def test_the_page_renders_in_a_real_browser(run: Path, tmp_path: Path) -> None:
    """Headless Chromium renders report.html; the screenshot must show the page, not a blank."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run does)")
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1200,2600",
            (run / "report.html").as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[:2] == (2600, 1200)
    assert image.std() > 20  # not blank
    colours = {tuple(c) for c in image[::7, ::7].reshape(-1, 3) // 32}
    assert len(colours) > 30  # plots and photos, not just text on white
    plot = cv2.imread(str(run / "report_map.png"))
    best_match = max(
        cv2.minMaxLoc(cv2.matchTemplate(image, cv2.resize(plot, None, fx=f, fy=f), cv2.TM_CCOEFF_NORMED))[1]
        for f in (0.5, 0.75, 1.0)
        if plot.shape[0] * f < image.shape[0] and plot.shape[1] * f < image.shape[1]
    )
    assert best_match > 0.8  # the mAP plot itself is on the rendered page


def test_a_class_without_pseudo_labels_for_a_whole_round_is_flagged(run: Path, tmp_path: Path) -> None:
    """Online: a class the teacher kept no target of in a round's epochs (here: square, without a threshold in 2 of
    its 3; cross, taught by soft targets only); any mode: a class the pool's labeling kept no box of."""
    copy = tmp_path / "run"
    shutil.copytree(run, copy, symlinks=True)
    names = load_run(copy).class_names
    log = copy / "round_1" / "train" / "teacher.csv"
    rows = [
        {
            "epoch": e,
            "u_loss": 0.5,
            **{f"kept_{n}": 0 if n in ("square", "cross") else 3 for n in names},
            **{f"seen_{n}": 4 for n in names},
            **{f"thr_{n}": "" if n == "square" and e < 3 else "0.5" for n in names},
            **{f"hard_{n}": 0 if n in ("square", "cross") else 0.1 for n in names},
            **{f"soft_{n}": 0.02 if n == "cross" else 0 for n in names},
        }
        for e in (1, 2, 3)
    ]
    with log.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    summary = list(csv.DictReader((copy / "summary.csv").open()))
    for name in names:  # round 1's labeling kept some of every class; round 2's none of ring
        summary[1][f"boxes_{name}"], summary[2][f"boxes_{name}"] = "5", "0" if name == "ring" else "5"
    with (copy / "summary.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(summary[0]))
        writer.writeheader()
        writer.writerows(summary)
    page = write_report(copy).read_text()
    assert "Classes without pseudo-labels" in page
    assert "Round 1: the teacher gave square no target in any of its 3 epochs (2 without a threshold" in page
    # cross: no kept target, but soft ones (2% of the unlabeled class loss): it took part, softly
    assert (
        "Round 1: the teacher gave cross no kept target (soft targets only: 2.0% of the unlabeled class loss)" in page
    )
    assert "Round 2: the labeling of the pool kept no box of ring" in page
    plot = cv2.imread(str(copy / "report_teacher_1.png"))
    assert plot.shape[1] > 3.5 * plot.shape[0]  # a third panel: each class's hard and soft share of the loss
    assert "circle no target" not in page
