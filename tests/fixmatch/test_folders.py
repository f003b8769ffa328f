from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from yolossl.cli import app
from yolossl.errors import YolosslError
from yolossl.fixmatch.folders import read_class_folders


def _folders(root: Path, classes=("dark", "bright"), per_class: int = 4) -> Path:
    for k, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            cv2.imwrite(str(root / name / f"{i}.png"), np.full((20, 20, 3), 30 + 190 * k, np.uint8))
    return root


def test_class_folders_are_read_in_name_order(tmp_path: Path) -> None:
    images, labels, names = read_class_folders(_folders(tmp_path / "train"), size=16)
    assert names == {0: "bright", 1: "dark"} and images.shape == (8, 16, 16, 3) and labels.tolist() == [0] * 4 + [1] * 4


def test_folder_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(YolosslError, match="folder not found"):
        read_class_folders(tmp_path / "missing", 16)
    (tmp_path / "empty_class" / "cat").mkdir(parents=True)
    with pytest.raises(YolosslError, match="cat: class folder has no images"):
        read_class_folders(tmp_path / "empty_class", 16)
    train = _folders(tmp_path / "t")
    _, _, names = read_class_folders(train, 16)
    with pytest.raises(YolosslError, match="differ from the training folders"):
        read_class_folders(_folders(tmp_path / "v", classes=("dark", "grey")), 16, names)


def test_the_fixmatch_command_reports_both_arms(tmp_path: Path) -> None:
    train = _folders(tmp_path / "train")
    val = _folders(tmp_path / "val")
    (tmp_path / "pool").mkdir()
    for i in range(6):
        cv2.imwrite(str(tmp_path / "pool" / f"{i}.png"), np.full((20, 20, 3), 30 if i % 2 else 220, np.uint8))
    args = [
        "fixmatch",
        "--train",
        str(train),
        "--unlabeled",
        str(tmp_path / "pool"),
        "--val",
        str(val),
        "--steps",
        "3",
        "--batch",
        "4",
        "--mu",
        "1",
        "--size",
        "16",
    ]
    result = CliRunner().invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.stderr
    assert "labeled only" in result.output and "FixMatch" in result.output and "val accuracy" in result.output
