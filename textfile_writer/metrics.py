"""A run's Snapshot (model.py) rendered as Prometheus text exposition format 0.0.4.

Families come in a fixed order, agents sorted by name then unit, every family with HELP and TYPE,
no timestamps; label values and help text are escaped as the format requires. An unknown value is
an absent sample, never a made-up number.
"""

from __future__ import annotations

from .model import STATES, UP_STATES, AgentSample, Snapshot

TYPE_CHECKING = False  # typing, collections.abc: names for the type checker only
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

_INF = float("inf")
_VERBATIM = (int, str)  # column values an f-string writes as they are
_EXACT = float(2**53)  # floats below this in magnitude are whole numbers exactly when is_integer()

# A host or run family's sample: (its labels, rendered: `period="1m"`, or "" for none; its value or
# None for absent). Per-agent families go through column(): each agent's labels rendered once.
Sample = tuple[str, float | int | None]


def escape_label(value: str) -> str:
    if "\\" not in value and "\n" not in value and '"' not in value:  # nearly every value: nothing to do
        return value
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def escape_help(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def labels(**pairs: str) -> str:
    return ",".join(f'{k}="{escape_label(v)}"' for k, v in pairs.items())


def format_value(value: float | int) -> str:
    kind = type(value)
    if kind is int:  # the common cases first: render runs ~20 times per agent
        return str(value)
    if kind is float and -_EXACT < value < _EXACT:  # finite (NaN compares false)
        return str(int(value)) if float.is_integer(value) else repr(value)
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if value != value:  # NaN (math.isnan without importing math on the hot path)
        return "NaN"
    if value in (_INF, -_INF):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def header(name: str, kind: str, help_text: str) -> list[str]:
    return [f"# HELP {name} {escape_help(help_text)}", f"# TYPE {name} {kind}"]


def family(name: str, kind: str, help_text: str, samples: Iterable[Sample]) -> list[str]:
    return header(name, kind, help_text) + [
        f"{name}{{{text}}} {format_value(value)}" if text else f"{name} {format_value(value)}"
        for text, value in samples if value is not None]


def _kb(value: int | None) -> float | int | None:
    if value is None:
        return None
    # Memory comes in whole pages: an int is formatted without a float's checks (same text).
    return value // 1024 if value % 1024 == 0 else value / 1024


# agent_state's six lines of one agent, for each state it can be in, its labels left as \0: one
# replace() an agent instead of six formatted lines.
_STATE_LINES = {
    current: "\n".join(f'agent_state{{\0,state="{s}"}} {"1" if s == current else "0"}' for s in STATES)
    for current in STATES}
_STATE_NONE = "\n".join(f'agent_state{{\0,state="{s}"}} 0' for s in STATES)


def _ms(value: float | None) -> str | None:
    """To three decimal places, as format_value(round(value, 3)) writes it (every timestamp and
    duration family), from one correctly rounded fixed-point format instead of round() and repr's
    shortest-digits search: a third of the cost, and the same text wherever the value has at most 15
    significant digits, as any Unix time or uptime here has."""
    if value is None:
        return None
    if 0 < value < 1e12:  # (NaN compares false; 0.0 is "0")
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return format_value(round(value, 3))


def _ns(value: float | None) -> str | None:
    """A count of nanoseconds in seconds (cpu_ns / 1e9) as format_value writes it, by the same
    route as _ms: nine places give repr's digits wherever repr would not use an exponent (from 1e-4)
    and the digits fit a double (below 1e6 s)."""
    if value is None:
        return None
    if 1e-4 <= value < 1e6:
        return f"{value:.9f}".rstrip("0").rstrip(".")
    return format_value(value)


def column(name: str, kind: str, help_text: str, keys: Sequence[str | None],
           values: Iterable[str | float | int | None]) -> list[str]:
    """A per-agent family: each agent's rendered labels (keys) with its value, None for absent (a
    key is None only where the value is). The values come as one list per family rather than
    through a getter call per agent (half the time); an int is formatted inline (most values), a str
    is one formatted already (_ms, _ns)."""
    return header(name, kind, help_text) + [
        f"{name}{{{key}}} {value if type(value) in _VERBATIM else format_value(value)}"  # type: ignore[arg-type]
        for key, value in zip(keys, values, strict=True) if value is not None]


def _with(keys: list[str], name: str, values: Iterable[str | None]) -> list[str | None]:
    """Each agent's labels with one more (None where the agent has no value for it)."""
    return [None if v is None else f'{k},{name}="{escape_label(v)}"' for k, v in zip(keys, values, strict=True)]


def _labelled(name: str, kind: str, help_text: str, keys: list[str | None]) -> list[str]:
    """An info-style family: 1 for each agent with a label value (keys from _with), no line for the others."""
    return header(name, kind, help_text) + [f"{name}{{{key}}} 1" for key in keys if key is not None]


def _diagnostics(keys: list[str], agents: list[AgentSample]) -> list[str]:
    """Why an agent stopped, how often it starts, its memory limits and OOM kills, its health (issue 12)."""
    timer_keys = _with(keys, "timer", [a.timer for a in agents])
    return [
        *_labelled("agent_last_result", "gauge",
                   "systemd's Result of the agent unit's last run: success, exit-code, signal, core-dump, "
                   "timeout, watchdog, oom-kill, start-limit-hit, resources, protocol, exec-condition or "
                   "other; always 1, no sample for a unit that does not exist.",
                   _with(keys, "result", [a.result for a in agents])),
        *column("agent_last_exit_code", "gauge",
                "Exit status of the agent's main process when it last exited by itself.",
                keys, [a.exit_code for a in agents]),
        *column("agent_last_exit_signal", "gauge",
                "Number of the signal that last killed the agent's main process.",
                keys, [a.exit_signal for a in agents]),
        *column("agent_last_exit_timestamp_seconds", "gauge",
                "Unix time the agent's main process last exited.",
                keys, [_ms(a.exit_time_seconds) for a in agents]),
        *column("agent_starts_total", "counter",
                "Starts of the agent's unit seen by the writer: a new invocation, manual restarts included, "
                "or more automatic restarts (NRestarts) than that between two runs.",
                keys, [a.starts for a in agents]),
        *column("agent_recent_starts", "gauge",
                "Starts within the last 10 minutes, when there were any (5 make an agent crash-looping).",
                keys, [a.recent_starts or None for a in agents]),
        *column("agent_memory_max_bytes", "gauge",
                "The agent unit's MemoryMax; no sample when unlimited.", keys, [a.memory_max_bytes for a in agents]),
        *column("agent_memory_high_bytes", "gauge",
                "The agent unit's MemoryHigh; no sample when unlimited.",
                keys, [a.memory_high_bytes for a in agents]),
        *column("agent_memory_peak_bytes", "gauge",
                "The most memory the agent's cgroup has used; no sample where the cgroup does not keep it.",
                keys, [a.memory_peak_bytes for a in agents]),
        *column("agent_memory_swap_bytes", "gauge",
                "Swap used by the agent's cgroup; no sample on a host without swap.",
                keys, [a.swap_bytes for a in agents]),
        *column("agent_oom_kills_total", "counter",
                "Processes of the agent killed by the kernel's OOM killer; no sample where the host cannot tell.",
                keys, [a.oom_kills for a in agents]),
        *column("agent_last_oom_kill_timestamp_seconds", "gauge",
                "Unix time the writer last counted an OOM kill of the agent.",
                keys, [_ms(a.oom_time_seconds) for a in agents]),
        *_labelled("agent_expected_state", "gauge",
                   "What the agent is expected to do: running, oneshot, timer or stopped; always 1.",
                   _with(keys, "expected", [a.expected for a in agents])),
        *column("agent_healthy", "gauge", "1 when the agent is as expected, else 0.",
                keys, [0 if a.reason else 1 for a in agents]),
        *_labelled("agent_unhealthy_reason", "gauge",
                   "Why the agent is unhealthy: oom-killed, start-limit-hit, crash-looping, failed, down, "
                   "running (expected stopped), timer-late or probe-failing; always 1, only while unhealthy.",
                   _with(keys, "reason", [a.reason for a in agents])),
        *column("agent_timer_last_trigger_timestamp_seconds", "gauge",
                "Unix time the timer that starts the agent last fired.",
                timer_keys, [_ms(a.timer_last_seconds) if a.timer else None for a in agents]),
        *column("agent_timer_next_trigger_timestamp_seconds", "gauge",
                "Unix time the timer that starts the agent fires next.",
                timer_keys, [_ms(a.timer_next_seconds) if a.timer else None for a in agents]),
        *column("agent_probe_success", "gauge",
                "1 when the agent's HTTP probe got the expected status in time, else 0.",
                keys, [None if a.probe_success is None else int(a.probe_success) for a in agents]),
        *column("agent_probe_duration_seconds", "gauge", "How long the agent's HTTP probe took.",
                keys, [a.probe_duration_seconds for a in agents]),
        *column("agent_probe_http_status", "gauge",
                "The HTTP status the agent's probe got; no sample when none came (refused, timeout).",
                keys, [a.probe_status for a in agents]),
    ]


def render(snap: Snapshot) -> str:
    agents = sorted(snap.agents, key=lambda a: (a.name, a.unit))
    esc = escape_label
    keys = [f'agent="{esc(a.name)}",type="{esc(a.type)}"' for a in agents]
    if snap.by_user:  # (agents of the same name and unit stay in the users' order: sorted() is stable)
        keys = [f'{key},user="{esc(a.user or "")}"' for key, a in zip(keys, agents, strict=True)]
    host = snap.host
    load = host.load
    out: list[str] = []
    out += column("agent_up", "gauge",
                  "1 when the agent's unit is active or reloading, else 0 (also when it does not exist).",
                  keys, [1 if a.state in UP_STATES else 0 for a in agents])
    out += column("agent_memory_kb", "gauge",
                  "Memory of the agent's whole cgroup in KiB (RSS of its processes when systemd and "
                  "the cgroup cannot tell); 0 when stopped.",
                  keys, [_kb(a.memory_bytes) for a in agents])
    out += column("agent_cpu_percent", "gauge",
                  "CPU used by the agent since the previous run, in percent of one core; absent "
                  "when there is no previous run to compare with.",
                  keys, [a.cpu_percent for a in agents])
    out += column("agent_uptime_seconds", "gauge",
                  "Seconds since the agent's unit last became active; 0 when down.",
                  keys, [_ms(a.uptime_seconds) for a in agents])
    out += column("agent_restart_count", "counter",
                  "Automatic restarts of the agent's unit counted by systemd (NRestarts).",
                  keys, [a.restarts for a in agents])
    out += family("agents_running_total", "gauge", "Agents with agent_up 1.",
                  [("", snap.running)])
    out += family("agents_total", "gauge", "Agents configured and discovered.",
                  [("", len(agents))])
    out += family("system_memory_used_kb", "gauge",
                  "Host memory in use in KiB (MemTotal - MemAvailable).",
                  [("", _kb(host.memory_used_bytes))])
    out += family("system_memory_total_kb", "gauge", "Host memory in KiB (MemTotal).",
                  [("", _kb(host.memory_total_bytes))])
    out += family("system_disk_used_kb", "gauge",
                  "Used space in KiB of the filesystem at disk_path.",
                  [("", _kb(host.disk_used_bytes))])
    out += family("system_disk_total_kb", "gauge",
                  "Size in KiB of the filesystem at disk_path.",
                  [("", _kb(host.disk_total_bytes))])
    out += family("system_load_average", "gauge", "Host load average over the period.",
                  [(labels(period=p), None if load is None else load[i])
                   for i, p in enumerate(("1m", "5m", "15m"))])
    # Six lines an agent, the most of any family: written out directly.
    out += header("agent_state", "gauge", "1 for the agent unit's current ActiveState, 0 for the others.")
    out += [_STATE_LINES.get(a.state, _STATE_NONE).replace("\0", key) for key, a in zip(keys, agents, strict=True)]
    out += column("agent_cpu_seconds_total", "counter",
                  "CPU time used by the agent's cgroup, in seconds.",
                  keys, [_ns(a.cpu_seconds) for a in agents])
    out += column("agent_tasks", "gauge", "Tasks (threads) in the agent's cgroup.",
                  keys, [a.tasks for a in agents])
    out += column("agent_start_time_seconds", "gauge",
                  "Unix time the agent's unit last became active.",
                  keys, [_ms(a.start_time_seconds) for a in agents])
    out += column("agent_info", "gauge",
                  "The systemd unit behind each agent, and the labels its configuration gives it; always 1.",
                  [f'{key},unit="{esc(a.unit)}",scope="{esc(a.scope)}"'
                   + (f",{labels(**dict(a.labels))}" if a.labels else "") for key, a in zip(keys, agents, strict=True)],
                  [1] * len(agents))
    out += _diagnostics(keys, agents)
    out += family("agent_exporter_last_success_timestamp_seconds", "gauge",
                  "Unix time this file was produced.", [("", round(snap.timestamp, 3))])
    out += family("agent_exporter_run_duration_seconds", "gauge",
                  "How long the run that produced this file took, in seconds.",
                  [("", round(snap.duration_seconds, 6))])
    out += family("agent_exporter_collect_errors", "gauge",
                  "Problems met in this run (a unit that could not be read, a fallback that "
                  "failed); details are in the writer's log.",
                  [("", snap.collect_errors)])
    out += family("agent_exporter_build_info", "gauge", "agent-exporter's version; always 1.",
                  [(labels(version=snap.version), 1)])
    out.append("")
    return "\n".join(out)
