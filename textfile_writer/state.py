"""The previous run's CPU counters, kept in a small text file, and the CPU % derived from them.

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

# A line-based text file (no JSON: the json module costs more to import than the file is worth):
#   agent-exporter-state/1
#   boot_id <id>
#   scope <user|system>
#   taken_ns <CLOCK_MONOTONIC ns>
#   unit <cpu_ns> <ActiveEnterTimestampMonotonic us, or -> <unit name>
FORMAT = "agent-exporter-state/1"
# One line per agent, under 300 bytes even with systemd's longest unit names: room for 50000 agents.
MAX_STATE_BYTES = 16 << 20


class Counter(NamedTuple):
    cpu_ns: int
    active_enter_us: int | None


class State(NamedTuple):
    boot_id: str
    scope: str
    taken_ns: int  # CLOCK_MONOTONIC when the counters were read
    counters: dict[str, Counter]

    def to_text(self) -> str:
        lines = [FORMAT, f"boot_id {self.boot_id}", f"scope {self.scope}", f"taken_ns {self.taken_ns}"]
        for unit, c in sorted(self.counters.items()):
            enter = "-" if c.active_enter_us is None else str(c.active_enter_us)
            lines.append(f"unit {c.cpu_ns} {enter} {unit}")
        return "\n".join(lines) + "\n"


def boot_id(proc_root: str = "/proc") -> str:
    try:
        with open(os.path.join(proc_root, "sys/kernel/random/boot_id"), encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return ""


def load(path: str, current_boot_id: str, scope: str) -> tuple[State | None, str | None]:
    """The previous state, or (None, why it cannot be used)."""
    try:
        # Not followed, not waited on, not read past the limit: the state directory may be shared.
        text = read_regular(path, MAX_STATE_BYTES, follow=False).decode("utf-8")
    except FileNotFoundError:
        return None, "no previous state (first run)"
    except OSError as exc:
        return None, f"previous state {path} unreadable: {exc.strerror or exc}"
    except ValueError:
        return None, f"previous state {path} is not UTF-8 text"
    lines = text.split("\n")
    if lines[0] != FORMAT:
        return None, f"previous state {path} has another format"
    header: dict[str, str] = {}
    counters: dict[str, Counter] = {}
    try:
        for line in lines[1:]:
            if not line:
                continue
            key, _, rest = line.partition(" ")
            if key == "unit":
                cpu_ns, enter, unit = rest.split(" ", 2)
                counters[unit] = Counter(int(cpu_ns), None if enter == "-" else int(enter))
            else:
                header[key] = rest
        taken = int(header["taken_ns"])
        found_boot, found_scope = header["boot_id"], header["scope"]
    except (KeyError, ValueError):
        return None, f"previous state {path} is corrupt"
    if found_boot != current_boot_id or found_scope != scope:
        return None, f"previous state {path} is from another boot or scope"
    return State(found_boot, scope, taken, counters), None


def cpu_percent(previous: State | None, unit: str, now: Counter, now_ns: int,
                cpus: int) -> float | None:
    """CPU used since the previous run, in % of one core; None when there is no honest figure."""
    if previous is None:
        return None
    before = previous.counters.get(unit)
    elapsed_ns = now_ns - previous.taken_ns
    if before is None or elapsed_ns <= 0 or before.active_enter_us != now.active_enter_us:
        return None
    used_ns = now.cpu_ns - before.cpu_ns
    if used_ns < 0:
        return None
    percent = 100.0 * used_ns / elapsed_ns
    # Reading counters and the clock is not one atomic step: allow a little slack, no more.
    if percent > 100.0 * cpus * 1.1:
        return None
    return round(percent, 3)
