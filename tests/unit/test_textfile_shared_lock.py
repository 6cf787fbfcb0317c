"""The writer's lock file is shared between users: a root run leaves `.agents.prom.lock` owned by root,
mode 0644, and the installed timer's writer (a systemd dynamic user) must still take that lock.

The other user runs the package as installed from its wheels (the public_venv fixture), not this
checkout, which that user may not be able to read."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.wheels import Venv
from textfile_writer.textfile import RunLock

TAKE_LOCK = ("import sys; from textfile_writer.textfile import RunLock\n"
             "from textfile_writer.errors import LockError\n"
             "try:\n    with RunLock(sys.argv[1], 0.5): print('locked')\n"
             "except LockError as exc: print(exc)\n")


@pytest.fixture
def shared_dir(public_venv: Venv) -> Iterator[Path]:
    """A directory both users can write (public_venv has checked root and setpriv)."""
    d = Path(tempfile.mkdtemp(prefix="agent-exporter-lock-"))
    d.chmod(0o777)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def as_nobody(python: str, lock: Path) -> str:
    done = subprocess.run(["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups", python, "-c",
                           TAKE_LOCK, str(lock)], capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_another_users_lock_file_is_taken_and_held(shared_dir: Path, public_venv: Venv) -> None:
    lock = shared_dir / ".agents.prom.lock"
    with RunLock(str(lock), 1.0):  # root creates it, 0644
        assert lock.stat().st_uid == 0
        # the same lock: while root holds it, the other user waits and gives up
        assert as_nobody(public_venv.python, lock) == f"another run still holds {lock} after 0.5s"
    assert as_nobody(public_venv.python, lock) == "locked"  # free again, and a file it cannot write is no obstacle
