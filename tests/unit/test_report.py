"""report.py: the status table and JSON."""

from __future__ import annotations

from builders import agent, snapshot

from textfile_writer.report import as_json, human_bytes, human_duration, table


def test_human_units() -> None:
    assert human_bytes(None) == "-"
    assert human_bytes(512) == "512 B"
    assert human_bytes(50 * 2**20) == "50.0 MiB"
    assert human_bytes(3 * 2**30) == "3.0 GiB"
    assert human_duration(0) == "-"
    assert human_duration(59) == "59s"
    assert human_duration(3600 + 120) == "1h 2m"
    assert human_duration(2 * 86400 + 3 * 3600) == "2d 3h"


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
