"""textparse.py: the writer's textfile read back, checked against the writer's own renderer."""

from __future__ import annotations

import math

from builders import agent, snapshot
from hypothesis import given, settings
from hypothesis import strategies as st

from devtools.textfiles import fleet, render
from textfile_writer import health
from textfile_writer.healthtext import Facts, describe
from textfile_writer.metrics import render as render_snapshot
from textfile_writer.model import STATES, UP_STATES, AgentSample
from textfile_writer.report import facts
from textfile_writer.server.textparse import AgentRow, parse_textfile


def _ms(t: float | None) -> float | None:
    return None if t is None else round(t, 3)


def expected_row(a: AgentSample) -> AgentRow:
    """What the page should show for an agent the writer rendered: every value it wrote (times to the
    millisecond, as metrics.py writes them), nothing else."""
    return AgentRow(name=a.name, type=a.type, state=a.state, up=a.state in UP_STATES,
                    cpu_percent=a.cpu_percent, memory_kb=None if a.memory_bytes is None else a.memory_bytes / 1024,
                    uptime_seconds=round(a.uptime_seconds, 3),
                    restarts=None if a.restarts is None else float(a.restarts),
                    healthy=a.reason is None, expected=a.expected,
                    health=Facts(a.reason, a.result, a.exit_code, a.exit_signal, _ms(a.exit_time_seconds),
                                 a.recent_starts or None, _ms(a.oom_time_seconds),
                                 _ms(a.timer_last_seconds) if a.timer else None, a.probe_status))


def rows_by_key(rows: tuple[AgentRow, ...]) -> dict[tuple[str, str], AgentRow]:
    return {(r.name, r.type): r for r in rows}


def test_parse_reads_every_agent_of_the_file() -> None:
    summary = parse_textfile(render(fleet(), timestamp=1700000000.5))
    assert len(summary.agents) == 16
    by_name = {a.name: a for a in summary.agents}
    gw = by_name["agent-gateway"]
    assert (gw.type, gw.state, gw.up, gw.cpu_percent, gw.memory_kb, gw.uptime_seconds, gw.restarts) == \
        ("support", "active", True, 12.3, 1536000.0, 90061.0, 1)
    browser = by_name["agent-browser_dev"]
    assert (browser.state, browser.up, browser.restarts) == ("failed", False, 7)
    assert by_name["agent-backup"].cpu_percent is None  # absent in the file, not made up
    assert summary.last_success == 1700000000.5
    assert summary.scalars["agents_total"] == 16
    assert summary.scalars["agents_running_total"] == 14


def test_parse_unescapes_label_values_and_survives_junk() -> None:
    text = (b'# HELP agent_up x\n# TYPE agent_up gauge\n'
            b'agent_up{agent="we\\"ird\\\\na\\nme",type="primary"} 1\n'
            b'agent_up{agent="broken} 1\n'
            b'agent_up{type="no-agent"} 1\n'
            b'agent_cpu_percent{agent="we\\"ird\\\\na\\nme",type="primary"} NaN\n'
            b'agent_restart_count{agent="x", type="support"} +Inf\n'
            b'not a sample at all\n\xff\xfe\n')
    summary = parse_textfile(text)
    names = [a.name for a in summary.agents]
    assert names == ['we"ird\\na\nme', "x"]
    assert summary.agents[0].shown_state == "up"
    assert summary.agents[1].shown_state == "unknown"


# Names and types as a config may give them: any text (quotes, backslashes, newlines, Unicode line
# separators), which the renderer escapes and the parser must read back exactly.
_names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=24)
_optional_number = st.one_of(st.none(), st.floats(min_value=0, max_value=1e12, allow_nan=False))


@st.composite
def agents(draw: st.DrawFn) -> tuple[AgentSample, ...]:
    names = draw(st.lists(_names, min_size=0, max_size=8, unique=True))
    out = []
    for name in names:
        memory = draw(st.one_of(st.none(), st.integers(min_value=0, max_value=2**50)))
        restarts = draw(st.one_of(st.none(), st.integers(min_value=0, max_value=10**6)))
        out.append(agent(name, type=draw(_names), state=draw(st.sampled_from(STATES)), memory_bytes=memory,
                         cpu_percent=draw(_optional_number), uptime_seconds=draw(st.floats(0, 1e9)),
                         restarts=restarts, **draw(health_fields())))
    return tuple(out)


_NOW = 1795486400.5  # builders.snapshot's timestamp
_optional_int = st.one_of(st.none(), st.integers(min_value=0, max_value=255))
# Times a whole number of seconds before the snapshot: the file keeps milliseconds, so an age is the
# same whether counted from the sample or from the file.
_optional_time = st.one_of(st.none(), st.integers(min_value=0, max_value=10**7).map(lambda ago: _NOW - ago))


@st.composite
def health_fields(draw: st.DrawFn) -> dict[str, object]:
    timer = draw(st.one_of(st.none(), _names))
    return {
        "reason": draw(st.one_of(st.none(), st.sampled_from(health.REASONS))),
        "result": draw(st.one_of(st.none(), st.sampled_from(sorted(health.RESULTS | {health.OTHER_RESULT})))),
        "exit_code": draw(_optional_int), "exit_signal": draw(_optional_int), "exit_time_seconds": draw(_optional_time),
        "recent_starts": draw(st.integers(min_value=0, max_value=16)), "oom_time_seconds": draw(_optional_time),
        "expected": draw(st.sampled_from(health.EXPECTATIONS)), "timer": timer,
        "timer_last_seconds": draw(_optional_time), "probe_status": draw(st.one_of(st.none(), st.integers(100, 599))),
    }


@settings(max_examples=200, deadline=None)
@given(agents())
def test_round_trip_render_then_parse_gives_the_same_agents(sampled: tuple[AgentSample, ...]) -> None:
    summary = parse_textfile(render_snapshot(snapshot(*sampled)).encode())
    assert rows_by_key(summary.agents) == {(a.name, a.type): expected_row(a) for a in sampled}
    assert summary.scalars["agents_total"] == len(sampled)
    assert summary.scalars["agents_running_total"] == sum(a.state in UP_STATES for a in sampled)
    assert summary.last_success is not None and math.isfinite(summary.last_success)


@settings(max_examples=200, deadline=None)
@given(agents())
def test_the_page_words_health_as_status_does(sampled: tuple[AgentSample, ...]) -> None:
    """Through the file and back, the landing page's words for each agent are `status`'s."""
    now = _NOW + 7
    summary = parse_textfile(render_snapshot(snapshot(*sampled)).encode())
    page = {(r.name, r.type): describe(r.health, now) for r in summary.agents}
    assert page == {(a.name, a.type): describe(facts(a)._replace(timer_last=a.timer_last_seconds if a.timer else None),
                                               now) for a in sampled}


def test_round_trip_of_the_fleet_the_server_tests_serve() -> None:
    snap_agents = fleet()
    summary = parse_textfile(render(snap_agents))
    assert sorted((r.name, r.type, r.shown_state) for r in summary.agents) == \
        sorted((a.name, a.type, a.state) for a in snap_agents)
