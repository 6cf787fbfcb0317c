"""The console of all three programs: the program's name, its lines on stderr, and the one place where
a typed error becomes a line and an exit code.

The core raises AgentExporterError subclasses and never exits; `run` is the only code that catches
them to end the process. Kept to the standard library's `sys`: the writer's fast path imports it.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing, collections.abc: names for the type checker only
if TYPE_CHECKING:
    from collections.abc import Callable

PROG = "agent-exporter"
# A line longer than this is cut: a message may carry a value read from a hostile file or request.
MAX_LINE = 1000
# Characters that would end the line (str.splitlines splits on all of them) or drive the terminal
# (C0 controls, DEL, C1 controls) are written as escapes, so a message is always one line.
_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if c != 0x09} | {
    0x2028: "\\u2028", 0x2029: "\\u2029"}


def one_line(message: str) -> str:
    """`message` as one bounded line: escaped line breaks and controls, cut at MAX_LINE characters
    with a note of how long it was."""
    line = message[:MAX_LINE + 1].translate(_ESCAPES)  # never the whole of a huge message
    if len(line) > MAX_LINE:
        line = f"{line[:MAX_LINE]}... (cut: {len(message)} characters in all)"
    return line


def say(message: str) -> None:
    """One line on stderr, flushed: the server logs through it for as long as it runs."""
    sys.stderr.write(f"{PROG}: {one_line(message)}\n")
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
