"""A round's dataset: linked images, copied labels, and a data YAML with absolute paths.

Ultralytics writes its label cache next to the first label folder it reads, so training straight
on the user's dataset would write into it, and rounds sharing a label folder would share a stale
cache. Every round therefore trains on a folder of its own inside the run: images are symlinked
(never copied), labels are copied (they are small), and the human-labeled val split is mirrored
once per run.

    >>> data_yaml = build_round_dataset(Path("run/round_1"), labeled, pseudo, Path("run/val"), names)
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from yolossl._fs import fresh_partial_dir, link_file, replace_dir, write_text_atomic
from yolossl.data import ImageItem


def mirror_split(items: Sequence[ImageItem], dest: Path) -> Path:
    """Build `dest/images` (links) and `dest/labels` (copies) atomically; return `dest/images`."""
    partial = fresh_partial_dir(dest)
    _fill_split(items, partial / "images", partial / "labels")
    replace_dir(partial, dest)
    return dest / "images"


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
) -> RoundDataset:
    """Write `round_dir/dataset/` (labeled + pseudo-labeled) and `round_dir/data.yaml`.

    `pseudo` items carry the label file written by the labeling step. Each labeled image is linked
    `labeled_repeat` times (oversampling without copies). A leftover dataset of an interrupted
    attempt, label cache included, is replaced whole.
    """
    dataset = round_dir / "dataset"
    partial = fresh_partial_dir(dataset)
    n_labeled = _fill_split(labeled, partial / "images" / "labeled", partial / "labels" / "labeled", labeled_repeat)
    n_pseudo = _fill_split(pseudo, partial / "images" / "pseudo", partial / "labels" / "pseudo")
    replace_dir(partial, dataset)
    data_yaml = round_dir / "data.yaml"
    meta = {
        "path": str(dataset.resolve()),
        "train": str((dataset / "images").resolve()),
        "val": str(val_images.resolve()),
        "names": dict(names),
    }
    write_text_atomic(data_yaml, yaml.safe_dump(meta, sort_keys=False))
    return RoundDataset(data_yaml, n_labeled, n_pseudo)


def _fill_split(items: Iterable[ImageItem], image_dir: Path, label_dir: Path, repeat: int = 1) -> int:
    """Link each image (`repeat` times, as `<id>`, `<id>~2`, ...) and copy its label; return the image count."""
    image_dir.mkdir(parents=True, exist_ok=True)
    label_dir.mkdir(parents=True, exist_ok=True)
    count = 0
    for item in items:
        for copy in range(repeat):
            name = item.id if copy == 0 else f"{item.id}~{copy + 1}"
            link_file(item.path, image_dir / f"{name}{item.path.suffix}")
            if item.label is not None:
                shutil.copyfile(item.label, label_dir / f"{name}.txt")
        count += 1
    return count
