"""File-system habits every module shares: atomic writes, whole-folder swaps, links instead of copies."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from yolossl.errors import YolosslError


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it over `path`.

    A reader (or a resumed run) sees the old content or the new, never half of it.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def resolve_inside(root: Path, name: object, *, source: Path | str, entry: str, what: str = "folder") -> Path:
    """`root / name` for a `name` read from a file we did not write, refused unless it stays under `root`.

    The one rule for every such name: a non-empty relative path, no `..` part, no absolute or drive
    path, no backslash (a Windows `..\\` on extraction), no NUL, and resolved (links followed) still
    under `root` resolved. Otherwise one line naming the file and the entry:
    `export.json: images[3].file_name '../../x.jpg' leaves the images folder (absolute or '..')`.
    """
    shown = repr(name)[:200]
    if not isinstance(name, str) or not name.strip():
        raise YolosslError(f"{source}: {entry} {shown} is not a file name")
    if "\\" in name or "\0" in name or name[1:2] == ":":
        raise YolosslError(f"{source}: {entry} {shown} has a backslash, NUL or drive letter; only plain relative names")
    parts = name.split("/")
    if name.startswith("/") or ".." in parts:
        raise YolosslError(f"{source}: {entry} {shown} leaves the {what} (absolute or '..')")
    path = root / name
    try:
        inside = path.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError) as e:  # a link loop
        raise YolosslError(f"{source}: {entry} {shown} cannot be resolved ({e})") from e
    if not inside:
        raise YolosslError(f"{source}: {entry} {shown} is a link leaving the {what} (to {path.resolve()})")
    return path


def fresh_partial_dir(dest: Path) -> Path:
    """An empty `<dest>.partial` folder to build `dest` in; leftovers of an interrupted build are removed."""
    partial = dest.with_name(dest.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    return partial


def replace_dir(partial: Path, dest: Path) -> None:
    """Move a finished `partial` folder into place as `dest`, replacing an older `dest`."""
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(partial, dest)


def link_file(source: Path, link: Path, hard_first: bool = False) -> None:
    """Symlink `link` to `source` (absolute), or hard-link where symlinks are not allowed; never copy.

    `hard_first` prefers a hard link (same file system): the link is then an ordinary file, which
    tools that refuse symlinks leaving their folder (datumaro, some uploaders) accept.
    """
    target = os.path.realpath(source) if hard_first else os.path.abspath(source)
    attempts = (os.link, os.symlink) if hard_first else (os.symlink, os.link)
    try:
        attempts[0](target, link)
    except OSError:
        try:
            attempts[1](target, link)
        except OSError as e:
            raise YolosslError(
                f"{link}: cannot link to {target} ({e.strerror}); yolossl never copies the image pool"
            ) from e
