"""The console of all three programs: the program's name, its lines on stderr, and the one place where
a typed error becomes a line and an exit code.

The core raises AgentExporterError subclasses and never exits; `run` is the only code that catches
them to end the process. Kept to the standard library's `sys`: the writer's fast path imports it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

PROG = "agent-exporter"


def say(message: str) -> None:
    """One line on stderr, flushed: the server logs through it for as long as it runs."""
    sys.stderr.write(f"{PROG}: {message}\n")
    sys.stderr.flush()


def warn(message: str) -> None:
    say(f"warning: {message}")


def error(message: str) -> None:
    say(f"error: {message}")


def run(command: Callable[[], object]) -> int:
    """Run a command; its exit code: 0, or a typed error's code after its lines on stderr.

    SystemExit (click's own usage errors, --help) passes through untouched.
    """
    from .errors import AgentExporterError

    try:
        command()
    except AgentExporterError as exc:
        for line in exc.lines():
            error(line)
        return exc.exit_code
    return 0
