"""Who may open the writer's lock file `.agents.prom.lock`: those who can write the textfile directory
anyway, nobody else. A root run and the installed writer's user share it through the directory's
group (`install` makes the directory group-writable and setgid); any other user who could open it
could hold a shared flock on it and stop every run."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from procs import Processes, wait_until

from devtools.wheels import Venv
from textfile_writer.textfile import RunLock

GROUP = 64123  # the textfile directory's group; permissions go by number, no name is needed
TAKE_LOCK = ("import sys; from textfile_writer.textfile import RunLock\n"
             "from textfile_writer.errors import LockError, WriteError\n"
             "try:\n    with RunLock(sys.argv[1], 0.5): print('locked')\n"
             "except (LockError, WriteError) as exc: print(exc)\n")
# What anybody able to open the lock can do: hold a shared flock for as long as they like.
HOLD_SHARED = ("import fcntl, os, sys, time\n"
               "fd = os.open(sys.argv[1], os.O_RDONLY | os.O_CREAT, 0o666)\n"
               "fcntl.flock(fd, fcntl.LOCK_SH)\n"
               "print('held', flush=True)\n"
               "time.sleep(120)\n")


@pytest.fixture
def python(public_venv: Venv) -> str:
    """The package as installed from its wheels where nobody can run it (not this checkout)."""
    return public_venv.python


@pytest.fixture
def shared_dir(public_venv: Venv) -> Iterator[Path]:
    """A directory both users can write (public_venv has checked root and setpriv)."""
    d = Path(tempfile.mkdtemp(prefix="agent-exporter-lock-"))
    d.chmod(0o777)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def as_nobody(python: str, gid: int | str, *argv: str) -> list[str]:
    return ["setpriv", "--reuid", "nobody", "--regid", str(gid), "--clear-groups", python, *argv]


def take_lock(python: str, lock: Path, gid: int | str) -> str:
    done = subprocess.run(as_nobody(python, gid, "-c", TAKE_LOCK, str(lock)), capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_directory_group_shares_the_lock_and_nobody_else_can_open_it(python: str, shared_dir: Path) -> None:
    os.chown(shared_dir, 0, GROUP)
    shared_dir.chmod(0o2775)  # as `install` leaves the textfile directory
    lock = shared_dir / ".agents.prom.lock"
    with RunLock(str(lock), 1.0):  # a root run creates it
        st = lock.stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, GROUP, 0o640)
        # the installed writer's user (in the group) waits for it and gives up
        assert take_lock(python, lock, GROUP) == f"another run still holds {lock} after 0.5s"
    assert take_lock(python, lock, GROUP) == "locked"  # free again, and a root-owned file is no obstacle
    assert take_lock(python, lock, "nogroup") == f"cannot open lock file {lock}: Permission denied"


def test_other_users_cannot_open_the_lock_in_a_directory_they_may_write(python: str, shared_dir: Path) -> None:
    lock = shared_dir / ".agents.prom.lock"
    with RunLock(str(lock), 1.0):
        pass
    assert lock.stat().st_mode & 0o007 == 0
    assert take_lock(python, lock, "nogroup") == f"cannot open lock file {lock}: Permission denied"


@pytest.mark.parametrize("left_by", ["another user", "an earlier version (0644)"])
def test_a_shared_flock_held_by_another_user_does_not_stop_the_run(python: str, shared_dir: Path, procs: Processes,
                                                                   left_by: str) -> None:
    lock = shared_dir / ".agents.prom.lock"
    if left_by != "another user":
        fd = os.open(lock, os.O_RDONLY | os.O_CREAT, 0o644)  # what the writer made until now
        os.close(fd)
        lock.chmod(0o644)
    procs.start(as_nobody(python, "nogroup", "-c", HOLD_SHARED, str(lock)), "holder")
    wait_until(lambda: "held" in procs.log("holder"), 30, "the other user holding the lock")
    held = lock.stat().st_ino
    with RunLock(str(lock), 2.0):  # would give up after 2 s if it waited on the holder
        st = lock.stat()
        assert st.st_ino != held and st.st_uid == 0 and st.st_mode & 0o007 == 0
