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
    swap_total_bytes: int | None = None  # not rendered: tells whether agents' swap is worth reading


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
    # Why it last stopped, and how often it starts (health.py)
    result: str | None = None  # systemd's Result as health.RESULTS or "other"; None: no such unit
    exit_code: int | None = None  # the main process's exit status, when it exited
    exit_signal: int | None = None  # the signal that killed it, when one did
    exit_time_seconds: float | None = None  # Unix time the main process last exited
    starts: int | None = None  # agent_starts_total
    recent_starts: int = 0  # starts within defaults.CRASH_LOOP_WINDOW
    # Memory limits and OOM kills
    memory_max_bytes: int | None = None
    memory_high_bytes: int | None = None
    memory_peak_bytes: int | None = None
    swap_bytes: int | None = None
    oom_kills: int | None = None  # agent_oom_kills_total; None where nothing can tell
    oom_time_seconds: float | None = None  # Unix time of the last OOM kill counted
    # Expectation and health
    expected: str = "running"
    reason: str | None = None  # None: healthy; else one of health.REASONS
    timer: str | None = None  # the timer that starts it
    timer_last_seconds: float | None = None
    timer_next_seconds: float | None = None
    probe_success: bool | None = None  # None: no probe
    probe_duration_seconds: float | None = None
    probe_status: int | None = None
    labels: tuple[tuple[str, str], ...] = ()  # the config's labels, for agent_info
    user: str | None = None  # whose manager runs it, in a run over several users' (users.py); else None

    @property
    def up(self) -> bool:
        return self.state in UP_STATES

    @property
    def healthy(self) -> bool:
        return self.reason is None


class Snapshot(NamedTuple):
    agents: tuple[AgentSample, ...]
    host: HostSample
    timestamp: float
    duration_seconds: float
    collect_errors: int
    version: str
    by_user: bool = False  # several users' managers (users.py): every per-agent family has a `user` label

    @property
    def running(self) -> int:
        return sum(1 for a in self.agents if a.up)
