"""The writer's textfile read back: the inverse of metrics.render for what the server shows.

Only the families the landing page and /health use are read (per-agent up, state, CPU, memory,
uptime and restarts, health and what its words are made of; the run's scalars); anything else, or
anything not understood, is skipped, so a hand-edited or foreign file never breaks the page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..healthtext import Facts

# name{labels} value — labels are name="value" pairs with \\, \" and \n escapes.
_SAMPLE = re.compile(
    r'([a-zA-Z_:][a-zA-Z0-9_:]*)'
    r'(?:\{((?:\s*[a-zA-Z_][a-zA-Z0-9_]*\s*=\s*"(?:[^"\\\n]|\\.)*"\s*,?)*)\s*\})?'
    r'[ \t]+(\S+)'
)
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\\n]|\\.)*)"')
_ESCAPE = re.compile(r"\\(.)")
_PER_AGENT = {
    "agent_up": "up", "agent_cpu_percent": "cpu_percent", "agent_memory_kb": "memory_kb",
    "agent_uptime_seconds": "uptime_seconds", "agent_restart_count": "restarts",
    "agent_healthy": "healthy", "agent_last_exit_code": "exit_code", "agent_last_exit_signal": "exit_signal",
    "agent_last_exit_timestamp_seconds": "exit_time", "agent_recent_starts": "recent_starts",
    "agent_last_oom_kill_timestamp_seconds": "oom_time", "agent_timer_last_trigger_timestamp_seconds": "timer_last",
    "agent_probe_http_status": "probe_status",
}
# Families whose value is 1 for one label value: the family, and that label's name.
_LABELLED = {"agent_state": "state", "agent_last_result": "result", "agent_unhealthy_reason": "reason",
             "agent_expected_state": "expected"}
_SCALARS = frozenset({
    "agents_running_total", "agents_total", "agent_exporter_last_success_timestamp_seconds",
    "agent_exporter_collect_errors",
})


@dataclass
class _Row:
    name: str
    type: str
    values: dict[str, float] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)  # from the _LABELLED families


@dataclass(frozen=True)
class AgentRow:
    name: str
    type: str
    state: str | None  # systemd's ActiveState from agent_state; None when the file has no agent_state
    up: bool | None
    cpu_percent: float | None
    memory_kb: float | None
    uptime_seconds: float | None
    restarts: float | None
    healthy: bool | None  # None when the file says nothing of health (an older writer's)
    expected: str | None  # agent_expected_state
    health: Facts  # what healthtext.describe words; its reason None while healthy

    @property
    def shown_state(self) -> str:
        if self.state is not None:
            return self.state
        if self.up is None:
            return "unknown"
        return "up" if self.up else "down"


@dataclass(frozen=True)
class TextfileSummary:
    agents: tuple[AgentRow, ...]
    scalars: dict[str, float]  # unlabelled samples of the families in _SCALARS

    @property
    def last_success(self) -> float | None:
        return self.scalars.get("agent_exporter_last_success_timestamp_seconds")


def _unescape(value: str) -> str:
    return _ESCAPE.sub(lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def parse_textfile(data: bytes) -> TextfileSummary:
    rows: dict[tuple[str, str], _Row] = {}
    scalars: dict[str, float] = {}
    # Lines end in \n only: a label value may hold \r or U+2028 unescaped, which splitlines() would cut.
    for raw in data.decode("utf-8", errors="replace").split("\n"):
        if not raw.startswith("agent"):  # every family we read starts so; skips comments fast
            continue
        m = _SAMPLE.match(raw)
        if m is None:
            continue
        name, label_text, value_text = m.groups()
        value = _float(value_text)
        if value is None:
            continue
        if name in _SCALARS and not label_text:
            scalars[name] = value
            continue
        if name not in _PER_AGENT and name not in _LABELLED:
            continue
        labels = {k: _unescape(v) for k, v in _LABEL.findall(label_text or "")}
        if "agent" not in labels:
            continue
        key = (labels["agent"], labels.get("type", ""))
        row = rows.get(key)
        if row is None:
            row = rows[key] = _Row(*key)
        if name in _LABELLED:
            if value == 1 and _LABELLED[name] in labels:
                row.labels[_LABELLED[name]] = labels[_LABELLED[name]]
        else:
            row.values[_PER_AGENT[name]] = value
    return TextfileSummary(tuple(_agent(r) for r in rows.values()), scalars)


def _agent(r: _Row) -> AgentRow:
    v, reason = r.values, r.labels.get("reason")
    # Unhealthy when either family says so: a reason without agent_healthy 0 is still a reason.
    healthy = None if "healthy" not in v and reason is None else v.get("healthy") == 1 and reason is None
    return AgentRow(
        name=r.name, type=r.type, state=r.labels.get("state"),
        up=None if "up" not in v else v["up"] == 1,
        cpu_percent=v.get("cpu_percent"), memory_kb=v.get("memory_kb"),
        uptime_seconds=v.get("uptime_seconds"), restarts=v.get("restarts"),
        healthy=healthy, expected=r.labels.get("expected"),
        health=Facts(reason or ("unhealthy" if healthy is False else None), r.labels.get("result"),
                     v.get("exit_code"), v.get("exit_signal"), v.get("exit_time"), v.get("recent_starts"),
                     v.get("oom_time"), v.get("timer_last"), v.get("probe_status")),
    )
