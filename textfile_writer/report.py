"""What `agent-exporter status` shows: the snapshot as a table for people or as JSON."""

from __future__ import annotations

from typing import Any

from . import humanize
from .model import AgentSample, Snapshot


def _row(a: AgentSample) -> list[str]:
    state = a.state if a.load_state != "not-found" else "not-found"
    memory = None if a.memory_bytes is None else a.memory_bytes / 1024
    uptime = humanize.duration(a.uptime_seconds) if a.up else "-"
    return [a.name, a.type, state, humanize.percent(a.cpu_percent), humanize.size_kb(memory), uptime,
            humanize.count(a.restarts)]


def table(snap: Snapshot) -> str:
    header = ["AGENT", "TYPE", "STATE", "CPU%", "MEMORY", "UPTIME", "RESTARTS"]
    rows = [_row(a) for a in sorted(snap.agents, key=lambda a: (a.type, a.name))]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    right = {3, 4, 5, 6}

    def fmt(row: list[str]) -> str:
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        return "  ".join(cells).rstrip()

    lines = [fmt(header), *(fmt(r) for r in rows)]
    lines.append(f"{snap.running}/{len(snap.agents)} agents running")
    return "\n".join(lines)


def as_json(snap: Snapshot) -> dict[str, Any]:
    host = snap.host

    def kb(v: int | None) -> float | None:
        return None if v is None else v / 1024

    return {
        "agents": [{
            "agent": a.name, "type": a.type, "unit": a.unit, "state": a.state,
            "load_state": a.load_state, "up": a.up, "cpu_percent": a.cpu_percent,
            "cpu_seconds": a.cpu_seconds, "memory_kb": kb(a.memory_bytes),
            "uptime_seconds": round(a.uptime_seconds, 3), "restarts": a.restarts, "tasks": a.tasks,
        } for a in sorted(snap.agents, key=lambda a: (a.name, a.unit))],
        "agents_running": snap.running,
        "agents_total": len(snap.agents),
        "host": {
            "memory_total_kb": kb(host.memory_total_bytes),
            "memory_used_kb": kb(host.memory_used_bytes),
            "disk_total_kb": kb(host.disk_total_bytes), "disk_used_kb": kb(host.disk_used_bytes),
            "load_average": None if host.load is None else dict(zip(("1m", "5m", "15m"), host.load, strict=True)),
        },
        "collect_errors": snap.collect_errors,
    }
