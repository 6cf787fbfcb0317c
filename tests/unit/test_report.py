"""report.py: the status table and JSON."""

from __future__ import annotations

from builders import agent, snapshot

from textfile_writer import humanize
from textfile_writer.report import as_json, table


def test_human_units() -> None:
    assert [humanize.size_kb(v) for v in (None, 0, 512.0, 50 * 1024.0, 3 * 2**20, float("nan"))] == [
        "-", "0 KiB", "512 KiB", "50.0 MiB", "3.0 GiB", "-"]
    assert [humanize.duration(v) for v in (None, -1, 0, 59, 3600 + 120, 2 * 86400 + 3 * 3600)] == [
        "-", "-", "0s", "59s", "1h 2m", "2d 3h"]
    assert humanize.percent(3.14159) == "3.1" and humanize.percent(3.14159, suffix=" %") == "3.1 %"
    assert humanize.count(None, missing="?") == "?" and humanize.count(7.0) == "7"


def test_table_has_one_row_per_agent_and_a_summary() -> None:
    snap = snapshot(agent("a"), agent("b", state="failed", cpu_percent=0.0, uptime_seconds=0.0))
    lines = table(snap).splitlines()
    assert lines[0].split() == ["AGENT", "TYPE", "STATE", "CPU%", "MEMORY", "UPTIME", "RESTARTS"]
    assert lines[1].split() == ["a", "primary", "active", "5.2", "239.3", "MiB", "1d", "0h", "0"]
    assert lines[2].split()[:4] == ["b", "primary", "failed", "0.0"]
    assert lines[-1] == "1/2 agents running"


def test_json_fields() -> None:
    data = as_json(snapshot(agent("a", cpu_percent=None)))
    assert data["agents"][0] == {
        "agent": "a", "type": "primary", "unit": "a.service", "state": "active", "load_state": "loaded",
        "up": True, "cpu_percent": None, "cpu_seconds": 12.5, "memory_kb": 245000.0,
        "uptime_seconds": 86400.0, "restarts": 0, "tasks": 3,
    }
    assert data["agents_running"] == 1 and data["agents_total"] == 1
    assert data["host"]["load_average"] == {"1m": 2.5, "5m": 2.1, "15m": 1.8}
