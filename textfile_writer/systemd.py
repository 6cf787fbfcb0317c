"""Talking to systemd: the argv of every systemctl call, and pure parsers for what it prints.

Every call goes through the runner seam (proc.run): LC_ALL=C, a timeout, unit names after `--`.
A run makes one batched `show` for all agents, preceded, only when the configuration has
patterns, by `list-units` (loaded units: running, failed, or running although their file is gone)
and `list-unit-files` (installed units that are not loaded). `show` gets exact names, never the
patterns: a pattern would repeat every loaded unit that is also named, doubling show's work.
Blocks are matched to units by Id and Names (an alias answers with its unit's Id), once each.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .defaults import SERVER_SERVICE, WRITER_SERVICE
from .errors import SystemdError
from .proc import Completed, Runner

SHOW_PROPERTIES = (
    "Id", "Names", "LoadState", "ActiveState", "SubState", "MainPID", "NRestarts", "CPUUsageNSec",
    "MemoryCurrent", "TasksCurrent", "ControlGroup", "ActiveEnterTimestampMonotonic",
)
# What systemd prints for "no value": unset, unlimited, or the all-ones 64-bit sentinel.
_UNKNOWN = frozenset({"", "[not set]", "[no data]", "infinity", str(2**64 - 1)})
# agent-exporter's own services (timers/, installed by `agent-exporter install`): never agents, even
# when a pattern matches them, as the default agent-*.service does. A config may still name them.
OWN_SERVICES = frozenset({WRITER_SERVICE, SERVER_SERVICE})

UnitProperties = Mapping[str, str]


def systemctl(scope: str, *args: str) -> list[str]:
    return ["systemctl", f"--{scope}", "--no-pager", *args]


def _checked(done: Completed, what: str) -> str:
    if done.returncode != 0:
        raise SystemdError(f"systemctl {what} failed: {done.reason()}")
    return done.stdout


def discover(scope: str, patterns: Sequence[str], runner: Runner, timeout: float) -> list[str]:
    """Units matching the patterns that are loaded (any state) or installed; templates and our own
    services left out."""
    if not patterns:
        return []
    loaded = runner(systemctl(scope, "list-units", "--all", "--plain", "--no-legend", "--full", "--",
                              *patterns), timeout)
    files = runner(systemctl(scope, "list-unit-files", "--no-legend", "--full", "--", *patterns), timeout)
    names = parse_first_column(_checked(loaded, "list-units"))
    if not (files.returncode == 1 and not files.stdout.strip() and not files.stderr.strip()):
        # (exit 1 with no output at all is list-unit-files' answer for "nothing matches", systemd 252)
        names += parse_first_column(_checked(files, "list-unit-files"))
    return sorted({n for n in names if "@." not in n and n not in OWN_SERVICES})


def query(scope: str, explicit: Sequence[str], patterns: Sequence[str], runner: Runner,
          timeout: float) -> tuple[list[dict[str, str]], list[tuple[str, dict[str, str]]]]:
    """Properties of the explicit units (in their order) and of every other unit the patterns find.

    Returns (one mapping per explicit unit, [(unit, mapping)] for discovered units sorted by name).
    """
    wanted = set(explicit)
    names = [*explicit, *(u for u in discover(scope, patterns, runner, timeout) if u not in wanted)]
    if not names:
        return [], []
    done = runner(systemctl(scope, "show", "--property=" + ",".join(SHOW_PROPERTIES), "--", *names), timeout)
    return match_blocks(explicit, parse_show(_checked(done, "show")))


def match_blocks(explicit: Sequence[str], blocks: list[dict[str, str]]
                 ) -> tuple[list[dict[str, str]], list[tuple[str, dict[str, str]]]]:
    """Give each explicit unit its block (by Id or one of its Names); the rest by Id, once each."""
    used: set[int] = set()
    seen_ids: set[str] = set()
    mine: list[dict[str, str]] = []
    for unit in explicit:
        for i, block in enumerate(blocks):
            if i not in used and (block.get("Id") == unit or unit in split_names(block.get("Names", ""))):
                used.add(i)
                seen_ids.add(block.get("Id", unit))
                mine.append(block)
                break
        else:
            raise SystemdError(f"systemctl show gave no answer for {unit}")
    others: dict[str, dict[str, str]] = {}
    for i, block in enumerate(blocks):
        unit = block.get("Id", "")
        if i in used or not unit or unit in seen_ids or unit in others:
            continue
        others[unit] = block
    return mine, sorted(others.items())


def split_names(value: str) -> list[str]:
    """A list property as systemctl prints it: words split by spaces; a word that needs escaping is
    double-quoted with C escapes (`Names="agent-we\\\\x20ird.service"` for `agent-we\\x20ird.service`)."""
    words: list[str] = []
    i, n = 0, len(value)
    while i < n:
        if value[i] == " ":
            i += 1
            continue
        if value[i] != '"':
            end = value.find(" ", i)
            end = n if end < 0 else end
            words.append(value[i:end])
            i = end
            continue
        word = []
        i += 1
        while i < n and value[i] != '"':
            if value[i] == "\\" and i + 1 < n:
                i += 1
            word.append(value[i])
            i += 1
        words.append("".join(word))
        i += 1
    return words


def parse_first_column(text: str) -> list[str]:
    """Unit names from list-units/list-unit-files output (--plain --no-legend: name first)."""
    out = []
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0].endswith(".service"):
            out.append(fields[0])
    return out


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
