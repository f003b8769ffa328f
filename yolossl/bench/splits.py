"""The bench's data: the test split every arm is scored on, and per seed the labels kept and the pool hidden.

The test split is held out once per bench and reaches no decision: each split's `labeled.yaml` names it under
`test:`, which a cycle only scores on (thresholds, round guard and `best.pt` choose on val), and the matched
arms are scored on it after their val choice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from yolossl.bench.config import TEST_SEED, TEST_SHARE, BenchConfig
from yolossl.boxes import yolo_label_text
from yolossl.data import DatasetSpec, ImageItem, scan_image_folders
from yolossl.errors import YolosslError
from yolossl.labels import clean_label_file
from yolossl.merge import mirror_split

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TestSplit:
    """The images every arm is scored on, and the val images left to choose with."""

    val: list[ImageItem]
    test: list[ImageItem]
    source: str
    """"data YAML" (its `test:`) or "held out of val" (no `test:`: `TEST_SHARE` of val, seed `TEST_SEED`)."""
    data_yaml: Path
    """A data YAML whose val is the test images, mirrored into the bench: what the matched arms are scored with."""
    val_list: Path
    test_list: Path

    def describe(self) -> dict[str, Any]:
        held_out = self.source != "data YAML"
        return {"source": self.source, "images": len(self.test), "val_images": len(self.val)} | (
            {"share": TEST_SHARE, "seed": TEST_SEED} if held_out else {}
        )


@dataclass(frozen=True)
class Split:
    """One seed's data: where the labeled YAML, the pool, the truth and the oracle's items are."""

    labeled_yaml: Path
    pool: Path
    truth: Path
    labeled: list[ImageItem]
    hidden: list[ImageItem]  # pool images paired with their true labels (for the oracle)


def hold_out_test(spec: DatasetSpec, out: Path) -> TestSplit:
    """The data YAML's `test:`, or a fixed share of val held out as test (said in the log and in bench.json)."""
    val = spec.val_items()
    if spec.test:
        test, source = spec.test_items(), "data YAML"
    else:
        if len(val) < 2:
            raise YolosslError(f"{spec.yaml_path}: no 'test:' split, and val has {len(val)} image(s): none to hold out")
        order = np.random.default_rng(TEST_SEED).permutation(len(val))
        n_test = max(1, round(TEST_SHARE * len(val)))
        test = [val[i] for i in sorted(order[:n_test])]
        val = [val[i] for i in sorted(order[n_test:])]
        source = "held out of val"
        logger.warning(
            "%s has no 'test:' split: the bench holds out %d of val's %d images as its test split (seed %d) and "
            "chooses with the other %d",
            spec.yaml_path,
            len(test),
            len(test) + len(val),
            TEST_SEED,
            len(val),
        )
    if not test:
        raise YolosslError(f"{spec.yaml_path}: the 'test:' split has no images")
    out.mkdir(parents=True, exist_ok=True)
    val_list, test_list = out / "val.txt", out / "test.txt"
    val_list.write_text("".join(f"{item.path.resolve()}\n" for item in val))
    test_list.write_text("".join(f"{item.path.resolve()}\n" for item in test))
    images = mirror_split(test, out / "scored", len(spec.names)).resolve()
    data_yaml = out / "data.yaml"
    data_yaml.write_text(yaml.safe_dump({"train": str(images), "val": str(images), "names": spec.names}))
    return TestSplit(val, test, source, data_yaml, val_list, test_list)


def make_split(config: BenchConfig, spec: DatasetSpec, seed: int, out: Path, test: TestSplit) -> Split:
    """Hide the labels of all but a fraction of the training images (or take the explicit split)."""
    out.mkdir(parents=True)
    pool, truth = out / "pool", out / "truth"
    pool.mkdir()
    truth.mkdir()
    items = spec.train_items()
    if config.unlabeled:
        labeled = items
        hidden = []
        for item in scan_image_folders(config.unlabeled).images:
            label = Path(config.unlabeled_truth or "") / f"{item.path.stem}.txt"
            hidden.append(ImageItem(item.id, item.path, label if label.is_file() else None))
    else:
        order = np.random.default_rng(seed).permutation(len(items))
        n_labeled = max(1, round((config.label_fraction or 0.0) * len(items)))
        labeled = [items[i] for i in sorted(order[:n_labeled])]
        hidden = [items[i] for i in sorted(order[n_labeled:])]
    for item in hidden:
        # A flat folder of links: no labels/ beside it, so nothing can find the hidden labels.
        (pool / f"{item.id}{item.path.suffix}").symlink_to(item.path.resolve())
        if item.label is not None:  # cleaned, as training reads labels: one bad line can't end the bench
            rows = clean_label_file(item.label, len(spec.names)).rows
            (truth / f"{item.id}.txt").write_text(yolo_label_text(rows[:, 0], rows[:, 1:5]), encoding="utf-8")
    (out / "labeled.txt").write_text("".join(f"{item.path.resolve()}\n" for item in labeled))
    meta = {
        "train": str((out / "labeled.txt").resolve()),
        "val": str(test.val_list.resolve()),
        "test": str(test.test_list.resolve()),
        "names": spec.names,
    }
    labeled_yaml = out / "labeled.yaml"
    labeled_yaml.write_text(yaml.safe_dump(meta, sort_keys=False))
    return Split(labeled_yaml, pool, truth, labeled, hidden)
