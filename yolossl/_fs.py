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
