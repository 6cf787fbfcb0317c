"""Why an agent is unhealthy: the counters the writer keeps itself, and the health verdict.

Everything here is a pure function of what systemd, the cgroup and the previous run's state said:
no I/O, so each rule is tested on its own (tests/unit/test_health.py) and docs/metrics.md's wording is
written once, here.

agent_starts_total counts starts the writer has seen, between two runs:
- a new InvocationID (systemd gives every start one; a manual `systemctl restart` too) is one start;
- NRestarts (systemd's automatic restarts) rising by n is n starts, when more than the one above;
- NRestarts lower than before with a new InvocationID: a manual start reset it (systemd does), so
  that start plus the NRestarts counted since; with the same InvocationID it was `reset-failed`,
  which is no start.
A manual restart and one automatic restart inside one interval count 1 when NRestarts was 0 before
(the two cannot be told apart). The first run that sees a unit, and the first after the state file
was lost, start from NRestarts, plus one for the current invocation: a counter reset for Prometheus.
A reboot keeps the total and adds what the new boot's systemd reports.
"""

from __future__ import annotations

from .defaults import CRASH_LOOP_STARTS, CRASH_LOOP_WINDOW
from .model import UP_STATES
from .state import Counter

TYPE_CHECKING = False  # typing, collections.abc: names for the type checker only
if TYPE_CHECKING:
    from collections.abc import Mapping

# systemd 252's results of a service (service_result_table); anything else is "other".
RESULTS = frozenset({"success", "resources", "protocol", "timeout", "exit-code", "signal", "core-dump",
                     "watchdog", "start-limit-hit", "oom-kill", "exec-condition"})
OTHER_RESULT = "other"
EXPECTATIONS = ("running", "oneshot", "timer", "stopped")
# Why an agent is unhealthy, the first that applies in this order.
REASONS = ("oom-killed", "start-limit-hit", "crash-looping", "failed", "down", "running", "timer-late",
           "probe-failing")
_RECENT_KEPT = 16  # start times kept: enough to tell CRASH_LOOP_STARTS, bounded whatever happens
# A timer is late when its last trigger is older than its period (next - last) plus this margin,
# or the writer's interval times three when that is longer.
TIMER_MARGIN = 60.0


def result_state(result: str | None) -> str | None:
    """systemd's Result as one of RESULTS or "other"; None when there is none (no such unit)."""
    if not result:
        return None
    return result if result in RESULTS else OTHER_RESULT


def expected(configured: str | None, props: Mapping[str, str], timer: str | None) -> str:
    """The agent's expectation: the config's, else systemd's: started by a timer (collect.py finds
    it: TriggeredBy, or a oneshot's timer of the same name, which systemd no longer lists once it is
    stopped), a oneshot that does not remain active after it exits, or a long-running service."""
    if configured:
        return configured
    if timer is not None:
        return "timer"
    if oneshot(props):
        return "oneshot"
    return "running"


def oneshot(props: Mapping[str, str]) -> bool:
    return props.get("Type") == "oneshot" and props.get("RemainAfterExit") != "yes"


def count_starts(before: Counter | None, invocation: str, n_restarts: int | None) -> tuple[int, int]:
    """(agent_starts_total now, the starts seen since the previous run); see the module's text."""
    if before is None or before.starts is None:
        return (n_restarts or 0) + (1 if invocation else 0), 0
    if not before.invocation and before.n_restarts is None:  # the first run of this boot
        current = (n_restarts or 0) + (1 if invocation else 0)
        return before.starts + current, current
    if invocation == before.invocation and n_restarts == before.n_restarts:  # nearly every agent, every run
        return before.starts, 0
    new_invocation = bool(invocation) and invocation != before.invocation
    seen = 1 if new_invocation else 0
    if n_restarts is not None and before.n_restarts is not None:
        if n_restarts >= before.n_restarts:
            seen = max(seen, n_restarts - before.n_restarts)
        elif new_invocation:  # reset by a manual start: that start, then the automatic ones
            seen = max(seen, n_restarts + 1)
    return before.starts + seen, seen


def recent_starts(before: Counter | None, seen: int, now: float) -> tuple[float, ...]:
    """The start times within CRASH_LOOP_WINDOW of now, the `seen` new ones stamped now."""
    earlier = before.recent if before is not None else ()
    if not earlier and not seen:  # nearly every agent, every run
        return ()
    # (a time in the future, or not a number, as a planted state file might hold, is dropped)
    kept = [t for t in earlier if 0 <= now - t < CRASH_LOOP_WINDOW]
    kept += [now] * seen
    return tuple(kept[-_RECENT_KEPT:])


def count_ooms(before: Counter | None, invocation: str, raw: int | None, result: str | None,
               exit_us: int | None, now: float, countable: bool = True
               ) -> tuple[int | None, int | None, float | None, str]:
    """OOM kills as a counter, each kill once, from the cgroup's own count (`raw`: memory.events or
    memory.oom_control) and systemd's Result=oom-kill (the cgroup that counted that kill may be gone).
    `countable`: the host's cgroups count OOM kills at all (a unit without a cgroup now still counts
    from 0, so the family does not come and go with the unit). Returns (agent_oom_kills_total, None
    while nothing can tell; the raw count to keep; the time of the last kill counted; the
    Result=oom-kill already counted, as "<invocation>@<exit us>")."""
    if before is not None and raw is not None and raw == before.oom_raw and invocation == before.invocation \
            and result != "oom-kill":  # nothing new, nearly every agent, every run
        return before.oom_kills, raw, before.oom_time, before.oom_mark
    total = None if before is None else before.oom_kills
    if total is None and raw is None and countable:
        total = 0
    when = None if before is None else before.oom_time
    mark = "" if before is None else before.oom_mark
    seen = 0
    if raw is not None:
        if before is not None and before.invocation == invocation and before.oom_raw is not None \
                and raw >= before.oom_raw:
            seen = raw - before.oom_raw
        elif total is not None:
            seen = raw  # a cgroup made since the last run: all of its kills are new
        else:
            total = raw  # the first sight: start from the current value
    result_mark = f"{invocation}@{exit_us or 0}" if result == "oom-kill" else ""
    if result_mark and result_mark != mark:
        mark = result_mark
        if seen == 0 and (before is not None or raw is None):
            seen = 1  # (at first sight a count read from the cgroup already holds it)
    if seen:
        total = (total or 0) + seen
        when = now
    return total, raw, when, mark


def health(expectation: str, state: str, load_state: str, result: str | None, recent: int,
           timer_late: bool, probe_ok: bool | None) -> str | None:
    """None when the agent is as expected, else the first of REASONS that applies."""
    up = state in UP_STATES
    if expectation == "stopped":
        return "running" if up else None
    missing = load_state == "not-found"
    if expectation == "running":
        if recent >= CRASH_LOOP_STARTS and not missing:
            return "crash-looping" if up else (_failure(result) or "crash-looping")
        if not up:
            return _failure(result) or ("failed" if state == "failed" else "down")
    else:  # oneshot, timer: fine while the last run succeeded (or it runs now)
        if missing:
            return "down"
        if state == "failed" or (result not in (None, "success", "exec-condition") and not up):
            return _failure(result) or "failed"
        if expectation == "timer" and timer_late:
            return "timer-late"
    if probe_ok is False:
        return "probe-failing"
    return None


def _failure(result: str | None) -> str | None:
    if result == "oom-kill":
        return "oom-killed"
    if result == "start-limit-hit":
        return "start-limit-hit"
    return None


def timer_late(active: bool, last: float | None, next_: float | None, now: float, interval: float) -> bool:
    """A timer that will not fire (not active) or whose last trigger is older than its period plus
    the margin; a timer that fires once (no next) is never late."""
    margin = max(TIMER_MARGIN, 3 * interval)
    if not active:
        return True
    if next_ is None:
        return False
    if last is None:  # not fired yet (this boot): late once its first time is well past
        return now > next_ + margin
    return now - last > (next_ - last) + margin
