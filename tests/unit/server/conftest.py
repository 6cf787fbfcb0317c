"""Fixtures of the server's unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from devtools.textfiles import fleet, render, write_textfile


@pytest.fixture
def textfile(tmp_path: Path) -> Path:
    """The fleet's textfile, as the writer renders it, in a fresh directory."""
    path = tmp_path / "agents.prom"
    write_textfile(path, render(fleet()))
    return path
