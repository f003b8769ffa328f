"""File-system habits every module shares: atomic writes, whole-folder swaps, links instead of copies."""

from __future__ import annotations

import logging
import os
import shutil
import stat
from pathlib import Path
from typing import BinaryIO

from yolossl.errors import YolosslError

logger = logging.getLogger(__name__)

BUILD_MARKER = ".yolossl-build"  # in every folder yolossl builds: the only folders it ever deletes
_MARKER_TEXT = "Built by yolossl; it may replace or delete this folder.\n"


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
    """An empty `<dest>.partial` folder to build `dest` in, carrying our marker; our leftovers are removed.

    A `<dest>.partial` without the marker is someone else's folder (a user's notes, an input that
    happens to have that name): it is refused, never deleted.
    """
    partial = dest.with_name(dest.name + ".partial")
    if partial.exists() or partial.is_symlink():
        if not _is_empty_dir(partial):  # empty: a build killed before its marker was written
            _check_ours(partial)
        shutil.rmtree(partial)
    return _marked_dir(partial)


def replace_dir(partial: Path, dest: Path) -> None:
    """Move a finished `partial` folder into place as `dest`, replacing an older `dest` that we built.

    `dest` keeps the marker, so a later run may replace it in turn; an existing `dest` without it
    (a user's folder given as --out) is refused before anything is removed.
    """
    if dest.exists() or dest.is_symlink():
        if not _is_empty_dir(dest):
            _check_ours(dest)
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


def resumable_partial_dir(dest: Path) -> Path:
    """`<dest>.partial` as an interrupted build left it (finished parts are reused), or a new one.

    The same rule as `fresh_partial_dir`: an existing one without our marker is refused.
    """
    partial = dest.with_name(dest.name + ".partial")
    if partial.exists() or partial.is_symlink():
        _check_ours(partial)
        return partial
    return _marked_dir(partial)


def _marked_dir(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / BUILD_MARKER).write_text(_MARKER_TEXT, encoding="utf-8")
    return folder


def _is_empty_dir(folder: Path) -> bool:
    return folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir())


def _check_ours(folder: Path) -> None:
    """Refuse to delete `folder` unless it is a real folder (not a link) holding our marker."""
    if folder.is_symlink() or not folder.is_dir() or not (folder / BUILD_MARKER).is_file():
        raise YolosslError(
            f"{folder}: exists and was not built by yolossl (no {BUILD_MARKER} in it); "
            "yolossl never deletes it: move it away or choose another --out"
        )


def check_output_dir(out: Path, exist_ok: bool = False) -> None:
    """The one rule for `--out` (label, export, import): a new or empty folder; with `exist_ok`, also an earlier output
    of yolossl, replaced whole once the new one is built (said in one line). A folder yolossl did not build never is.
    """
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    if not exist_ok:
        raise YolosslError(
            f"{out}: exists and is not empty; choose a new --out folder (or --exist-ok to replace an earlier output)"
        )
    _check_ours(out)
    logger.warning("%s: an earlier output, replaced by this one (--exist-ok)", out)


def is_ours(folder: Path) -> bool:
    """Whether `folder` is a folder yolossl built (and so may replace)."""
    return not folder.is_symlink() and (folder / BUILD_MARKER).is_file()


def special_file_kind(path: Path) -> str | None:
    """'a FIFO', 'a socket', 'a character device', 'a block device' for such a `path` (links followed), else None.

    Reading a FIFO blocks until someone writes to it, a device may never end: such names in an
    image pool or a label folder are skipped, not opened.
    """
    try:
        return _special_kind(os.stat(path).st_mode)
    except OSError:
        return None  # missing, a link loop, no permission: the reader's own error says which


def _special_kind(mode: int) -> str | None:
    kinds = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"))
    return next((kind for test, kind in kinds if test(mode)), "a block device" if stat.S_ISBLK(mode) else None)


class NotARegularFile(YolosslError):
    """A FIFO, socket, device or folder where a file was expected; never read."""

    def __init__(self, path: Path, kind: str) -> None:
        super().__init__(f"{path}: not a regular file ({kind}), not read")
        self.path, self.kind = path, kind


def open_regular_file(path: Path) -> BinaryIO:
    """Open `path` for reading in binary, refusing (without blocking) anything but a regular file.

    The open itself does not wait for a FIFO's writer (O_NONBLOCK, which regular files ignore);
    the check is on the opened file, so a name swapped after a listing is caught too.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        kind = special_file_kind(path)  # a socket cannot be opened at all
        if kind is None:
            raise
        raise NotARegularFile(path, kind) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise NotARegularFile(path, _special_kind(mode) or "a folder")
    return os.fdopen(fd, "rb")


def read_regular_file(path: Path) -> bytes:
    """The bytes of `path`, which must be a regular file (see `open_regular_file`)."""
    with open_regular_file(path) as f:
        return f.read()
