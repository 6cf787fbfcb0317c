"""What `agent-exporter status` shows: the snapshot as a table for people or as JSON."""

from __future__ import annotations

from typing import Any

from .metrics import AgentSample, Snapshot


def human_bytes(value: int | None) -> str:
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def human_duration(seconds: float) -> str:
    s = int(seconds)
    if s <= 0:
        return "-"
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {s}s"
    return f"{s}s"


def _row(a: AgentSample) -> list[str]:
    cpu = "-" if a.cpu_percent is None else f"{a.cpu_percent:.1f}"
    restarts = "-" if a.restarts is None else str(a.restarts)
    state = a.state if a.load_state != "not-found" else "not-found"
    return [a.name, a.type, state, cpu, human_bytes(a.memory_bytes),
            human_duration(a.uptime_seconds), restarts]


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
