"""An agent's health in words: the one wording `status` and the landing page both show.

A pure function of plain values. `status` (report.py) takes them from its AgentSample, the server
(server/landing.py) from the samples it read back from the textfile, so both say the same thing
without the server importing the writer's health rules, which .importlinter forbids. The reasons are
health.REASONS; a reason this module does not know is shown as it is.
"""

from __future__ import annotations

from . import humanize
from .defaults import CRASH_LOOP_WINDOW
from .records import NamedTuple

HEALTHY = "ok"

# The common Linux signals by number, without importing `signal` (and its enum) to name them.
SIGNALS = {1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 6: "SIGABRT", 7: "SIGBUS", 8: "SIGFPE",
           9: "SIGKILL", 11: "SIGSEGV", 13: "SIGPIPE", 14: "SIGALRM", 15: "SIGTERM"}

# systemd's Result values that say by themselves why a unit stopped.
_RESULTS = {"timeout": "timed out", "watchdog": "watchdog timeout", "protocol": "protocol error",
            "resources": "could not be set up (resources)", "oom-kill": "OOM-killed",
            "start-limit-hit": "start-limit-hit"}


class Facts(NamedTuple):
    """What the words are made of. Any of them may be unknown (None); the numbers may come from a
    file anybody could have edited, so they are checked before they are used."""

    reason: str | None  # None: healthy; else one of health.REASONS
    result: str | None = None  # systemd's Result, as agent_last_result has it
    exit_code: float | None = None
    exit_signal: float | None = None
    exit_time: float | None = None  # Unix time the main process last exited
    recent_starts: float | None = None  # starts within CRASH_LOOP_WINDOW
    oom_time: float | None = None  # Unix time of the last OOM kill counted
    timer_last: float | None = None  # Unix time the agent's timer last fired
    probe_status: float | None = None  # the HTTP status the probe got, None when none came


def _whole(value: float | None) -> int | None:
    """A status or signal number as an int; None for none, not a number, or out of range."""
    if value is None or not -(2**31) <= value < 2**32 or value != int(value):
        return None  # (NaN fails the range check: every comparison with it is false)
    return int(value)


def signal_text(number: int) -> str:
    """'signal 9 (SIGKILL)'; 'signal 42' for one the table does not name."""
    name = SIGNALS.get(number)
    return f"signal {number} ({name})" if name else f"signal {number}"


def _age(when: float | None, now: float) -> str | None:
    """'2 min'; None when unknown, not a time (not after 1970) or in the future (a clock that jumped)."""
    if when is None or when - when != 0 or when <= 0:  # (NaN and infinities: when - when is NaN)
        return None
    return humanize.span(now - when) if now >= when else None


def _ago(when: float | None, now: float) -> str | None:
    age = _age(when, now)
    return None if age is None else f"{age} ago"


def cause(f: Facts) -> str | None:
    """Why the main process last stopped: 'exit code 3', 'killed by signal 9 (SIGKILL)', 'timed
    out'…; None when it stopped cleanly or nothing says."""
    signal = _whole(f.exit_signal)
    code = _whole(f.exit_code)
    if f.result == "core-dump":
        return "dumped core" + (f" on {signal_text(signal)}" if signal is not None else "")
    if f.result in _RESULTS:
        return _RESULTS[f.result]
    if signal is not None:
        return f"killed by {signal_text(signal)}"
    if code is not None and (code != 0 or f.result == "exit-code"):
        return f"exit code {code}"
    return None


def _last_exit(f: Facts, now: float) -> str | None:
    """'exit code 3, 2 min ago' (the Result left out when it is only the reason again)."""
    why = cause(f if f.result != f.reason else f._replace(result=None))
    ago = _ago(f.exit_time, now)
    if why and ago:
        return f"{why}, {ago}"
    return why or (f"exited {ago}" if ago else None)


def describe(f: Facts, now: float) -> str:
    """The agent's health in a few words, ages counted to `now` (Unix time)."""
    reason = f.reason
    if reason is None:
        return HEALTHY
    if reason == "failed":
        last = _last_exit(f, now)
        return f"failed: {last}" if last else "failed"
    if reason == "crash-looping":
        starts = _whole(f.recent_starts)
        text = f"crash-looping: {starts} starts in {humanize.span(CRASH_LOOP_WINDOW)}" if starts else reason
        why = cause(f)
        return f"{text}, last: {why}" if why else text
    if reason == "oom-killed":
        ago = _ago(f.oom_time, now) or _ago(f.exit_time, now)
        return f"OOM-killed {ago}" if ago else "OOM-killed"
    if reason == "start-limit-hit":
        last = _last_exit(f, now)
        return f"start-limit-hit, last: {last}" if last else reason
    if reason == "down":
        age = _age(f.exit_time, now)
        return f"down for {age}" if age else "down"
    if reason == "running":
        return "running (expected stopped)"
    if reason == "timer-late":
        ago = _ago(f.timer_last, now)
        return f"timer late: last run {ago}" if ago else "timer late: no run yet"
    if reason == "probe-failing":
        status = _whole(f.probe_status)
        return f"probe failing: HTTP {status}" if status is not None else "probe failing: no HTTP answer"
    return reason
