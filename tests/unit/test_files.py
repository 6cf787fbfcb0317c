"""files.py: what a read is allowed to open, and how much of it."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from textfile_writer.files import read_regular


def test_the_limit_holds_when_the_size_says_nothing(tmp_path: Path) -> None:
    # /proc files report st_size 0 and still have bytes: the limit is on what is read, not on fstat
    assert os.stat("/proc/self/status").st_size == 0
    with pytest.raises(OSError) as info:
        read_regular("/proc/self/status", 64)
    assert info.value.errno == errno.EFBIG
    assert read_regular("/proc/self/status", 1 << 20).startswith(b"Name:")


def test_a_link_is_followed_only_when_asked(tmp_path: Path) -> None:
    (tmp_path / "real").write_bytes(b"x")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert read_regular(str(tmp_path / "link"), 10) == b"x"
    with pytest.raises(OSError, match="is a symbolic link"):
        read_regular(str(tmp_path / "link"), 10, follow=False)


@pytest.mark.parametrize(("path", "message"), [
    ("/dev/null", "not a regular file (a character device)"),
    ("/", "not a regular file (a directory)"),
    ("/tmp/a\0b", "the path contains a NUL byte"),
])
def test_only_regular_files_are_read(path: str, message: str) -> None:
    with pytest.raises(OSError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_regular(path, 10)
