"""proc.py: the one seam for child processes."""

from __future__ import annotations

import time

import pytest

from textfile_writer.errors import CommandError
from textfile_writer.proc import run


def test_runs_with_c_locale_and_returns_non_zero() -> None:
    done = run(["sh", "-c", 'echo "$LC_ALL $LANG"; echo oops >&2; exit 3'], 5)
    assert (done.returncode, done.stdout, done.stderr) == (3, "C C\n", "oops\n")


def test_timeout_is_a_clean_error() -> None:
    started = time.monotonic()
    with pytest.raises(CommandError, match=r"timed out after 0\.3s"):
        run(["sleep", "10"], 0.3)
    assert time.monotonic() - started < 5


def test_missing_command() -> None:
    with pytest.raises(CommandError, match="no-such-command-here: command not found"):
        run(["no-such-command-here"], 5)
