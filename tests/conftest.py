"""Fixtures for every test: a process list stopped by PID at the end of each test, and agent-exporter
installed where another user can run it."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from procs import IN_CI, Processes

from devtools.textfiles import fleet, render, write_textfile
from devtools.wheels import Venv, build_wheels, install_venv

# The user the tests run the package as (setpriv), and where its venv goes: a directory every user
# can reach that is neither /tmp nor /var/tmp (a system unit's dynamic user never sees those), beside
# the README's /opt/agent-exporter.
OTHER_USER = "nobody"
PUBLIC_BASE = "/opt"
VERSION = f"{sys.version_info[0]}.{sys.version_info[1]}"


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    """Start processes with procs.start(...); all are stopped by PID when the test ends, pass or fail."""
    p = Processes(tmp_path)
    try:
        yield p
    finally:
        p.stop_all()


def as_other_user(argv: list[str], user: str = OTHER_USER) -> list[str]:
    entry = pwd.getpwnam(user)
    return ["setpriv", "--reuid", str(entry.pw_uid), "--regid", str(entry.pw_gid), "--clear-groups", "--", *argv]


def public_interpreter() -> str | None:
    """A real interpreter of this Python version that OTHER_USER can run, or None.

    The project venv's own base interpreter first, then Debian's; not a shim on PATH (slow, and per
    user). Each is asked, as that user and as root, where its installation is: a pyenv build under
    /root (mode 0700) may still start for another user, but then misses its own standard library
    and falls back to whatever it finds. The same major.minor: the dependencies' wheels were built
    for this one.
    """
    probe = ["-c", "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}'); print(sys.base_prefix)"]
    base = getattr(sys, "_base_executable", sys.executable)
    for candidate in dict.fromkeys((os.path.realpath(base), f"/usr/bin/python{VERSION}", "/usr/bin/python3")):
        if not os.access(candidate, os.X_OK):
            continue
        mine = subprocess.run([candidate, *probe], capture_output=True, text=True, timeout=60, check=False)
        theirs = subprocess.run(as_other_user([candidate, *probe]), capture_output=True, text=True, timeout=60,
                                check=False)
        if (mine.returncode == theirs.returncode == 0 and mine.stdout == theirs.stdout
                and mine.stdout.splitlines()[0] == VERSION):
            return candidate
    return None


@pytest.fixture(scope="session")
def public_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venv]:
    """This checkout built as wheels (devtools.wheels, as `make wheels`) and installed into a venv in a
    0755 directory under PUBLIC_BASE, made from an interpreter OTHER_USER can run: code that runs as
    another user must not depend on where the checkout or pytest's tmp_path live (0700 under
    `mktemp -d`). Removed at the end of the session."""
    python, why = None, ""
    if os.geteuid() != 0:
        why = "needs root (a directory under /opt, setpriv to run it as another user)"
    elif not shutil.which("setpriv"):
        why = "setpriv is missing (apt-get install util-linux)"
    else:
        python = public_interpreter()
        why = f"no Python {VERSION} that {OTHER_USER} can run (apt-get install python3 python3-venv)"
    if python is None:
        if IN_CI:
            pytest.fail(f"agent-exporter cannot be installed for another user here: {why}", pytrace=False)
        pytest.skip(why)
    base = Path(tempfile.mkdtemp(prefix="agent-exporter-tests-", dir=PUBLIC_BASE))
    try:
        base.chmod(0o755)
        wheels = tmp_path_factory.mktemp("wheels")
        umask = os.umask(0o022)  # the venv's files readable by everyone, whatever the caller's umask
        try:
            build_wheels(wheels)
            venv = install_venv(base / "venv", wheels, python)
        finally:
            os.umask(umask)
        done = subprocess.run(as_other_user([venv.exe, "--version"]), capture_output=True, text=True, timeout=60,
                              check=False)
        assert done.returncode == 0, f"{OTHER_USER} cannot run {venv.exe}: {done.stderr}"
        yield venv
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def textfile(tmp_path: Path) -> Path:
    """The fleet's textfile as the writer renders it (devtools/textfiles.py), alone in a directory of
    its own under tmp_path."""
    path = tmp_path / "textfile" / "agents.prom"
    path.parent.mkdir()
    write_textfile(path, render(fleet()))
    return path
