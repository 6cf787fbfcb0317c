"""The model of one run: what the collectors fill in and metrics.py renders. Values only: no I/O here,
and nothing but records.NamedTuple imported, because the writer's hot path loads it every run."""

from __future__ import annotations

from .records import NamedTuple


class HostSample(NamedTuple):
    memory_total_bytes: int | None
    memory_used_bytes: int | None
    disk_total_bytes: int | None
    disk_used_bytes: int | None
    load: tuple[float, float, float] | None


STATES = ("active", "reloading", "inactive", "failed", "activating", "deactivating")
UP_STATES = frozenset({"active", "reloading"})


class AgentSample(NamedTuple):
    name: str
    type: str
    unit: str
    scope: str
    state: str  # systemd's ActiveState
    load_state: str
    memory_bytes: int | None
    cpu_seconds: float | None
    cpu_percent: float | None
    uptime_seconds: float
    start_time_seconds: float | None
    restarts: int | None
    tasks: int | None

    @property
    def up(self) -> bool:
        return self.state in UP_STATES


class Snapshot(NamedTuple):
    agents: tuple[AgentSample, ...]
    host: HostSample
    timestamp: float
    duration_seconds: float
    collect_errors: int
    version: str

    @property
    def running(self) -> int:
        return sum(1 for a in self.agents if a.up)
