"""What every hostile-file case shares: a picture of a folder tree, to prove nothing outside `--out` changed."""

from __future__ import annotations

import hashlib
import os
import signal
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def tree_snapshot(root: Path, exclude: tuple[Path, ...] = ()) -> dict[str, tuple]:
    """Every entry under `root` (links not followed) with its kind and content hash or link target.

    `exclude` are folders whose insides may change (the command's `--out`); they are left out,
    along with anything beside them named like their temporary builds.
    """
    skipped = [str(p) for p in exclude]
    picture: dict[str, tuple] = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in sorted(dirs + files):
            path = os.path.join(folder, name)
            if any(path == s or path.startswith(s + os.sep) or path.startswith(s + ".") for s in skipped):
                continue
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                picture[path] = ("link", os.readlink(path))
            elif stat.S_ISREG(info.st_mode):
                with open(path, "rb") as f:
                    picture[path] = ("file", hashlib.sha256(f.read()).hexdigest())
            else:
                picture[path] = ("other", stat.S_IFMT(info.st_mode))
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]
    return picture


@pytest.fixture
def untouched_outside(tmp_path: Path):
    """Pictures tmp_path now, leaving out the given `--out` folders; the returned check fails if anything else changed.

    check = untouched_outside(out)   # before the command
    ...                              # run it
    check()                          # nothing under tmp_path outside `out` was written or deleted
    """

    def start(*outs: Path):
        before = tree_snapshot(tmp_path, exclude=outs)

        def check() -> None:
            after = tree_snapshot(tmp_path, exclude=outs)
            changed = sorted(set(before.items()) ^ set(after.items()))
            assert not changed, f"changed outside {', '.join(map(str, outs))}: {changed[:5]}"

        return check

    return start


@contextmanager
def no_hang(seconds: int = 20) -> Iterator[None]:
    """Fail the test instead of blocking forever: a FIFO opened for reading blocks until a writer comes,
    and the alarm interrupts that open()."""

    def expired(*_: object) -> None:
        raise TimeoutError(f"still running after {seconds} s: blocked on a file?")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
