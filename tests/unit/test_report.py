"""report.py: the status table and JSON."""

from __future__ import annotations

from builders import agent, snapshot

from textfile_writer import humanize
from textfile_writer.report import as_json, table

NOW = 1795486400.5  # builders.snapshot's timestamp: the time `status` counts ages to


def test_human_units() -> None:
    assert [humanize.size_kb(v) for v in (None, 0, 512.0, 50 * 1024.0, 3 * 2**20, float("nan"))] == [
        "-", "0 KiB", "512 KiB", "50.0 MiB", "3.0 GiB", "-"]
    assert [humanize.duration(v) for v in (None, -1, 0, 59, 3600 + 120, 2 * 86400 + 3 * 3600)] == [
        "-", "-", "0s", "59s", "1h 2m", "2d 3h"]
    assert [humanize.span(v) for v in (None, -1, float("inf"), 0, 59.9, 60, 3599, 3600, 86399, 86400 * 3)] == [
        "-", "-", "-", "0 s", "59 s", "1 min", "59 min", "1 h", "23 h", "3 d"]
    assert humanize.percent(3.14159) == "3.1" and humanize.percent(3.14159, suffix=" %") == "3.1 %"
    assert humanize.count(None, missing="?") == "?" and humanize.count(7.0) == "7"


def test_table_has_one_row_per_agent_and_a_summary() -> None:
    snap = snapshot(agent("a"), agent("b", state="failed", cpu_percent=0.0, uptime_seconds=0.0))
    lines = table(snap).splitlines()
    assert lines[0].split() == ["AGENT", "TYPE", "STATE", "CPU%", "MEMORY", "UPTIME", "RESTARTS", "HEALTH"]
    assert lines[1].split() == ["a", "primary", "active", "5.2", "239.3", "MiB", "1d", "0h", "0", "ok"]
    assert lines[2].split()[:4] == ["b", "primary", "failed", "0.0"]
    assert lines[-2:] == ["1/2 agents running", "2/2 agents healthy"]


def health_cells(text: str) -> dict[str, str]:
    """{agent: what its row says from the unhealthy mark's column on} (the HEALTH column, marked)."""
    lines = text.splitlines()
    at = lines[0].index("HEALTH") - 3  # the mark's column: two spaces before HEALTH, then the mark
    return {line.split()[0]: line[at:] for line in lines[1:] if line.startswith("agent-")}


def test_unhealthy_rows_are_marked_and_say_why() -> None:
    snap = snapshot(
        agent("agent-ok"),
        agent("agent-failed", state="failed", result="exit-code", exit_code=3, exit_time_seconds=NOW - 130,
              reason="failed"),
        agent("agent-killed", state="failed", result="signal", exit_signal=9, exit_time_seconds=NOW - 5,
              reason="failed"),
        agent("agent-looping", state="activating", result="exit-code", exit_code=1, recent_starts=6, restarts=18,
              reason="crash-looping"),
        agent("agent-oom", state="failed", result="oom-kill", exit_signal=9, oom_kills=1,
              oom_time_seconds=NOW - 3700, reason="oom-killed"),
        agent("agent-limit", state="failed", result="start-limit-hit", reason="start-limit-hit"),
        agent("agent-down", state="inactive", reason="down"),
        agent("agent-late", state="inactive", expected="timer", timer="agent-late.timer",
              timer_last_seconds=NOW - 7300, timer_next_seconds=NOW - 3700, reason="timer-late"),
        agent("agent-probed", probe_success=False, probe_status=503, probe_duration_seconds=0.01,
              reason="probe-failing"),
        agent("agent-hung", probe_success=False, probe_duration_seconds=2.0, reason="probe-failing"),
        agent("agent-spare", expected="stopped", reason="running"),
        agent("agent-timer", state="inactive", expected="timer", timer="agent-timer.timer",
              timer_last_seconds=NOW - 300, timer_next_seconds=NOW + 3300),
    )
    text = table(snap)
    assert health_cells(text) == {
        "agent-ok": "   ok",
        "agent-failed": "!  failed: exit code 3, 2 min ago",
        "agent-killed": "!  failed: killed by signal 9 (SIGKILL), 5 s ago",
        "agent-looping": "!  crash-looping: 6 starts in 10 min, last: exit code 1",
        "agent-oom": "!  OOM-killed 1 h ago",
        "agent-limit": "!  start-limit-hit",
        "agent-down": "!  down",
        "agent-late": "!  timer late: last run 2 h ago",
        "agent-probed": "!  probe failing: HTTP 503",
        "agent-hung": "!  probe failing: no HTTP answer",
        "agent-spare": "!  running (expected stopped)",
        "agent-timer": "   ok",
    }
    assert text.splitlines()[-1] == "2/12 agents healthy"


def test_json_fields() -> None:
    data = as_json(snapshot(agent("a", cpu_percent=None)))
    assert data["agents"][0] == {
        "agent": "a", "type": "primary", "unit": "a.service", "state": "active", "load_state": "loaded",
        "up": True, "cpu_percent": None, "cpu_seconds": 12.5, "memory_kb": 245000.0,
        "uptime_seconds": 86400.0, "restarts": 0, "tasks": 3,
        "expected": "running", "healthy": True, "reason": None, "reason_text": "ok",
        "result": "success", "exit_code": None, "exit_signal": None, "exit_time_seconds": None,
        "starts": 1, "recent_starts": 0, "memory_max_kb": None, "memory_high_kb": None,
        "memory_peak_kb": 300000.0, "swap_kb": 0.0, "oom_kills": 0, "oom_time_seconds": None,
        "timer": None, "probe": None, "labels": {},
    }
    assert data["agents_running"] == 1 and data["agents_total"] == 1 and data["agents_healthy"] == 1
    assert data["host"]["load_average"] == {"1m": 2.5, "5m": 2.1, "15m": 1.8}


def test_json_says_why_an_agent_is_unhealthy() -> None:
    oom = agent("b", state="failed", result="oom-kill", exit_signal=9, exit_time_seconds=NOW - 60, oom_kills=2,
                oom_time_seconds=NOW - 60, memory_max_bytes=512 * 2**20, memory_high_bytes=384 * 2**20,
                reason="oom-killed", starts=7, recent_starts=2, expected="running",
                probe_success=False, probe_duration_seconds=0.25, probe_status=500,
                timer="b.timer", timer_last_seconds=NOW - 600, timer_next_seconds=NOW + 300,
                labels=(("team", "infra"),))
    row = as_json(snapshot(agent("a"), oom))["agents"][1]
    assert {k: row[k] for k in ("healthy", "reason", "reason_text", "result", "exit_signal", "exit_time_seconds",
                                "starts", "recent_starts", "oom_kills", "oom_time_seconds", "memory_max_kb",
                                "memory_high_kb", "probe", "timer", "labels")} == {
        "healthy": False, "reason": "oom-killed", "reason_text": "OOM-killed 1 min ago", "result": "oom-kill",
        "exit_signal": 9, "exit_time_seconds": NOW - 60, "starts": 7, "recent_starts": 2, "oom_kills": 2,
        "oom_time_seconds": NOW - 60, "memory_max_kb": 524288.0, "memory_high_kb": 393216.0,
        "probe": {"success": False, "duration_seconds": 0.25, "http_status": 500},
        "timer": {"unit": "b.timer", "last_trigger_seconds": NOW - 600, "next_trigger_seconds": NOW + 300},
        "labels": {"team": "infra"},
    }
    assert as_json(snapshot(agent("a"), oom))["agents_healthy"] == 1


def test_values_not_known_are_marked_with_a_legend_and_the_window_is_said() -> None:
    """'?' is a value status could not know (a running agent's CPU % without a window, memory systemd
    does not report); '-' one that does not apply (a stopped agent's uptime). The notes come under
    the totals, the legend only when a '?' is shown."""
    snap = snapshot(agent("a", cpu_percent=None, memory_bytes=None), agent("b", state="inactive",
                                                                         cpu_percent=0.0, uptime_seconds=0.0))
    lines = table(snap, ("CPU% over the last 0.5 s, sampled by status",)).splitlines()
    assert lines[1].split()[3:5] == ["?", "?"]
    assert lines[2].split()[3:6] == ["0.0", "239.3", "MiB"] and lines[2].split()[6] == "-"
    assert lines[-2:] == ["CPU% over the last 0.5 s, sampled by status",
                          "?: not known: CPU% of an agent (re)started within the window, or memory or restarts "
                          "that systemd does not report"]
    assert "?" not in table(snapshot(agent("a")))
