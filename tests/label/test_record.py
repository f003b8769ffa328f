from __future__ import annotations

import os
from pathlib import Path

import pytest

from yolossl.errors import YolosslError
from yolossl.label.record import RECORD_COLUMNS, RecordRow, RecordWriter, read_record

ROWS = [
    RecordRow("a-1234", "/pool/a.jpg", 2, "ring", 0.91234, (0.5, 0.25, 0.125, 0.0625), "kept", "score >= 0.500"),
    RecordRow(
        "a-1234",
        "/pool/a.jpg",
        0,
        "circle",
        0.2,
        (0.1, 0.1, 0.05, 0.05),
        "uncertain",
        "score in [0.1, 0.5)",
        det_class_id=1,
        head_class_id=0,
        head_score=0.97,
        head_decision="relabeled 1->0",
    ),
]


def test_what_the_writer_writes_the_reader_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "record.csv"
    with RecordWriter(path) as writer:
        writer.write(ROWS)
    assert path.read_text().splitlines()[0] == ",".join(RECORD_COLUMNS)
    back = read_record(path)
    assert back[0] == ROWS[0]
    assert back[1].head_class_id == 0 and back[1].head_score == pytest.approx(0.97) and back[1].det_class_id == 1


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("image_id,image\n", "not a yolossl record.csv (no column class_id"),
        (
            ",".join(RECORD_COLUMNS) + "\na,/p/a.jpg,zero,ring,0.9,0.5,0.5,0.1,0.1,kept,r,,,,\n",
            "line 2: invalid literal",
        ),
        (
            ",".join(RECORD_COLUMNS) + "\na,/p/a.jpg,0,ring,nan,0.5,0.5,0.1,0.1,kept,r,,,,\n",
            "line 2: 'nan' is not a finite",
        ),
        (
            ",".join(RECORD_COLUMNS) + "\na,/p/a.jpg,0,ring,0.9,0.5,0.5,0.1,0.1,maybe,r,,,,\n",
            "status 'maybe' is not one of",
        ),
        (",".join(RECORD_COLUMNS) + "\na,/p/a.jpg,0\n", "line 2: not as many values as columns"),
    ],
)
def test_a_damaged_record_is_one_line_naming_the_file_and_line(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "record.csv"
    path.write_text(text)
    with pytest.raises(YolosslError, match=f"^{path}: .*") as error:
        read_record(path)
    assert problem in str(error.value)


def test_a_fifo_named_record_csv_is_refused_without_blocking(tmp_path: Path) -> None:
    path = tmp_path / "record.csv"
    os.mkfifo(path)
    with pytest.raises(YolosslError, match="not a regular file"):
        read_record(path)
