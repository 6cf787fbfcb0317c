"""healthtext.py: an agent's health in words, as `status` and the landing page show it."""

from __future__ import annotations

import signal

import pytest

from textfile_writer import health
from textfile_writer.healthtext import SIGNALS, Facts, cause, describe, signal_text

NOW = 1795486400.0


@pytest.mark.parametrize(("facts", "words"), [
    (Facts(None), "ok"),
    (Facts("failed", "exit-code", exit_code=3, exit_time=NOW - 130), "failed: exit code 3, 2 min ago"),
    (Facts("failed", "signal", exit_signal=9, exit_time=NOW - 5), "failed: killed by signal 9 (SIGKILL), 5 s ago"),
    (Facts("failed", "core-dump", exit_signal=11), "failed: dumped core on signal 11 (SIGSEGV)"),
    (Facts("failed", "timeout", exit_time=NOW - 7200), "failed: timed out, 2 h ago"),
    (Facts("failed", "watchdog", exit_signal=6), "failed: watchdog timeout"),
    (Facts("failed", "success", exit_code=0, exit_time=NOW - 59), "failed: exited 59 s ago"),
    (Facts("failed"), "failed"),
    (Facts("crash-looping", "exit-code", exit_code=1, recent_starts=6),
     "crash-looping: 6 starts in 10 min, last: exit code 1"),
    (Facts("crash-looping", recent_starts=6), "crash-looping: 6 starts in 10 min"),
    (Facts("crash-looping"), "crash-looping"),
    (Facts("oom-killed", "oom-kill", exit_signal=9, oom_time=NOW - 3700), "OOM-killed 1 h ago"),
    (Facts("oom-killed", "oom-kill", exit_time=NOW - 90000), "OOM-killed 1 d ago"),
    (Facts("oom-killed", "oom-kill"), "OOM-killed"),
    (Facts("start-limit-hit", "start-limit-hit"), "start-limit-hit"),
    (Facts("start-limit-hit", "start-limit-hit", exit_code=1, exit_time=NOW - 40),
     "start-limit-hit, last: exit code 1, 40 s ago"),
    (Facts("down"), "down"),
    (Facts("down", "success", exit_code=0, exit_time=NOW - 200), "down for 3 min"),
    (Facts("running"), "running (expected stopped)"),
    (Facts("timer-late", "success", timer_last=NOW - 7300), "timer late: last run 2 h ago"),
    (Facts("timer-late"), "timer late: no run yet"),
    (Facts("probe-failing", probe_status=503), "probe failing: HTTP 503"),
    (Facts("probe-failing"), "probe failing: no HTTP answer"),
    (Facts("some-future-reason"), "some-future-reason"),
])
def test_words(facts: Facts, words: str) -> None:
    assert describe(facts, NOW) == words


def test_every_reason_the_writer_gives_is_worded() -> None:
    """A reason added to health.REASONS fails here until it has its words (else it shows bare)."""
    bare = {reason: describe(Facts(reason), NOW) for reason in health.REASONS}
    assert bare == {"oom-killed": "OOM-killed", "start-limit-hit": "start-limit-hit", "crash-looping": "crash-looping",
                    "failed": "failed", "down": "down", "running": "running (expected stopped)",
                    "timer-late": "timer late: no run yet", "probe-failing": "probe failing: no HTTP answer"}


def test_the_signal_table_agrees_with_the_signal_module() -> None:
    assert {n: signal.Signals(n).name for n in SIGNALS} == SIGNALS
    assert signal_text(9) == "signal 9 (SIGKILL)" and signal_text(42) == "signal 42"


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), 1e30, 2.5, -1e30])
def test_numbers_from_a_hostile_file_are_left_out_not_raised_on(bad: float) -> None:
    assert cause(Facts("failed", exit_code=bad, exit_signal=bad)) is None
    assert describe(Facts("failed", exit_code=bad), NOW) == "failed"
    assert describe(Facts("probe-failing", probe_status=bad), NOW) == "probe failing: no HTTP answer"
    assert describe(Facts("crash-looping", recent_starts=bad), NOW) == "crash-looping"


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), -1e30, 0.0, NOW + 3600])
def test_a_time_that_is_none_gives_no_age(bad: float) -> None:
    """Not a number, before 1970, or in the future (a clock that jumped back): no age is made up."""
    assert describe(Facts("oom-killed", oom_time=bad), NOW) == "OOM-killed"
    assert describe(Facts("failed", "exit-code", exit_code=2, exit_time=bad), NOW) == "failed: exit code 2"
    assert describe(Facts("down", exit_time=bad), NOW) == "down"
    assert describe(Facts("timer-late", timer_last=bad), NOW) == "timer late: no run yet"
