"""The previous run's CPU counters and the writer's own counters, kept in a small file, and the CPU %
derived from them.

agent_cpu_percent is (cpu_ns now - cpu_ns then) / (monotonic now - monotonic then). It is only a
figure when both ends are trustworthy; otherwise the agent gets no agent_cpu_percent sample for
this run (unknown, not zero):
- first run, or the state file is missing, unreadable, corrupt or foreign (another boot, scope or
  format);
- the unit was (re)started since (its ActiveEnterTimestampMonotonic changed: a new cgroup);
- the counter went backwards, or the result exceeds what the host's CPUs can do.
"""

from __future__ import annotations

import os

from .files import read_regular
from .records import NamedTuple
from .sealed import seal, unseal

# Format 3, written: sealed (sealed.py, as the unit cache): (boot_id, scope, taken_ns, {unit: the
# Counter's fields as a tuple}); read on every run, a third of the cost of parsing the text formats.
FORMAT = "agent-exporter-state/3"
# Formats 1 and 2, still read (a state written before an upgrade keeps its counters): line-based text
#   agent-exporter-state/2
#   boot_id <id>
#   scope <user|system>
#   taken_ns <CLOCK_MONOTONIC ns>
#   unit <cpu_ns> <enter_us> <starts> <n_restarts> <invocation> <oom_kills> <oom_raw> <oom_time>
#        <oom_mark> <recent> <unit name>                                   (one line; "-" for none)
# and format 1, the CPU counters alone: `unit <cpu_ns> <enter_us> <name>`.
FORMAT_2 = "agent-exporter-state/2"
FORMAT_1 = "agent-exporter-state/1"
# Under 500 bytes an agent even with systemd's longest unit names: room for 30000 agents.
MAX_STATE_BYTES = 16 << 20
_NONE = "-"


class Counter(NamedTuple):
    """What one run keeps of a unit for the next: the CPU counter (this boot only) and the counters
    the writer keeps itself (health.py), which a reboot does not end."""

    cpu_ns: int | None
    active_enter_us: int | None
    starts: int | None = None  # agent_starts_total
    n_restarts: int | None = None  # NRestarts when last seen (this boot)
    invocation: str = ""  # InvocationID when last seen (this boot)
    oom_kills: int | None = None  # agent_oom_kills_total
    oom_raw: int | None = None  # the cgroup's own oom_kill count when last read (this invocation)
    oom_time: float | None = None  # Unix time of the last OOM kill counted
    oom_mark: str = ""  # the Result=oom-kill already counted: "<invocation>@<exit us>"
    recent: tuple[float, ...] = ()  # Unix times of the starts within defaults.CRASH_LOOP_WINDOW

    def across_boot(self) -> Counter:
        """What survives a reboot: the writer's own counters."""
        return Counter(None, None, self.starts, oom_kills=self.oom_kills, oom_time=self.oom_time)


class State(NamedTuple):
    boot_id: str
    scope: str
    taken_ns: int  # CLOCK_MONOTONIC when the counters were read
    counters: dict[str, Counter]

    def dumps(self) -> bytes:
        return seal(FORMAT, (self.boot_id, self.scope, self.taken_ns,
                             {unit: tuple(c) for unit, c in self.counters.items()}))


def boot_id(proc_root: str = "/proc") -> str:
    try:
        with open(os.path.join(proc_root, "sys/kernel/random/boot_id"), encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return ""


def load(path: str, current_boot_id: str, scope: str) -> tuple[State | None, str | None]:
    """The previous state, or (None, why it cannot be used). A state of another boot keeps only
    what survives a reboot (Counter.across_boot), and says so."""
    try:
        # Not followed, not waited on, not read past the limit: the state directory may be shared.
        raw = read_regular(path, MAX_STATE_BYTES, follow=False)
    except FileNotFoundError:
        return None, "no previous state (first run)"
    except OSError as exc:
        return None, f"previous state {path} unreadable: {exc.strerror or exc}"
    # (the text formats begin with their name; marshal's first byte is a type code, never a letter)
    found = _from_text(raw, path) if raw.startswith(b"agent-exporter-state/") else _from_sealed(raw, path)
    if isinstance(found, str):
        return None, found
    found_boot, found_scope, taken, counters = found
    if found_scope != scope:
        return None, f"previous state {path} is from another scope"
    if found_boot != current_boot_id:
        kept = {u: c.across_boot() for u, c in counters.items()}
        return State(found_boot, scope, taken, kept), f"previous state {path} is from another boot"
    return State(found_boot, scope, taken, counters), None


def _from_sealed(raw: bytes, path: str) -> State | str:
    """Format 3, or why not."""
    value, why = unseal(raw, FORMAT)
    if why is not None:
        return f"previous state {path} {why}"
    try:
        found_boot, found_scope, taken, counters = value
        new = tuple.__new__
        return State(found_boot, found_scope, taken, {unit: new(Counter, c) for unit, c in counters.items()})
    except (ValueError, TypeError, AttributeError):
        return f"previous state {path} is corrupt"


def _from_text(raw: bytes, path: str) -> State | str:
    """Formats 1 and 2, or why not."""
    try:
        text = raw.decode("utf-8")
    except ValueError:
        return f"previous state {path} is not UTF-8 text"
    lines = text.split("\n")
    if lines[0] not in (FORMAT_2, FORMAT_1):
        return f"previous state {path} has another format"
    parse = _counter if lines[0] == FORMAT_2 else _counter_1
    header: dict[str, str] = {}
    counters: dict[str, Counter] = {}
    try:
        for line in lines[1:]:
            if not line:
                continue
            key, _, rest = line.partition(" ")
            if key == "unit":
                unit, counter = parse(rest)
                counters[unit] = counter
            else:
                header[key] = rest
        return State(header["boot_id"], header["scope"], int(header["taken_ns"]), counters)
    except (KeyError, ValueError):
        return f"previous state {path} is corrupt"


def _int(text: str) -> int | None:
    return None if text == _NONE else int(text)


def _counter_1(rest: str) -> tuple[str, Counter]:
    cpu_ns, enter, unit = rest.split(" ", 2)
    return unit, Counter(int(cpu_ns), _int(enter))


def _counter(rest: str) -> tuple[str, Counter]:
    cpu, enter, starts, n_restarts, invocation, ooms, oom_raw, oom_time, oom_mark, recent, unit = rest.split(" ", 10)
    n = _NONE
    return unit, Counter(  # (the conversions written out: 1000 lines a run)
        None if cpu == n else int(cpu), None if enter == n else int(enter), None if starts == n else int(starts),
        None if n_restarts == n else int(n_restarts), "" if invocation == n else invocation,
        None if ooms == n else int(ooms), None if oom_raw == n else int(oom_raw),
        None if oom_time == n else float(oom_time), "" if oom_mark == n else oom_mark,
        () if recent == n else tuple(float(t) for t in recent.split(",")))


def cpu_percent(before: Counter | None, now: Counter, elapsed_ns: int, cpus: int) -> float | None:
    """CPU used since the previous run (its counter of the unit, `before`, taken elapsed_ns ago), in %
    of one core; None when there is no honest figure."""
    if (before is None or before.cpu_ns is None or now.cpu_ns is None or elapsed_ns <= 0
            or before.active_enter_us != now.active_enter_us):
        return None
    used_ns = now.cpu_ns - before.cpu_ns
    if used_ns < 0:
        return None
    percent = 100.0 * used_ns / elapsed_ns
    # Reading counters and the clock is not one atomic step: allow a little slack, no more.
    if percent > 100.0 * cpus * 1.1:
        return None
    return round(percent, 3)
