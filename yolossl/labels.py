"""YOLO label files as users really have them: checked line by line, fixed where the fix is certain.

A label file is never edited in place; the cleaned rows are what a round's dataset gets. Every
change is a `LabelIssue` naming the file, the line, the problem and what was done, so that nothing
is dropped silently:

- not 5 numbers (or a polygon of 3+ points, which becomes its box), NaN/inf, a class id that is
  not an integer in range: the line is dropped;
- a box reaching outside the image: clipped to it; a box of zero area: dropped;
- the same box twice: the duplicate is dropped;
- CRLF line endings, blank lines: read as usual.

    >>> cleaned = clean_label_file(Path("labels/img.txt"), n_classes=5)
    >>> cleaned.rows, cleaned.issues
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from yolossl._fs import NotARegularFile, read_regular_file
from yolossl.data import ImageItem, label_path_for
from yolossl.errors import YolosslError

logger = logging.getLogger(__name__)

CLASS_OUT_OF_RANGE = "class id"  # how the issue of a class id that is not one of `names` begins
MAX_LOGGED = 20  # issues named one by one per split; the rest are counted
_TOLERANCE = 1e-6  # rounding in label files: a box edge at -0.0000001 is on the image border


@dataclass(frozen=True)
class LabelIssue:
    path: str
    line: int  # 1-based; 0 for a problem of the whole file
    problem: str
    action: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.problem}, {self.action}"


@dataclass
class CleanLabels:
    rows: np.ndarray  # (N, 5) class xc yc w h
    issues: list[LabelIssue] = field(default_factory=list)


@dataclass
class SplitReport:
    """What checking a split's labels found: per-line issues, images without labels, labels without images."""

    split: str
    images: int = 0
    issues: list[LabelIssue] = field(default_factory=list)
    images_without_label: list[str] = field(default_factory=list)
    labels_without_image: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        counted = Counter(issue.problem.split(" (")[0] for issue in self.issues)
        counted["image without a label file (trained as background)"] = len(self.images_without_label)
        counted["label file without an image (ignored)"] = len(self.labels_without_image)
        return {k: v for k, v in counted.items() if v}


def clean_label_file(path: Path, n_classes: int) -> CleanLabels:
    """Read a YOLO label file, dropping or fixing what is wrong (see the module docstring)."""
    try:
        text = read_regular_file(path).decode("utf-8-sig")
    except NotARegularFile as e:
        return CleanLabels(
            np.zeros((0, 5)),
            [LabelIssue(str(path), 0, f"not a regular file ({e.kind})", "skipped, the image trains as a background")],
        )
    except (OSError, UnicodeDecodeError) as e:
        return CleanLabels(np.zeros((0, 5)), [LabelIssue(str(path), 0, f"unreadable ({e})", "treated as empty")])
    rows: list[tuple[float, float, float, float, float]] = []
    issues: list[LabelIssue] = []
    seen: set[tuple[float, ...]] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        row, issue = _clean_line(line, n_classes)
        if issue is not None:
            issues.append(LabelIssue(str(path), number, *issue))
        if row is None:
            continue
        key = tuple(round(v, 6) for v in row)
        if key in seen:
            issues.append(LabelIssue(str(path), number, "duplicate box", "dropped"))
            continue
        seen.add(key)
        rows.append(row)
    return CleanLabels(np.array(rows, dtype=np.float64).reshape(-1, 5), issues)


def _clean_line(line: str, n_classes: int) -> tuple[tuple[float, ...] | None, tuple[str, str] | None]:
    """(row or None, (problem, action) or None) for one label line."""
    parts = line.split()
    try:
        values = [float(p) for p in parts]
    except ValueError:
        return None, (f"not numbers ({line.strip()[:40]!r})", "line dropped")
    if not all(math.isfinite(v) for v in values):
        return None, ("NaN or infinite value", "line dropped")
    cls = values[0]
    if cls != int(cls) or not 0 <= cls < n_classes:
        return None, (f"{CLASS_OUT_OF_RANGE} {parts[0]} out of range (0..{n_classes - 1})", "line dropped")
    note = None
    if len(values) == 5:
        xc, yc, w, h = values[1:]
        x1, y1, x2, y2 = xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2
    elif len(values) >= 7 and len(values) % 2 == 1:
        xs, ys = values[1::2], values[2::2]
        x1, y1, x2, y2 = min(xs), min(ys), max(xs), max(ys)
        note = ("polygon instead of a box", "converted to its box")
    else:
        return None, (f"{len(values)} columns instead of 5 (class xc yc w h)", "line dropped")
    cx1, cy1, cx2, cy2 = (min(max(v, 0.0), 1.0) for v in (x1, y1, x2, y2))
    if cx2 - cx1 <= 1e-6 or cy2 - cy1 <= 1e-6:
        return None, (
            "zero-area box" if (x2 - x1) * (y2 - y1) <= 1e-12 else "box entirely outside the image",
            "line dropped",
        )
    inside = min(x1, y1) >= -_TOLERANCE and max(x2, y2) <= 1 + _TOLERANCE
    if len(values) == 5 and inside:
        return (float(int(cls)), *values[1:]), None  # the common case: the numbers as written
    if note is None:
        note = ("box reaches outside the image", "clipped to the image")
    return (float(int(cls)), (cx1 + cx2) / 2, (cy1 + cy2) / 2, cx2 - cx1, cy2 - cy1), note


def check_split(split: str, items: Sequence[ImageItem], sources: Iterable[Path], n_classes: int) -> SplitReport:
    """Check every label of a split, and find images without labels and label files without images."""
    report = SplitReport(split=split, images=len(items))
    expected: set[Path] = set()
    for item in items:
        expected.add(label_path_for(item.path))
        if item.label is None:
            report.images_without_label.append(str(item.path))
        else:
            report.issues.extend(clean_label_file(item.label, n_classes).issues)
    for source in sources:
        label_dir = label_path_for(source / "x.jpg").parent if source.is_dir() else None
        if label_dir is not None and label_dir.is_dir() and label_dir != source:
            report.labels_without_image.extend(
                str(p) for p in sorted(label_dir.rglob("*.txt")) if p not in expected and p.name != "classes.txt"
            )
    return report


def check_class_ids(reports: Sequence[SplitReport], yaml_path: Path, n_classes: int) -> None:
    """Stop, in one line, when labels use class ids that are not among the data YAML's `names`: a wrong `names` (or
    wrong labels), which dropping those lines would train past (Ultralytics stops on it too)."""
    beyond = [issue for report in reports for issue in report.issues if issue.problem.startswith(CLASS_OUT_OF_RANGE)]
    if beyond:
        splits = ", ".join(r.split for r in reports if any(i.problem.startswith(CLASS_OUT_OF_RANGE) for i in r.issues))
        raise YolosslError(
            f"{yaml_path}: {len(beyond)} label(s) in {splits} use class ids outside its {n_classes} names "
            f"(0..{n_classes - 1}; first: {beyond[0].path}:{beyond[0].line}); fix 'names:' or the labels"
        )


def log_split_report(report: SplitReport) -> None:
    """One warning per issue, naming the file (the first MAX_LOGGED), then the totals."""
    named = [str(i) for i in report.issues]
    named += [f"{p}: no label file, trained as a background image" for p in report.images_without_label]
    named += [f"{p}: label file without an image, ignored" for p in report.labels_without_image]
    for line in named[:MAX_LOGGED]:
        logger.warning("%s split: %s", report.split, line)
    if len(named) > MAX_LOGGED:
        totals = ", ".join(f"{n} x {k}" for k, n in report.counts().items())
        logger.warning(
            "%s split: %d more like these (in all: %s); see data_report.json",
            report.split,
            len(named) - MAX_LOGGED,
            totals,
        )
