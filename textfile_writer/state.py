"""The previous run's CPU counters, kept in a small JSON file, and the CPU % derived from them.

agent_cpu_percent is (cpu_ns now - cpu_ns then) / (monotonic now - monotonic then). It is only a
figure when both ends are trustworthy; otherwise the agent gets no agent_cpu_percent sample for
this run (unknown, not zero):
- first run, or the state file is missing, unreadable, corrupt or foreign (another boot, scope or
  format);
- the unit was (re)started since (its ActiveEnterTimestampMonotonic changed: a new cgroup);
- the counter went backwards, or the result exceeds what the host's CPUs can do.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

FORMAT = "agent-exporter-state/1"
FILE_NAME = "cpu-state.json"


@dataclass(frozen=True)
class Counter:
    cpu_ns: int
    active_enter_us: int | None


@dataclass(frozen=True)
class State:
    boot_id: str
    scope: str
    taken_ns: int  # CLOCK_MONOTONIC when the counters were read
    counters: dict[str, Counter]

    def to_json(self) -> str:
        return json.dumps({
            "format": FORMAT, "boot_id": self.boot_id, "scope": self.scope,
            "taken_ns": self.taken_ns,
            "units": {u: [c.cpu_ns, c.active_enter_us] for u, c in sorted(self.counters.items())},
        }, separators=(",", ":"))


def boot_id(proc_root: str = "/proc") -> str:
    try:
        with open(os.path.join(proc_root, "sys/kernel/random/boot_id"), encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return ""


def load(path: str, current_boot_id: str, scope: str) -> tuple[State | None, str | None]:
    """The previous state, or (None, why it cannot be used)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return None, "no previous state (first run)"
    except (OSError, ValueError) as exc:
        return None, f"previous state {path} unreadable: {exc}"
    try:
        if data["format"] != FORMAT:
            return None, f"previous state {path} has another format"
        if data["boot_id"] != current_boot_id or data["scope"] != scope:
            return None, f"previous state {path} is from another boot or scope"
        counters = {}
        for unit, (cpu_ns, enter) in data["units"].items():
            if not isinstance(cpu_ns, int) or not (enter is None or isinstance(enter, int)):
                raise TypeError(unit)
            counters[str(unit)] = Counter(cpu_ns, enter)
        taken = data["taken_ns"]
        if not isinstance(taken, int):
            raise TypeError("taken_ns")
    except (KeyError, TypeError, ValueError, AttributeError):
        return None, f"previous state {path} is corrupt"
    return State(str(data["boot_id"]), scope, taken, counters), None


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
