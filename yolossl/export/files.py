"""Reading annotation files that others wrote: regular files only, bounded in size, parsed into one-line errors.

Every importer reads through here, so a FIFO never hangs an import, a zip bomb or a huge file is
refused before it is held in memory, and a malformed or hostile file ends in one `YolosslError`
naming it. Structure checks (`field`, `number`, `side`) name the file and the entry, e.g.
`export.json: images[3].width: expected a positive whole number of pixels, got 1e+30`.

    >>> payload = load_json(Path("export.json"))
    >>> root = parse_xml(Path("annotations.xml"))
"""

from __future__ import annotations

import json
import math
import os
import stat
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path
from typing import Any

from yolossl.errors import YolosslError

# COCO 2017's train instances (448 MB, with polygons) is the largest common detection JSON and fits;
# a review export of a million boxes is 150-300 MB. Parsing 512 MiB of JSON already takes several GB.
MAX_ANNOTATION_BYTES = 512 * 1024**2
# No camera or scan used for detection stores a side longer than this (JPEG's own limit is 65535).
MAX_IMAGE_SIDE = 65535


def require_regular_file(path: Path, what: str = "an annotation file") -> os.stat_result:
    """The file's stat, refusing FIFOs, sockets and devices (opening a FIFO blocks forever)."""
    try:
        info = os.stat(path)
    except OSError as e:
        raise YolosslError(f"{path}: {e.strerror or e}") from e
    if not stat.S_ISREG(info.st_mode):
        raise YolosslError(f"{path}: not a regular file (a FIFO, socket, device or folder); {what} is expected")
    return info


def read_bounded(path: Path) -> bytes:
    """The bytes of an annotation file, refused past `MAX_ANNOTATION_BYTES` before reading."""
    info = require_regular_file(path)
    if info.st_size > MAX_ANNOTATION_BYTES:
        raise YolosslError(f"{path}: {info.st_size} bytes, over the {_mib(MAX_ANNOTATION_BYTES)} annotation file limit")
    with open(path, "rb") as f:
        data = f.read(MAX_ANNOTATION_BYTES + 1)  # the file may have grown since the stat
    if len(data) > MAX_ANNOTATION_BYTES:
        raise YolosslError(f"{path}: over the {_mib(MAX_ANNOTATION_BYTES)} annotation file limit")
    return data


def read_zip_member(path: Path, member: str) -> bytes:
    """One member of a zip, never extracted: refused when its header or its actual size passes the limit."""
    require_regular_file(path)
    try:
        with zipfile.ZipFile(path) as archive:
            try:
                info = archive.getinfo(member)
            except KeyError as e:
                raise YolosslError(f"{path}: the zip has no {member}") from e
            if info.file_size > MAX_ANNOTATION_BYTES:
                raise YolosslError(
                    f"{path}: {member} unpacks to {info.file_size} bytes, over the "
                    f"{_mib(MAX_ANNOTATION_BYTES)} annotation file limit"
                )
            with archive.open(info) as f:
                data = f.read(MAX_ANNOTATION_BYTES + 1)  # never trust the header alone
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, EOFError, OSError) as e:
        raise YolosslError(f"{path}: a broken or unsupported zip ({type(e).__name__}: {_short(e)})") from e
    if len(data) > MAX_ANNOTATION_BYTES:
        raise YolosslError(f"{path}: {member} unpacks past the {_mib(MAX_ANNOTATION_BYTES)} annotation file limit")
    return data


def is_zip(path: Path) -> bool:
    """Whether a regular file is a zip (checked without opening anything else)."""
    require_regular_file(path)
    return zipfile.is_zipfile(path)


def load_json(path: Path, kind: str) -> Any:
    """A JSON file, bounded in size; bad JSON, too deep nesting or bad UTF-8 is one line naming `kind`."""
    data = read_bounded(path)
    try:
        return json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as e:
        raise YolosslError(f"{path}: not a {kind} (not UTF-8 text at byte {e.start})") from e
    except json.JSONDecodeError as e:
        raise YolosslError(f"{path}: not a {kind} ({e.msg} at line {e.lineno} column {e.colno})") from e
    except RecursionError as e:
        raise YolosslError(f"{path}: not a {kind} (nested too deeply to read)") from e


def parse_xml(path: Path, data: bytes | None = None, kind: str = "XML annotation") -> ET.Element:
    """An XML document (from `data`, else the bounded file): entities of a DTD and external ones are refused.

    expat (2.4+) refuses billion-laughs expansion and ElementTree never fetches external entities
    or XIncludes; a DTD has no place in an annotation export, so any is refused outright.
    """
    data = read_bounded(path) if data is None else data
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise YolosslError(f"{path}: not a {kind} (a DTD or entity declaration; annotation exports have none)")
    try:
        return ET.fromstring(data)
    except ET.ParseError as e:
        raise YolosslError(f"{path}: not a {kind} ({_short(e)})") from e
    except RecursionError as e:
        raise YolosslError(f"{path}: not a {kind} (nested too deeply to read)") from e


def field(obj: Any, key: str, kind: type | tuple[type, ...], path: Path, entry: str) -> Any:
    """`obj[key]`, checked to be a `kind`; a missing key or a wrong type names the file and `entry.key`."""
    if not isinstance(obj, dict):
        raise YolosslError(f"{path}: {entry or 'the file'}: expected an object, got {_kind_of(obj)}")
    where = f"{entry}.{key}" if entry else key
    if key not in obj:
        raise YolosslError(f"{path}: {where}: missing")
    value = obj[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
        raise YolosslError(f"{path}: {where}: expected {_names(kind)}, got {_kind_of(value)}")
    return value


def items(value: Any, path: Path, entry: str) -> list:
    """`value` checked to be a list (of entries to check one by one)."""
    if not isinstance(value, list):
        raise YolosslError(f"{path}: {entry}: expected a list, got {_kind_of(value)}")
    return value


def mapping(value: Any, path: Path, entry: str) -> dict:
    """`value` checked to be an object (a dict)."""
    if not isinstance(value, dict):
        raise YolosslError(f"{path}: {entry}: expected an object, got {_kind_of(value)}")
    return value


def _as_float(value: Any) -> float:
    """`value` as a float; NaN for anything that is not a number (booleans included) or numeric text."""
    if isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return math.nan


def number(value: Any, path: Path, entry: str) -> float:
    """A finite number (JSON number or numeric text), else one line naming the entry."""
    result = _as_float(value)
    if not math.isfinite(result):
        raise YolosslError(f"{path}: {entry}: expected a finite number, got {_short_value(value)}")
    return result


def side(value: Any, path: Path, entry: str) -> int:
    """An image width or height: a whole number of pixels from 1 to `MAX_IMAGE_SIDE`."""
    result = _as_float(value)
    if not (math.isfinite(result) and result == int(result) and 1 <= result <= MAX_IMAGE_SIDE):
        raise YolosslError(
            f"{path}: {entry}: expected a whole number of pixels from 1 to {MAX_IMAGE_SIDE}, got {_short_value(value)}"
        )
    return int(result)


def refuse_duplicate_names(names: list[str], path: Path, entry: str) -> None:
    """Two entries for one image file would give it two sets of boxes: an error, never a silent merge."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise YolosslError(f"{path}: {entry} {_short_value(name)} appears twice")
        seen.add(name)


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _names(kind: type | tuple[type, ...]) -> str:
    words = {
        str: "a string",
        int: "an integer",
        float: "a number",
        list: "a list",
        dict: "an object",
        bool: "true/false",
    }
    return " or ".join(words.get(k, k.__name__) for k in _as_tuple(kind))


def _kind_of(value: Any) -> str:
    words = {type(None): "null", bool: "true/false", int: "an integer", float: "a number", str: "a string"}
    return words.get(
        type(value),
        "a list" if isinstance(value, list) else "an object" if isinstance(value, dict) else type(value).__name__,
    )


def _short_value(value: Any) -> str:
    if value is None:
        return "nothing"
    return _short(repr(value) if isinstance(value, str) else value)


def _short(value: Any, limit: int = 120) -> str:
    text = str(value).replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "..."


def _mib(size: int) -> str:
    return f"{size // 1024**2} MiB"
