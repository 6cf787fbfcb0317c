"""textfile.py: the target is replaced whole or not at all; overlapping runs wait for the lock."""

from __future__ import annotations

import os
import signal
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


# A run killed mid-write: the kernel stops the child at its file size limit (SIGXFSZ, which Python
# ignores by default, put back to its default action), after atomic_write created its temporary file
# and wrote part of the data, before the rename.
KILLED_MID_WRITE = (
    "import resource, signal, sys\n"
    "from textfile_writer.textfile import atomic_write\n"
    "signal.signal(signal.SIGXFSZ, signal.SIG_DFL)\n"
    "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
    "atomic_write(sys.argv[1], 'agents.prom', b'x' * 65536)\n"
)


def killed_mid_write(directory: Path) -> str:
    """Run atomic_write in a child that is killed mid-write; the name of the file it left behind."""
    before = set(os.listdir(directory))
    child = subprocess.run([sys.executable, "-c", KILLED_MID_WRITE, str(directory)], check=False,
                           capture_output=True, text=True, timeout=30)
    assert child.returncode == -signal.SIGXFSZ, child.stderr
    left = set(os.listdir(directory)) - before
    assert len(left) == 1, f"expected one file left in {directory}, found {sorted(left)}"
    return left.pop()


def test_temporary_file_is_hidden_not_prom_and_beside_the_target(tmp_path: Path) -> None:
    (tmp_path / "agents.prom").write_bytes(b"agent_up 1\n")
    left = killed_mid_write(tmp_path)
    # node_exporter reads every *.prom in the directory, hidden or not: the half-written file must be neither
    assert left.startswith(".") and not left.endswith(".prom")
    assert (tmp_path / left).read_bytes() == b"x" * 4096  # the data being written, cut off by the kill
    assert (tmp_path / "agents.prom").read_bytes() == b"agent_up 1\n"


def test_stale_temporary_files_are_ours_only(tmp_path: Path) -> None:
    # two killed runs (two pids) leave their temporary files beside files that are not ours
    ours = {killed_mid_write(tmp_path), killed_mid_write(tmp_path)}
    assert len(ours) == 2
    neighbours = {
        "agents.prom": "agent_up 1\n",
        ".agents.prom.lock": "",  # the run lock: same prefix, not a temporary file
        "other.prom": "keep",
        ".other.prom.12345.tmp": "another textfile's temporary file",
        "agents.prom.12345.tmp": "not hidden: not a name we make",
    }
    for name, content in neighbours.items():
        (tmp_path / name).write_text(content)
    remove_stale_temps(str(tmp_path), "agents.prom")
    assert sorted(os.listdir(tmp_path)) == sorted(neighbours)
    assert {name: (tmp_path / name).read_text() for name in neighbours} == neighbours


def test_stale_temporary_files_of_several_names_in_one_call(tmp_path: Path) -> None:
    """The state directory's files (the writer passes them all at once): each name's leftovers go,
    a name not asked for keeps its own."""
    for name in ("cpu-state", "unit-cache.marshal", "config-cache.marshal"):
        (tmp_path / f".{name}.4242.tmp").write_text("killed")
    remove_stale_temps(str(tmp_path), "cpu-state", "unit-cache.marshal")
    assert os.listdir(tmp_path) == [".config-cache.marshal.4242.tmp"]


def test_second_holder_waits_then_gives_up(tmp_path: Path) -> None:
    lock = tmp_path / "lock"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import time\n"
        "from textfile_writer.textfile import RunLock\n"
        f"with RunLock({str(lock)!r}, 1.0):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(30)\n")], stdout=subprocess.PIPE, text=True)
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
