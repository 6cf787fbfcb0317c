"""Fixtures of the unit tests that run the real command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_checks import OLD


@pytest.fixture
def textdir(tmp_path: Path) -> Path:
    """A textfile directory holding a previous good file (cli_checks.OLD)."""
    d = tmp_path / "textfile"
    d.mkdir()
    (d / "agents.prom").write_bytes(OLD)
    return d
