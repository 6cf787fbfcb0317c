"""Talking to systemd: the argv of every systemctl call, and pure parsers for what it prints.

Every call goes through the runner seam (proc.run): LC_ALL=C, a timeout, unit names after `--`.
A run makes at most three calls: list-units and list-unit-files (only when the configuration has
patterns) and one batched `show` for all agents.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .errors import SystemdError
from .proc import Completed, Runner

SHOW_PROPERTIES = (
    "Id", "LoadState", "ActiveState", "SubState", "MainPID", "NRestarts", "CPUUsageNSec",
    "MemoryCurrent", "TasksCurrent", "ControlGroup", "ActiveEnterTimestampMonotonic",
)
# What systemd prints for "no value": unset, unlimited, or the all-ones 64-bit sentinel.
_UNKNOWN = frozenset({"", "[not set]", "[no data]", "infinity", str(2**64 - 1)})

UnitProperties = Mapping[str, str]


def systemctl(scope: str, *args: str) -> list[str]:
    return ["systemctl", f"--{scope}", "--no-pager", *args]


def _checked(done: Completed, what: str) -> str:
    if done.returncode != 0:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        reason = lines[0] if lines else f"exit status {done.returncode}"
        raise SystemdError(f"systemctl {what} failed: {reason}")
    return done.stdout


def discover(scope: str, patterns: Sequence[str], runner: Runner, timeout: float) -> list[str]:
    """Units matching the patterns that are loaded (any state) or have a unit file.

    Template units (`foo@.service`) are left out: they cannot run by themselves.
    """
    if not patterns:
        return []
    loaded = runner(systemctl(scope, "list-units", "--all", "--plain", "--no-legend", "--full",
                              "--", *patterns), timeout)
    files = runner(systemctl(scope, "list-unit-files", "--no-legend", "--full", "--", *patterns),
                   timeout)
    names = parse_first_column(_checked(loaded, "list-units"))
    names += parse_first_column(_checked(files, "list-unit-files"))
    return sorted({n for n in names if "@." not in n})


def parse_first_column(text: str) -> list[str]:
    """Unit names from list-units/list-unit-files output (--plain --no-legend: name first)."""
    out = []
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0].endswith(".service"):
            out.append(fields[0])
    return out


def show(scope: str, units: Sequence[str], runner: Runner, timeout: float) -> list[dict[str, str]]:
    """One batched `systemctl show` for all units; one property mapping per unit, in order."""
    if not units:
        return []
    done = runner(systemctl(scope, "show", "--property=" + ",".join(SHOW_PROPERTIES), "--",
                            *units), timeout)
    blocks = parse_show(_checked(done, "show"))
    if len(blocks) != len(units):
        raise SystemdError(f"systemctl show answered {len(blocks)} blocks for {len(units)} units")
    return blocks


def parse_show(text: str) -> list[dict[str, str]]:
    """Parse `systemctl show` output: key=value lines, one block per unit, blank line between."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    for line in text.split("\n"):
        if not line:
            if current is not None:
                blocks.append(current)
                current = None
            continue
        key, sep, value = line.partition("=")
        if not sep:
            continue
        if current is None:
            current = {}
        current[key] = value
    if current is not None:
        blocks.append(current)
    return blocks


def uint(props: UnitProperties, key: str) -> int | None:
    """An unsigned property, or None when systemd does not know it (unset, infinity, 2^64-1)."""
    value = props.get(key, "").strip()
    if value in _UNKNOWN:
        return None
    try:
        number = int(value)
    except ValueError:
        return None
    return number if number >= 0 else None
