"""The one seam through which every child process runs.

Arguments are a list (never a shell string), the locale is C so output parses the same everywhere,
output is captured, a timeout bounds every call, and a non-zero exit is returned, not raised: the
caller decides what it means.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

from .errors import CommandError


class Completed(NamedTuple):
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


Runner = Callable[[Sequence[str], float], Completed]
"""(argv, timeout seconds) -> Completed. Tests and callers may pass their own."""


def child_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env["LC_ALL"] = "C"
    env["LANG"] = "C"
    env["SYSTEMD_PAGER"] = ""
    env["SYSTEMD_COLORS"] = "0"
    env.pop("SYSTEMD_LESS", None)
    return env


def run(argv: Sequence[str], timeout: float) -> Completed:
    """Run argv with LC_ALL=C and a timeout. Raises CommandError only if it cannot run or times out."""
    args = tuple(argv)
    try:
        done = subprocess.run(
            args, capture_output=True, text=True, errors="surrogateescape",
            env=child_env(), timeout=timeout, stdin=subprocess.DEVNULL, check=False,
        )
    except FileNotFoundError as exc:
        raise CommandError(f"{args[0]}: command not found") from exc
    except PermissionError as exc:
        raise CommandError(f"{args[0]}: permission denied") from exc
    except subprocess.TimeoutExpired as exc:
        raise CommandError(f"{args[0]} {args[1] if len(args) > 1 else ''} timed out after "
                           f"{timeout:g}s (is D-Bus or the systemd manager hung?)") from exc
    return Completed(args, done.returncode, done.stdout, done.stderr)
