"""Model values for the tests of rendering and reporting."""

from __future__ import annotations

from textfile_writer.model import AgentSample, HostSample, Snapshot

HOST = HostSample(memory_total_bytes=32 * 2**30, memory_used_bytes=8 * 2**30,
                  disk_total_bytes=100 * 2**30, disk_used_bytes=25 * 2**30, load=(2.5, 2.1, 1.8))


def agent(name: str = "agent-core_dev", **kw: object) -> AgentSample:
    base = AgentSample(
        name=name, type="primary", unit=f"{name}.service", scope="user", state="active",
        load_state="loaded", memory_bytes=245000 * 1024, cpu_seconds=12.5, cpu_percent=5.2,
        uptime_seconds=86400.0, start_time_seconds=1795400000.0, restarts=0, tasks=3,
        result="success", starts=1, memory_peak_bytes=300000 * 1024, swap_bytes=0, oom_kills=0,
    )
    return base._replace(**kw)  # type: ignore[arg-type]


def snapshot(*agents: AgentSample, host: HostSample = HOST) -> Snapshot:
    return Snapshot(agents=agents, host=host, timestamp=1795486400.5, duration_seconds=0.0125,
                    collect_errors=0, version="0.1.0")
