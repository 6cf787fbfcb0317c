"""Talking to systemd: the argv of every systemctl call, and pure parsers for what it prints.

Every call goes through the runner seam (proc.run): LC_ALL=C, a timeout, unit names after `--`.
The calls, each batched:
- `list-units --all` of the configured names and patterns: the loaded units with their load,
  active and sub state (cheap: the manager answers from memory, ~7 ms flat);
- `list-unit-files` of the patterns: installed units that are not loaded (costly: the manager reads
  every matching file; change-driven runs read the unit search path instead, unitfiles.py);
- `show --property=UnitPath`: the manager's unit search path (once per unit cache);
- `show` of exact names, never the patterns: a pattern would repeat every loaded unit that is also
  named, doubling show's work. It is the costly one (~0.7 ms of CPU per unit, client and manager):
  `query` below runs it for every unit (a full run), changes.py only for units that changed.
Blocks are matched to units by Id and Names (an alias answers with its unit's Id), once each.

Sizes. Names and patterns go to systemctl in batches (at most SHOW_BATCH names and ARGV_BYTES of
them per call), so no configuration meets the kernel's argument limit (E2BIG). Each call's timeout
is a Budget: the base timeout (--timeout) plus PER_UNIT_SECONDS for every unit it asks about, and
all the calls of one run end by CEILING_SECONDS, below the writer unit's TimeoutStartSec=.
"""

from __future__ import annotations

import time

from .defaults import SERVER_SERVICE, WRITER_SERVICE
from .errors import SystemdError
from .proc import Completed
from .records import NamedTuple
from .unitfiles import parse_unit_path

SHOW_PROPERTIES = (
    "Id", "Names", "LoadState", "ActiveState", "SubState", "MainPID", "NRestarts", "CPUUsageNSec",
    "MemoryCurrent", "TasksCurrent", "ControlGroup", "ActiveEnterTimestampMonotonic", "InvocationID",
    # why it last stopped, and what it is expected to do (health.py)
    "Result", "ExecMainCode", "ExecMainStatus", "ExecMainExitTimestampMonotonic", "Type", "RemainAfterExit",
    "TriggeredBy", "MemoryMax", "MemoryHigh",
)
# A timer behind a timer-started agent: asked every run those agents have (its times move).
TIMER_PROPERTIES = ("Id", "LoadState", "ActiveState", "LastTriggerUSecMonotonic", "NextElapseUSecMonotonic",
                    "NextElapseUSecRealtime")

TYPE_CHECKING = False  # typing, collections.abc: names for the type checker only
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

    from .proc import Runner
    UnitProperties = Mapping[str, str]
# What a unit's cgroup tells at any time (cgroups.py): a cached block never keeps these.
MEASURED = ("CPUUsageNSec", "MemoryCurrent", "TasksCurrent")
# What systemd prints for an unsigned property it does not know: "[not set]", "[no data]",
# "infinity", or the number UINT64_MAX.
_UINT64_MAX = 2**64 - 1
# agent-exporter's own services (timers/, installed by `agent-exporter install`): never agents, even
# when a pattern matches them, as the default agent-*.service does. A config may still name them.
OWN_SERVICES = frozenset({WRITER_SERVICE, SERVER_SERVICE})


# systemd 252 spends per unit 1.2 ms in `show` for an absent unit, 5.5-8 ms for one it must load
# from disk, and ~3 ms in `list-unit-files` per matching file (2 shared CPUs under load, 2000-10000
# units); with the base timeout on top, 10 ms leaves room for a busier host.
PER_UNIT_SECONDS = 0.01
# All systemctl calls of one run end by then (or by --timeout, if that is longer): with the lock
# wait (--timeout, 5 s by default) it stays below the writer unit's TimeoutStartSec=90s, so a slow
# manager makes a clean one-line failure, not a killed run.
CEILING_SECONDS = 75.0
# Per call: a batch's timeout stays a sensible size, and its argv far below ARG_MAX (2 MiB on
# Linux, environment included) whatever the names' length.
SHOW_BATCH = 1000
ARGV_BYTES = 128 * 1024


class Budget(NamedTuple):
    """How long each systemctl call of one run may take: `base` seconds plus PER_UNIT_SECONDS per
    unit it asks about, and never past `deadline` (on `clock`), the run's ceiling."""

    base: float
    deadline: float
    clock: Callable[[], float] = time.monotonic

    @classmethod
    def start(cls, base: float, clock: Callable[[], float] = time.monotonic) -> Budget:
        return cls(base, clock() + max(base, CEILING_SECONDS), clock)

    def left(self) -> float:
        left = self.deadline - self.clock()
        if left <= 0:
            raise SystemdError(f"systemctl calls took more than {max(self.base, CEILING_SECONDS):g}s in "
                               "this run (is the systemd manager overloaded?)")
        return left

    def for_units(self, count: int) -> float:
        return min(self.base + PER_UNIT_SECONDS * count, self.left())


def batches(words: Sequence[str], size: int = SHOW_BATCH, max_bytes: int = ARGV_BYTES) -> Iterator[list[str]]:
    """words in order, cut into lists of at most `size` words and `max_bytes` of argv (a word's
    bytes and its NUL); a longer word still goes alone (systemd refuses it, not the kernel)."""
    batch: list[str] = []
    used = 0
    for word in words:
        cost = len(word.encode("utf-8", "surrogatepass")) + 1
        if batch and (len(batch) >= size or used + cost > max_bytes):
            yield batch
            batch, used = [], 0
        batch.append(word)
        used += cost
    if batch:
        yield batch


def systemctl(scope: str, *args: str) -> list[str]:
    return ["systemctl", f"--{scope}", "--no-pager", *args]


def _checked(done: Completed, what: str) -> str:
    if done.returncode != 0:
        raise SystemdError(f"systemctl {what} failed: {done.reason()}")
    return done.stdout


Listed = dict[str, tuple[str, str, str]]


def list_units(scope: str, words: Sequence[str], runner: Runner, budget: Budget) -> Listed:
    """The loaded services among `words` (names or patterns; none: every unit the manager has):
    Id -> (LoadState, ActiveState, SubState).

    The manager matches the words against each unit's Id only (fnmatch, no escapes): an alias
    never appears here under its own name."""
    listed: Listed = {}
    for group in list(batches(words)) or [[]]:
        done = runner(systemctl(scope, "list-units", "--all", "--plain", "--no-legend", "--full", "--", *group),
                      budget.for_units(len(group)))
        for line in _checked(done, "list-units").splitlines():
            fields = line.split(None, 4)
            if len(fields) >= 4 and fields[0].endswith(".service"):
                listed[fields[0]] = (fields[1], fields[2], fields[3])
    return listed


def list_unit_files(scope: str, patterns: Sequence[str], runner: Runner, budget: Budget) -> list[str]:
    """Installed services matching the patterns, loaded or not. The manager reads every matching
    file and the count is unknown before: the call may take what is left of the run's budget."""
    names: list[str] = []
    for group in batches(patterns):
        files = runner(systemctl(scope, "list-unit-files", "--no-legend", "--full", "--", *group), budget.left())
        if not (files.returncode == 1 and not files.stdout.strip() and not files.stderr.strip()):
            # (exit 1 with no output at all is list-unit-files' answer for "nothing matches", systemd 252)
            names += parse_first_column(_checked(files, "list-unit-files"))
    return names


def unit_path(scope: str, runner: Runner, budget: Budget) -> tuple[str, ...]:
    """The manager's unit search path (its UnitPath property), in order."""
    done = runner(systemctl(scope, "show", "--property=UnitPath"), budget.for_units(0))
    return parse_unit_path(_checked(done, "show --property=UnitPath"))


def show(scope: str, names: Sequence[str], runner: Runner, budget: Budget) -> list[dict[str, str]]:
    """The properties of each named unit, one block per name, in batches."""
    blocks: list[dict[str, str]] = []
    for group in batches(names):
        done = runner(systemctl(scope, "show", "--property=" + ",".join(SHOW_PROPERTIES), "--", *group),
                      budget.for_units(len(group)))
        blocks += parse_show(_checked(done, "show"))
    return blocks


def timers(scope: str, names: Sequence[str], runner: Runner, budget: Budget) -> dict[str, dict[str, str]]:
    """Each named timer's TIMER_PROPERTIES, by Id."""
    found: dict[str, dict[str, str]] = {}
    for group in batches(names):
        done = runner(systemctl(scope, "show", "--property=" + ",".join(TIMER_PROPERTIES), "--", *group),
                      budget.for_units(len(group)))
        for block in parse_show(_checked(done, "show")):
            found[block.get("Id", "")] = block
    return found


# systemd's time spans as `show` prints them (format_timespan): "19min 37.741920s", "1d 2h", "500ms".
_SPAN_UNITS = {"us": 1, "ms": 1000, "s": 10**6, "min": 60 * 10**6, "h": 3600 * 10**6, "d": 86400 * 10**6,
               "w": 7 * 86400 * 10**6, "month": 2629800 * 10**6, "y": 31557600 * 10**6}


def timespan_us(text: str) -> int | None:
    """A time span as systemctl prints it, in microseconds; None for "infinity", empty or unknown."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    total = 0.0
    words = text.split()
    for word in words:
        number = word.rstrip("abcdefghijklmnopqrstuvwxyz")
        scale = _SPAN_UNITS.get(word[len(number):])
        if scale is None or not number:
            return None
        try:
            total += float(number) * scale
        except ValueError:
            return None
    return round(total) if words else None


_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def timestamp(text: str) -> float | None:
    """A timestamp as systemctl prints it ("Wed 2026-12-02 15:20:39 UTC", the manager's local time
    zone) as Unix time; None when empty, "n/a" or not in that form."""
    words = text.split()
    if len(words) != 4:
        return None
    try:
        year, month, day = (int(v) for v in words[1].split("-"))
        hour, minute, second = (int(v) for v in words[2].split(":"))
    except ValueError:
        return None
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    if words[3] == "UTC":
        leap = month > 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        days = (year - 1970) * 365 + _leap_days(year) + sum(_MONTH_DAYS[:month - 1]) + leap + day - 1
        return float(days * 86400 + hour * 3600 + minute * 60 + second)
    try:
        return time.mktime((year, month, day, hour, minute, second, 0, 0, -1))
    except (OverflowError, ValueError):
        return None


def _leap_days(year: int) -> int:
    """Leap days in the years 1970 .. year-1."""
    def upto(y: int) -> int:
        return y // 4 - y // 100 + y // 400
    return upto(year - 1) - upto(1969)


def agent_units(names: Iterable[str]) -> list[str]:
    """The services that can be agents, sorted and once each: no templates, none of our own."""
    return sorted({n for n in names if "@." not in n and n not in OWN_SERVICES})


def discover(scope: str, patterns: Sequence[str], runner: Runner, budget: Budget) -> list[str]:
    """Units matching the patterns that are loaded (any state) or installed; templates and our own
    services left out."""
    if not patterns:
        return []
    loaded = list_units(scope, patterns, runner, budget)
    return agent_units([*loaded, *list_unit_files(scope, patterns, runner, budget)])


def query(scope: str, explicit: Sequence[str], patterns: Sequence[str], runner: Runner,
          timeout: float, clock: Callable[[], float] = time.monotonic
          ) -> tuple[list[dict[str, str]], list[tuple[str, dict[str, str]]]]:
    """A full run: the properties of the explicit units (in their order) and of every other unit
    the patterns find, all from `show`.

    `timeout` is the base of the run's Budget. Returns (one mapping per explicit unit,
    [(unit, mapping)] for discovered units sorted by name).
    """
    budget = Budget.start(timeout, clock)
    wanted = set(explicit)
    names = [*explicit, *(u for u in discover(scope, patterns, runner, budget) if u not in wanted)]
    return match_blocks(explicit, show(scope, names, runner, budget))


def match_blocks(explicit: Sequence[str], blocks: list[dict[str, str]]
                 ) -> tuple[list[dict[str, str]], list[tuple[str, dict[str, str]]]]:
    """Give each explicit unit its block (the first unused one whose Id or Names has it); the rest
    by Id, once each. Blocks are indexed by name first: thousands of agents stay linear."""
    by_name: dict[str, list[int]] = {}
    for i, block in enumerate(blocks):
        unit = block.get("Id", "")
        names = block.get("Names", "")
        if names == unit:  # no alias, as nearly every unit: its Id alone
            if unit:
                by_name.setdefault(unit, []).append(i)
            continue
        for name in (unit, *split_names(names)):
            if name:
                indexes = by_name.setdefault(name, [])
                if not indexes or indexes[-1] != i:  # the Id is among the Names too: once a block
                    indexes.append(i)
    used: set[int] = set()
    seen_ids: set[str] = set()
    mine: list[dict[str, str]] = []
    for unit in explicit:
        found = None
        for j in by_name.get(unit, ()):
            if j not in used:
                found = j
                break
        if found is None:
            raise SystemdError(f"systemctl show gave no answer for {unit}")
        used.add(found)
        seen_ids.add(blocks[found].get("Id", unit))
        mine.append(blocks[found])
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
    if '"' not in value:  # nothing quoted: the common case
        return [word for word in value.split(" ") if word]
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
    value = props.get(key)
    # "", "[not set]", "[no data]", "infinity" without raising (an exception costs a microsecond, and
    # a run parses a dozen of these per agent, two of them "infinity" on most units)
    if not value or not value[0].isdigit():
        return None
    try:
        number = int(value)
    except ValueError:
        return None
    return number if number < _UINT64_MAX else None
