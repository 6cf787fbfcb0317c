"""What `agent-exporter status` shows: the snapshot as a table for people or as JSON."""

from __future__ import annotations

from typing import Any

from . import healthtext, humanize
from .model import AgentSample, Snapshot

UNHEALTHY_MARK = "!"  # (a character, not a colour: the table is read in logs and pipes too)
UNKNOWN = "?"  # a value that could not be known (not one that does not apply, such as a stopped agent's uptime: -)
LEGEND = (f"{UNKNOWN}: not known: CPU% of an agent (re)started within the window, or memory or restarts that "
          "systemd does not report")


def facts(a: AgentSample) -> healthtext.Facts:
    return healthtext.Facts(a.reason, a.result, a.exit_code, a.exit_signal, a.exit_time_seconds,
                            a.recent_starts, a.oom_time_seconds, a.timer_last_seconds, a.probe_status)


def _row(a: AgentSample, now: float) -> list[str]:
    state = a.state if a.load_state != "not-found" else "not-found"
    memory = None if a.memory_bytes is None else a.memory_bytes / 1024
    uptime = humanize.duration(a.uptime_seconds) if a.up else "-"
    return [a.name, a.type, state, humanize.percent(a.cpu_percent, UNKNOWN), humanize.size_kb(memory, UNKNOWN),
            uptime, humanize.count(a.restarts, UNKNOWN), "" if a.healthy else UNHEALTHY_MARK,
            healthtext.describe(facts(a), now)]


def table(snap: Snapshot, notes: tuple[str, ...] = ()) -> str:
    """One row an agent; an unhealthy one has UNHEALTHY_MARK before its health, which says why. Under
    the totals the `notes` (what CPU% is measured over), and the legend when a value is UNKNOWN."""
    header = ["AGENT", "TYPE", "STATE", "CPU%", "MEMORY", "UPTIME", "RESTARTS", "", "HEALTH"]
    rows = [_row(a, snap.timestamp) for a in sorted(snap.agents, key=lambda a: (a.type, a.name))]
    right = {3, 4, 5, 6}
    if snap.by_user:  # several users' managers: whose agent it is, first
        header = ["USER", *header]
        rows = [[a.user or "", *_row(a, snap.timestamp)]
                for a in sorted(snap.agents, key=lambda a: (a.user or "", a.type, a.name))]
        right = {i + 1 for i in right}
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def fmt(row: list[str]) -> str:
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        return "  ".join(cells).rstrip()

    lines = [fmt(header), *(fmt(r) for r in rows)]
    lines.append(f"{snap.running}/{len(snap.agents)} agents running")
    lines.append(f"{sum(a.healthy for a in snap.agents)}/{len(snap.agents)} agents healthy")
    lines += notes
    if any(UNKNOWN in r[3:7] for r in rows):
        lines.append(LEGEND)
    return "\n".join(lines)


def _kb(v: int | None) -> float | None:
    return None if v is None else v / 1024


def _agent(a: AgentSample, now: float) -> dict[str, Any]:
    return {
        "agent": a.name, "type": a.type, "unit": a.unit, "state": a.state,
        "load_state": a.load_state, "up": a.up, "cpu_percent": a.cpu_percent,
        "cpu_seconds": a.cpu_seconds, "memory_kb": _kb(a.memory_bytes),
        "uptime_seconds": round(a.uptime_seconds, 3), "restarts": a.restarts, "tasks": a.tasks,
        "expected": a.expected, "healthy": a.healthy, "reason": a.reason,
        "reason_text": healthtext.describe(facts(a), now),
        "result": a.result, "exit_code": a.exit_code, "exit_signal": a.exit_signal,
        "exit_time_seconds": a.exit_time_seconds, "starts": a.starts, "recent_starts": a.recent_starts,
        "memory_max_kb": _kb(a.memory_max_bytes), "memory_high_kb": _kb(a.memory_high_bytes),
        "memory_peak_kb": _kb(a.memory_peak_bytes), "swap_kb": _kb(a.swap_bytes),
        "oom_kills": a.oom_kills, "oom_time_seconds": a.oom_time_seconds,
        "timer": None if a.timer is None else {
            "unit": a.timer, "last_trigger_seconds": a.timer_last_seconds,
            "next_trigger_seconds": a.timer_next_seconds},
        "probe": None if a.probe_success is None else {
            "success": a.probe_success, "duration_seconds": a.probe_duration_seconds,
            "http_status": a.probe_status},
        "labels": dict(a.labels),
        **({} if a.user is None else {"user": a.user}),
    }


def as_json(snap: Snapshot) -> dict[str, Any]:
    host = snap.host
    return {
        "agents": [_agent(a, snap.timestamp) for a in sorted(snap.agents, key=lambda a: (a.name, a.unit))],
        "agents_running": snap.running,
        "agents_total": len(snap.agents),
        "agents_healthy": sum(a.healthy for a in snap.agents),
        "host": {
            "memory_total_kb": _kb(host.memory_total_bytes),
            "memory_used_kb": _kb(host.memory_used_bytes),
            "disk_total_kb": _kb(host.disk_total_bytes), "disk_used_kb": _kb(host.disk_used_bytes),
            "load_average": None if host.load is None else dict(zip(("1m", "5m", "15m"), host.load, strict=True)),
        },
        "collect_errors": snap.collect_errors,
    }
