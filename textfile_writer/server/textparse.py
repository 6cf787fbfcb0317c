"""The writer's textfile read back: the inverse of metrics.render for what the server shows.

Only the families the landing page and /health use are read (per-agent up, state, CPU, memory,
uptime and restarts; the run's scalars); anything else, or anything not understood, is skipped, so
a hand-edited or foreign file never breaks the page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

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
}
_SCALARS = frozenset({
    "agents_running_total", "agents_total", "agent_exporter_last_success_timestamp_seconds",
    "agent_exporter_collect_errors",
})


@dataclass
class _Row:
    name: str
    type: str
    values: dict[str, float] = field(default_factory=dict)
    state: str | None = None


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
        if name not in _PER_AGENT and name != "agent_state":
            continue
        labels = {k: _unescape(v) for k, v in _LABEL.findall(label_text or "")}
        if "agent" not in labels:
            continue
        key = (labels["agent"], labels.get("type", ""))
        row = rows.get(key)
        if row is None:
            row = rows[key] = _Row(*key)
        if name == "agent_state":
            if value == 1 and "state" in labels:
                row.state = labels["state"]
        else:
            row.values[_PER_AGENT[name]] = value
    agents = tuple(
        AgentRow(
            name=r.name, type=r.type, state=r.state,
            up=None if "up" not in r.values else r.values["up"] == 1,
            cpu_percent=r.values.get("cpu_percent"), memory_kb=r.values.get("memory_kb"),
            uptime_seconds=r.values.get("uptime_seconds"), restarts=r.values.get("restarts"),
        )
        for r in rows.values()
    )
    return TextfileSummary(agents, scalars)
