"""Helpers shared by the tests that start real programs.

Free loopback ports, polling and processes stopped by PID are devtools.stack's (the demo runs the
same code); need() and IN_CI are the tests' own.
"""

from __future__ import annotations

import os
import shutil

from devtools.stack import Processes, free_port, http_get, wait_until

__all__ = ["IN_CI", "Processes", "free_port", "http_get", "need", "wait_until"]

IN_CI = os.environ.get("CI", "").lower() == "true"


def need(program: str) -> str:
    """The path of a program a test needs: missing, the test fails under CI=true and skips elsewhere."""
    import pytest

    path = shutil.which(program)
    if path is None:
        if IN_CI:
            pytest.fail(f"{program} is not installed (the Makefile's Debian packages should bring it)")
        pytest.skip(f"{program} is not installed")
    return path
