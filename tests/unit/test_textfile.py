"""textfile.py: the target is replaced whole or not at all; overlapping runs wait for the lock."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from textfile_writer.errors import LockError, WriteError
from textfile_writer.textfile import RunLock, atomic_write, remove_stale_temps


def test_write_creates_readable_file_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        atomic_write(str(tmp_path), "agents.prom", b"agent_up 1\n")
    finally:
        os.umask(old)
    target = tmp_path / "agents.prom"
    assert target.read_bytes() == b"agent_up 1\n"
    assert target.stat().st_mode & 0o777 == 0o644
    assert os.listdir(tmp_path) == ["agents.prom"]


def test_replace_keeps_no_temporary_file(tmp_path: Path) -> None:
    for i in range(5):
        atomic_write(str(tmp_path), "agents.prom", f"run {i}\n".encode())
    assert os.listdir(tmp_path) == ["agents.prom"]
    assert (tmp_path / "agents.prom").read_text() == "run 4\n"


def test_failed_rename_leaves_old_target_and_no_temp(tmp_path: Path) -> None:
    # the target is a non-empty directory: rename(2) fails after the temp file was written
    (tmp_path / "agents.prom").mkdir()
    (tmp_path / "agents.prom" / "keep").write_text("old")
    with pytest.raises(WriteError) as info:
        atomic_write(str(tmp_path), "agents.prom", b"new\n")
    assert "previous file is unchanged" in str(info.value)
    assert sorted(os.listdir(tmp_path)) == ["agents.prom"]
    assert (tmp_path / "agents.prom" / "keep").read_text() == "old"


def test_missing_directory_is_a_write_error(tmp_path: Path) -> None:
    with pytest.raises(WriteError, match="cannot create a temporary file in"):
        atomic_write(str(tmp_path / "nope"), "agents.prom", b"x")


def test_temporary_name_is_never_a_prom_file(tmp_path: Path) -> None:
    # leave one behind as a killed run would, then check the next run removes it
    stale = tmp_path / ".agents.prom.12345.tmp"
    stale.write_text("half")
    other = tmp_path / "other.prom"
    other.write_text("keep")
    assert not stale.name.endswith(".prom")
    remove_stale_temps(str(tmp_path), "agents.prom")
    assert sorted(os.listdir(tmp_path)) == ["other.prom"]


def test_second_holder_waits_then_gives_up(tmp_path: Path) -> None:
    lock = tmp_path / "lock"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('held', flush=True)\n"
        "time.sleep(30)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        with pytest.raises(LockError, match="another run still holds"), RunLock(str(lock), 0.3):
            pass
        assert time.monotonic() - started >= 0.3
    finally:
        holder.kill()
        holder.wait()
    with RunLock(str(lock), 1.0):  # free again once the holder is gone
        pass
