"""`record.csv`: every candidate box a labeling pass saw — its columns, its rows, one typed reader.

The writer (`label.writer`) adds rows as it sorts boxes; the report, the bench's pseudo-label
quality, the exports and the training loss read them back through `read_record`, so the columns
are named in one place and a damaged file is one error line naming the file and the row.

    >>> rows = read_record(Path("runs/cycle/exp/round_1/pseudo/record.csv"))
    >>> [r for r in rows if r.status == "kept"][0].xywhn
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from yolossl.errors import YolosslError

RECORD_FILE = "record.csv"
RECORD_COLUMNS = (
    "image_id",
    "image",
    "class_id",
    "class_name",
    "score",
    "x_center",
    "y_center",
    "width",
    "height",
    "status",
    "reason",
    "det_class_id",  # the detector's own class, when a class reviewer (the FixMatch head) was used
    "head_class_id",
    "head_score",
    "head_decision",
)
STATUSES = ("kept", "uncertain", "dropped")


@dataclass(frozen=True)
class RecordRow:
    """One candidate box: where, which class and score, what was decided and why (and the head's opinion)."""

    image_id: str
    image: str
    class_id: int
    class_name: str
    score: float
    xywhn: tuple[float, float, float, float]
    status: str
    reason: str
    det_class_id: int | None = None
    head_class_id: int | None = None
    head_score: float | None = None
    head_decision: str = ""

    def as_csv_row(self) -> list[object]:
        """The row as `record.csv` stores it (scores to 5 decimals, boxes to 6)."""
        x, y, w, h = self.xywhn
        head: list[object] = ["", "", "", ""]
        if self.head_class_id is not None:
            head = [self.det_class_id, self.head_class_id, f"{self.head_score:.4f}", self.head_decision]
        box = [f"{x:.6f}", f"{y:.6f}", f"{w:.6f}", f"{h:.6f}"]
        return [
            self.image_id,
            self.image,
            self.class_id,
            self.class_name,
            f"{self.score:.5f}",
            *box,
            self.status,
            self.reason,
            *head,
        ]


def read_record(path: Path) -> list[RecordRow]:
    """Every row of a `record.csv`; a missing column or a malformed value names the file and the row."""
    return list(iter_record(path))


def iter_record(path: Path) -> Iterator[RecordRow]:
    """The rows of a `record.csv` one at a time (a pool's record can be millions of boxes)."""
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in RECORD_COLUMNS[:11] if c not in (reader.fieldnames or ())]
        if missing:
            raise YolosslError(f"{path}: not a yolossl record.csv (no column {', '.join(missing)})")
        for line, row in enumerate(reader, start=2):
            yield _parse(row, path, line)


def _parse(row: dict[str, str], path: Path, line: int) -> RecordRow:
    try:
        parsed = RecordRow(
            image_id=row["image_id"],
            image=row["image"],
            class_id=int(row["class_id"]),
            class_name=row["class_name"],
            score=_finite(row["score"]),
            xywhn=(_finite(row["x_center"]), _finite(row["y_center"]), _finite(row["width"]), _finite(row["height"])),
            status=row["status"],
            reason=row["reason"],
            det_class_id=_optional_int(row.get("det_class_id")),
            head_class_id=_optional_int(row.get("head_class_id")),
            head_score=float(row["head_score"]) if row.get("head_score") else None,
            head_decision=row.get("head_decision") or "",
        )
    except (TypeError, ValueError) as e:
        raise YolosslError(f"{path}: line {line}: {e}") from e
    if parsed.status not in STATUSES:
        raise YolosslError(f"{path}: line {line}: status {parsed.status!r} is not one of {', '.join(STATUSES)}")
    return parsed


def _finite(text: str | None) -> float:
    value = float(text)  # type: ignore[arg-type]  (None: TypeError, reported with the line)
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def _optional_int(text: str | None) -> int | None:
    return int(text) if text else None


class RecordWriter:
    """Writes `record.csv` row by row: the header first, then each box as the writer decides it."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("w", newline="", encoding="utf-8")
        self._csv = csv.writer(self._file)
        self._csv.writerow(RECORD_COLUMNS)

    def write(self, rows: list[RecordRow]) -> None:
        self._csv.writerows(row.as_csv_row() for row in rows)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
