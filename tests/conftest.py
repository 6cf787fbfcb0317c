"""Fixtures for every test: a process list stopped by PID at the end of each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from procs import Processes


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    """Start processes with procs.start(...); all are stopped by PID when the test ends, pass or fail."""
    p = Processes(tmp_path)
    try:
        yield p
    finally:
        p.stop_all()
