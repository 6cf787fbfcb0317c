"""A failed `write` leaves the filesystem as it found it (issue 14): no state directory, no lock file,
no cache, no temporary file, for each way a run fails before it writes. The real command line, with
no systemd manager reachable (XDG_RUNTIME_DIR an empty directory)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from cli_checks import EXE

NO_SYSTEMD = "systemctl list-units failed: Failed to connect to bus"


def tree(root: Path) -> list[tuple[str, int]]:
    """Every path below root with its mode: what a run could have made or changed."""
    return sorted((str(p.relative_to(root)), p.lstat().st_mode) for p in root.rglob("*"))


def write(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_RUNTIME_DIR": str(root / "no-manager")}
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    for name in ("AGENT_EXPORTER_STATE_DIR", "AGENT_EXPORTER_CONFIG", "AGENT_EXPORTER_TEXTFILE_DIR"):
        env.pop(name, None)
    return subprocess.run([*EXE, "write", "--state-dir", str(root / "var" / "lib" / "agent-exporter"), *args],
                          capture_output=True, text=True, env=env, timeout=60, check=False)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "no-manager").mkdir()
    (tmp_path / "textfile").mkdir()
    (tmp_path / "textfile" / "agents.prom").write_text("# the last good file\n")
    (tmp_path / "var").mkdir()
    return tmp_path


@pytest.mark.parametrize(("case", "args", "code", "error"), [
    ("systemd unreachable", ("--scope", "user", "--textfile-dir", "{root}/textfile"), 1, NO_SYSTEMD),
    ("bad config", ("--config", "{root}/bad.yml"), 2, "bad.yml:2: agents: must be a list"),
    ("a file as the textfile directory", ("--scope", "user", "--textfile-dir", "{root}/textfile/agents.prom"), 1,
     "textfile directory {root}/textfile/agents.prom is not a directory"),
    ("no textfile directory", ("--scope", "user", "--textfile-dir", "{root}/nowhere"), 1,
     "textfile directory {root}/nowhere does not exist"),
])
def test_a_failed_run_makes_nothing(root: Path, case: str, args: tuple[str, ...], code: int, error: str) -> None:
    (root / "bad.yml").write_text(f"textfile_dir: {root}/textfile\nagents: 7\n")
    before = tree(root)
    done = write(root, *(a.format(root=root) for a in args))
    assert done.returncode == code, (case, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and error.format(root=root) in lines[0], (case, done.stderr)
    assert tree(root) == before, case  # no state directory, lock file, cache or temporary file


def test_a_run_that_fails_after_an_earlier_lock_file_keeps_that_one(root: Path) -> None:
    """Only what the failed run made goes: a lock file left by an earlier run stays."""
    lock = root / "textfile" / ".agents.prom.lock"
    lock.write_text("")
    lock.chmod(0o600)
    before = tree(root)
    done = write(root, "--scope", "user", "--textfile-dir", str(root / "textfile"))
    assert done.returncode == 1 and NO_SYSTEMD in done.stderr
    assert tree(root) == before
