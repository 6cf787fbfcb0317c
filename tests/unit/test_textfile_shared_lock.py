"""The writer's lock file is shared between users: a root run leaves `.agents.prom.lock` owned by root,
mode 0644, and the installed timer's writer (a systemd dynamic user) must still take that lock."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from procs import IN_CI

from textfile_writer.textfile import RunLock

REPO = Path(__file__).resolve().parents[2]
# Debian's python3 (the project venv's may live under /root, closed to other users)
PYTHON = "/usr/bin/python3"
TAKE_LOCK = ("import sys; sys.path.insert(0, sys.argv[1]); from textfile_writer.textfile import RunLock\n"
             "from textfile_writer.errors import LockError\n"
             "try:\n    with RunLock(sys.argv[2], 0.5): print('locked')\n"
             "except LockError as exc: print(exc)\n")


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    why = ("needs root" if os.geteuid() != 0 else "setpriv is missing" if not shutil.which("setpriv")
           else f"{PYTHON} is missing" if not os.path.exists(PYTHON) else None)
    if why:
        if IN_CI:
            pytest.fail(why)
        pytest.skip(why)
    d = Path(tempfile.mkdtemp(prefix="agent-exporter-lock-"))
    d.chmod(0o777)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def as_nobody(lock: Path) -> str:
    done = subprocess.run(["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups", PYTHON, "-c",
                           TAKE_LOCK, str(REPO), str(lock)], capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_another_users_lock_file_is_taken_and_held(shared_dir: Path) -> None:
    lock = shared_dir / ".agents.prom.lock"
    with RunLock(str(lock), 1.0):  # root creates it, 0644
        assert lock.stat().st_uid == 0
        # the same lock: while root holds it, the other user waits and gives up
        assert as_nobody(lock) == f"another run still holds {lock} after 0.5s"
    assert as_nobody(lock) == "locked"  # free again, and a file it cannot write is no obstacle
