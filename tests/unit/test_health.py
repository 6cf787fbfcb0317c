"""health.py: the starts and OOM counters the writer keeps, expectations and the health verdict."""

from __future__ import annotations

import pytest

from textfile_writer import health
from textfile_writer.state import Counter


def seen(invocation: str, n_restarts: int | None, starts: int = 10) -> Counter:
    return Counter(1, 1, starts=starts, n_restarts=n_restarts, invocation=invocation)


@pytest.mark.parametrize(("before", "invocation", "n_restarts", "expected"), [
    (None, "a", 0, (1, 0)),  # first sight: the current invocation
    (None, "a", 18, (19, 0)),  # first sight of a crash-looper: NRestarts plus the invocation
    (None, "", None, (0, 0)),  # a unit that never ran (or does not exist)
    (seen("a", 0), "a", 0, (10, 0)),  # nothing happened
    (seen("a", 0), "b", 0, (11, 1)),  # a manual restart (NRestarts stays 0)
    (seen("a", 5), "b", 0, (11, 1)),  # a manual start reset NRestarts
    (seen("a", 5), "b", 2, (13, 3)),  # a manual start, then two automatic restarts
    (seen("a", 2), "d", 5, (13, 3)),  # three automatic restarts within one interval
    (seen("a", 3), "a", 0, (10, 0)),  # reset-failed: NRestarts zeroed, the same invocation
    (seen("", None), "a", 2, (13, 3)),  # the first run of a new boot: the total goes on
])
def test_starts(before: Counter | None, invocation: str, n_restarts: int | None, expected: tuple[int, int]) -> None:
    assert health.count_starts(before, invocation, n_restarts) == expected


def test_starts_never_go_back_over_many_runs() -> None:
    before: Counter | None = None
    totals = []
    for invocation, n in [("a", 0), ("a", 0), ("b", 1), ("c", 0), ("c", 0), ("d", 4), ("d", 0), ("e", 0)]:
        total, _ = health.count_starts(before, invocation, n)
        totals.append(total)
        before = Counter(None, None, total, n, invocation)
    assert totals == sorted(totals) and totals[-1] == 1 + 1 + 1 + 4 + 1


def test_recent_starts_keep_the_window_and_drop_nonsense() -> None:
    now = 10_000.0
    before = Counter(None, None, recent=(now - 700, now - 30, now + 50, float("nan"), float("inf")))
    assert health.recent_starts(before, 2, now) == (now - 30, now, now)
    assert len(health.recent_starts(None, 100, now)) == 16


@pytest.mark.parametrize(("before", "raw", "result", "expected_total"), [
    (None, None, "success", None),  # nothing can tell: absent, not 0
    (None, 2, "success", 2),  # first sight: the cgroup's count
    (Counter(None, None, invocation="a", oom_kills=2, oom_raw=2), 3, "success", 3),  # one more kill, same cgroup
    (Counter(None, None, invocation="a", oom_kills=2, oom_raw=2), 2, "success", 2),
    (Counter(None, None, invocation="z", oom_kills=2, oom_raw=5), 1, "success", 3),  # a new cgroup since
    (Counter(None, None, invocation="a", oom_kills=2, oom_raw=2), None, "oom-kill", 3),  # systemd saw it, cgroup gone
    (None, None, "oom-kill", 1),
])
def test_oom_kills(before: Counter | None, raw: int | None, result: str, expected_total: int | None) -> None:
    # (a host whose cgroups cannot tell; the next test has one that can)
    total, kept_raw, when, mark = health.count_ooms(before, "a", raw, result, 77, 500.0, countable=False)
    assert total == expected_total and kept_raw == raw
    assert (mark == "a@77") == (result == "oom-kill")
    if expected_total is not None and before is not None and expected_total > (before.oom_kills or 0):
        assert when == 500.0


def test_a_host_that_counts_starts_every_unit_at_0_with_a_cgroup_or_without() -> None:
    assert health.count_ooms(None, "a", None, "success", None, 5.0, countable=True)[0] == 0
    assert health.count_ooms(None, "a", 0, "success", None, 5.0, countable=True)[0] == 0
    assert health.count_ooms(None, "a", None, "oom-kill", 9, 5.0, countable=True)[0] == 1


def test_an_oom_kill_result_is_counted_once() -> None:
    before = Counter(None, None, invocation="a", oom_kills=2, oom_raw=None, oom_time=1.0)
    total, raw, when, mark = health.count_ooms(before, "a", None, "oom-kill", 77, 500.0)
    again = Counter(None, None, invocation="a", oom_kills=total, oom_raw=raw, oom_time=when, oom_mark=mark)
    assert health.count_ooms(again, "a", None, "oom-kill", 77, 510.0)[:3] == (3, None, 500.0)


@pytest.mark.parametrize(("configured", "props", "timer", "expected"), [
    (None, {}, None, "running"),
    (None, {"Type": "oneshot", "RemainAfterExit": "no"}, None, "oneshot"),
    (None, {"Type": "oneshot", "RemainAfterExit": "yes"}, None, "running"),
    (None, {"Type": "oneshot", "TriggeredBy": "agent-x.timer"}, "agent-x.timer", "timer"),
    (None, {"Type": "simple", "TriggeredBy": "agent-x.socket"}, None, "running"),
    ("stopped", {"Type": "oneshot", "TriggeredBy": "agent-x.timer"}, "agent-x.timer", "stopped"),
])
def test_expected_state(configured: str | None, props: dict[str, str], timer: str | None, expected: str) -> None:
    assert health.expected(configured, props, timer) == expected


@pytest.mark.parametrize(("expectation", "state", "load", "result", "recent", "late", "probe", "reason"), [
    ("running", "active", "loaded", "success", 0, False, None, None),
    ("running", "active", "loaded", "success", 6, False, None, "crash-looping"),
    ("running", "activating", "loaded", "exit-code", 5, False, None, "crash-looping"),
    ("running", "failed", "loaded", "start-limit-hit", 5, False, None, "start-limit-hit"),
    ("running", "failed", "loaded", "oom-kill", 0, False, None, "oom-killed"),
    ("running", "failed", "loaded", "exit-code", 0, False, None, "failed"),
    ("running", "inactive", "loaded", "success", 0, False, None, "down"),
    ("running", "inactive", "not-found", None, 0, False, None, "down"),
    ("running", "active", "loaded", "success", 0, False, False, "probe-failing"),
    ("oneshot", "inactive", "loaded", "success", 0, False, None, None),
    ("oneshot", "activating", "loaded", "success", 0, False, None, None),
    ("oneshot", "failed", "loaded", "exit-code", 0, False, None, "failed"),
    ("oneshot", "inactive", "loaded", "timeout", 0, False, None, "failed"),
    ("oneshot", "inactive", "loaded", "exec-condition", 0, False, None, None),
    ("timer", "inactive", "loaded", "success", 0, False, None, None),
    ("timer", "inactive", "loaded", "success", 0, True, None, "timer-late"),
    ("timer", "failed", "loaded", "signal", 0, True, None, "failed"),
    ("stopped", "inactive", "loaded", "success", 0, False, None, None),
    ("stopped", "active", "loaded", "success", 0, False, None, "running"),
])
def test_health(expectation: str, state: str, load: str, result: str | None, recent: int, late: bool,
                probe: bool | None, reason: str | None) -> None:
    assert health.health(expectation, state, load, result, recent, late, probe) == reason
    assert reason is None or reason in health.REASONS


def test_timer_lateness() -> None:
    assert not health.timer_late(True, 1000.0, 1060.0, 1050.0, 10)  # fires every minute, next is ahead
    assert not health.timer_late(True, 1000.0, 1060.0, 1110.0, 10)  # within the margin
    assert health.timer_late(True, 1000.0, 1060.0, 1200.0, 10)  # two minutes past its time
    assert health.timer_late(False, 1000.0, None, 1001.0, 10)  # stopped: it will never fire
    assert not health.timer_late(True, 1000.0, None, 99999.0, 10)  # fired once, never again by design
    assert health.timer_late(True, None, 1000.0, 2000.0, 10)  # never fired, its time long past


def test_results() -> None:
    assert health.result_state("oom-kill") == "oom-kill"
    assert health.result_state("something-new") == health.OTHER_RESULT
    assert health.result_state("") is None
