"""The folders yolossl builds carry its marker; only those are ever deleted. Special files are never read."""

from __future__ import annotations

import os
import re
import signal
import socket
from pathlib import Path

import pytest

from yolossl._fs import (
    BUILD_MARKER,
    NotARegularFile,
    fresh_partial_dir,
    read_regular_file,
    replace_dir,
    resumable_partial_dir,
    special_file_kind,
)
from yolossl.errors import YolosslError


def test_a_build_folder_carries_the_marker_and_replaces_an_earlier_build(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    replace_dir(fresh_partial_dir(dest), dest)
    (dest / "old.txt").write_text("")
    partial = fresh_partial_dir(dest)
    (partial / "new.txt").write_text("")
    replace_dir(partial, dest)
    assert sorted(p.name for p in dest.iterdir()) == [BUILD_MARKER, "new.txt"]


def test_a_users_folder_is_never_replaced(tmp_path: Path) -> None:
    dest = tmp_path / "mine"
    dest.mkdir()
    (dest / "notes.txt").write_text("keep me")
    partial = fresh_partial_dir(dest)
    with pytest.raises(YolosslError, match="^" + re.escape(f"{dest}: exists and was not built by yolossl")):
        replace_dir(partial, dest)
    assert (dest / "notes.txt").read_text() == "keep me"


def test_an_empty_folder_may_be_the_destination(tmp_path: Path) -> None:
    dest = tmp_path / "empty"
    dest.mkdir()
    replace_dir(fresh_partial_dir(dest), dest)
    assert (dest / BUILD_MARKER).is_file()


def test_a_linked_partial_folder_is_refused_and_its_target_kept(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / BUILD_MARKER).write_text("")  # even with our marker inside: a link is not our folder
    os.symlink(target, tmp_path / "out.partial")
    for make in (fresh_partial_dir, resumable_partial_dir):
        with pytest.raises(YolosslError, match=re.escape("out.partial: exists and was not built by yolossl")):
            make(tmp_path / "out")
    assert (target / BUILD_MARKER).is_file()


def test_an_empty_partial_folder_is_debris_of_a_build_killed_before_its_marker(tmp_path: Path) -> None:
    (tmp_path / "out.partial").mkdir()
    assert (fresh_partial_dir(tmp_path / "out") / BUILD_MARKER).is_file()


def test_an_interrupted_build_is_resumed_only_when_ours(tmp_path: Path) -> None:
    partial = resumable_partial_dir(tmp_path / "a")
    (partial / "shard.txt").write_text("done")
    assert (resumable_partial_dir(tmp_path / "a") / "shard.txt").read_text() == "done"
    (tmp_path / "b.partial").mkdir()
    with pytest.raises(YolosslError, match=re.escape("b.partial: exists and was not built by yolossl")):
        resumable_partial_dir(tmp_path / "b")


def test_special_files_are_named_and_never_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.jpg")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "sock.jpg"))
        assert special_file_kind(tmp_path / "sock.jpg") == "a socket"
        with pytest.raises(NotARegularFile, match=re.escape("sock.jpg: not a regular file (a socket), not read")):
            read_regular_file(tmp_path / "sock.jpg")
    assert special_file_kind(tmp_path / "pipe.jpg") == "a FIFO"
    assert special_file_kind(Path("/dev/null")) == "a character device"
    signal.signal(signal.SIGALRM, _timed_out)
    signal.alarm(10)  # a regression blocks in open() until a writer comes: fail instead of hanging
    with pytest.raises(NotARegularFile, match=re.escape("pipe.jpg: not a regular file (a FIFO), not read")):
        read_regular_file(tmp_path / "pipe.jpg")
    signal.alarm(0)
    with pytest.raises(NotARegularFile, match="a folder"):
        read_regular_file(tmp_path)
    (tmp_path / "file.txt").write_text("x")
    assert special_file_kind(tmp_path / "file.txt") is None and read_regular_file(tmp_path / "file.txt") == b"x"


def _timed_out(*_: object) -> None:
    raise TimeoutError("blocked reading a FIFO")
