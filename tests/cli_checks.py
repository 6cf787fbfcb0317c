"""Checks shared by the tests that run the real command line: the previous good file, and the one
bounded error line every failure must be."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from textfile_writer.console import MAX_LINE

EXE = [sys.executable, "-m", "textfile_writer"]
OLD = b"# previous good file\nagent_up{agent=\"a\",type=\"primary\"} 1\n"


def assert_one_line_error(done: subprocess.CompletedProcess[str], code: int, *parts: str, starts: str = "") -> str:
    """Exit `code` and exactly one bounded `agent-exporter: error: STARTS...` line holding every part."""
    assert done.returncode == code, done.stderr[-2000:]
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr[-2000:]
    line = lines[0]
    assert line.startswith("agent-exporter: error: " + starts), line[:300]
    assert len(line) <= MAX_LINE + 100, f"{len(line)} characters"
    for part in parts:
        assert part in line, line[:300]
    return line


def assert_untouched(textdir: Path) -> None:
    """The previous good file is still there, byte for byte."""
    assert (textdir / "agents.prom").read_bytes() == OLD
