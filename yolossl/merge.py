"""A round's dataset: linked images, copied labels, and a data YAML with absolute paths.

Ultralytics writes its label cache next to the first label folder it reads, so training straight
on the user's dataset would write into it, and rounds sharing a label folder would share a stale
cache. Every round therefore trains on a folder of its own inside the run: images are symlinked
(never copied), labels are copied (they are small), and the human-labeled val split is mirrored
once per run. Labels are written cleaned (see `labels`), never copied blindly.

    >>> data_yaml = build_round_dataset(Path("run/round_1"), labeled, pseudo, Path("run/val"), names)
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from yolossl._fs import fresh_partial_dir, link_file, replace_dir, write_text_atomic
from yolossl.boxes import yolo_label_text
from yolossl.data import ImageItem
from yolossl.labels import clean_label_file
from yolossl.train.targets import DATA_KEY, FILE_NAME, PseudoTargets, save_pseudo_targets


def mirror_split(items: Sequence[ImageItem], dest: Path, n_classes: int) -> Path:
    """Build `dest/images` (links) and `dest/labels` (cleaned copies) atomically; return `dest/images`."""
    partial = fresh_partial_dir(dest)
    _fill_split(items, partial / "images", partial / "labels", n_classes)
    replace_dir(partial, dest)
    return dest / "images"


def labeled_repeat(setting: int | None, n_labeled: int, n_pseudo: int) -> int:
    """How many times each labeled image appears in a round's dataset.

    `None` (auto): enough that the human labels are at least a third of the images the round trains
    on, so that pseudo-labels cannot drown them; an integer is used as given.
    """
    if setting is not None:
        return setting
    if not n_labeled or not n_pseudo:
        return 1
    return max(1, math.ceil(n_pseudo / (2 * n_labeled)))


@dataclass(frozen=True)
class RoundDataset:
    """A built round dataset: its YAML and how many images of each kind it trains on."""

    data_yaml: Path
    labeled_images: int
    pseudo_images: int


def build_round_dataset(
    round_dir: Path,
    labeled: Iterable[ImageItem],
    pseudo: Iterable[ImageItem],
    val_images: Path,
    names: dict[int, str],
    labeled_repeat: int = 1,
    on_item: Callable[[int], None] | None = None,
    pseudo_targets: PseudoTargets | None = None,
) -> RoundDataset:
    """Write `round_dir/dataset/` (labeled + pseudo-labeled) and `round_dir/data.yaml`.

    `pseudo` items carry the label file written by the labeling step. Each labeled image is linked
    `labeled_repeat` times (oversampling without copies). A leftover dataset of an interrupted
    attempt, label cache included, is replaced whole. `pseudo_targets` (for the pseudo-aware loss)
    go to `round_dir/pseudo_targets.json`, which the data YAML names.
    """
    dataset = round_dir / "dataset"
    partial = fresh_partial_dir(dataset)
    n_classes = len(names)
    n_labeled = _fill_split(
        labeled, partial / "images" / "labeled", partial / "labels" / "labeled", n_classes, labeled_repeat, on_item
    )
    progress = (lambda done: on_item(n_labeled + done)) if on_item else None
    n_pseudo = _fill_split(
        pseudo, partial / "images" / "pseudo", partial / "labels" / "pseudo", n_classes, 1, progress, trusted=True
    )
    replace_dir(partial, dataset)
    data_yaml = round_dir / "data.yaml"
    meta = {
        "path": str(dataset.resolve()),
        "train": str((dataset / "images").resolve()),
        "val": str(val_images.resolve()),
        "names": dict(names),
    }
    if pseudo_targets is not None:
        targets_file = (round_dir / FILE_NAME).resolve()
        images_dir = str((dataset / "images" / "pseudo").resolve())
        save_pseudo_targets(replace(pseudo_targets, images_dir=images_dir), targets_file)
        meta[DATA_KEY] = str(targets_file)
    write_text_atomic(data_yaml, yaml.safe_dump(meta, sort_keys=False))
    return RoundDataset(data_yaml, n_labeled, n_pseudo)


def _fill_split(
    items: Iterable[ImageItem],
    image_dir: Path,
    label_dir: Path,
    n_classes: int,
    repeat: int = 1,
    on_item: Callable[[int], None] | None = None,
    trusted: bool = False,
) -> int:
    """Link each image (`repeat` times, as `<id>`, `<id>~2`, ...) and write its cleaned label; return the count.

    The user's labels go through `clean_label_file`, so a malformed line never reaches Ultralytics
    (which would drop the whole image); `check_split` has already told the user what was fixed.
    `trusted` labels (our own pseudo-labels, already clean) are hard-linked instead: a round of
    100 000 pseudo-labeled images is built in seconds.
    """
    image_dir.mkdir(parents=True, exist_ok=True)
    label_dir.mkdir(parents=True, exist_ok=True)
    count = 0
    for item in items:
        text = None
        if item.label is not None and not trusted:
            rows = clean_label_file(item.label, n_classes).rows
            text = yolo_label_text(rows[:, 0], rows[:, 1:5])
        for copy in range(repeat):
            name = item.id if copy == 0 else f"{item.id}~{copy + 1}"
            link_file(item.path, image_dir / f"{name}{item.path.suffix}")
            if text is not None:
                (label_dir / f"{name}.txt").write_text(text, encoding="utf-8")
            elif item.label is not None:
                _link_or_copy(item.label, label_dir / f"{name}.txt")
        count += 1
        if on_item and count % 500 == 0:
            on_item(count)
    if on_item:
        on_item(count)
    return count


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link to a label file of ours (same file system), else a copy: labels are small."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
