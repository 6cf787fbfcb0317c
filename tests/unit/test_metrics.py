"""metrics.py: exact bytes, escaping, and hostile names that must still parse."""

from __future__ import annotations

import subprocess

import pytest
from builders import agent, snapshot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from procs import need
from prometheus_client.parser import text_string_to_metric_families

from textfile_writer.metrics import escape_label, format_value, render
from textfile_writer.model import HostSample


def test_exact_bytes_of_one_agent() -> None:
    text = render(snapshot(agent()))
    samples = [line for line in text.splitlines() if not line.startswith("#")]
    assert samples == [
        'agent_up{agent="agent-core_dev",type="primary"} 1',
        'agent_memory_kb{agent="agent-core_dev",type="primary"} 245000',
        'agent_cpu_percent{agent="agent-core_dev",type="primary"} 5.2',
        'agent_uptime_seconds{agent="agent-core_dev",type="primary"} 86400',
        'agent_restart_count{agent="agent-core_dev",type="primary"} 0',
        "agents_running_total 1",
        "agents_total 1",
        "system_memory_used_kb 8388608",
        "system_memory_total_kb 33554432",
        "system_disk_used_kb 26214400",
        "system_disk_total_kb 104857600",
        'system_load_average{period="1m"} 2.5',
        'system_load_average{period="5m"} 2.1',
        'system_load_average{period="15m"} 1.8',
        'agent_state{agent="agent-core_dev",type="primary",state="active"} 1',
        'agent_state{agent="agent-core_dev",type="primary",state="reloading"} 0',
        'agent_state{agent="agent-core_dev",type="primary",state="inactive"} 0',
        'agent_state{agent="agent-core_dev",type="primary",state="failed"} 0',
        'agent_state{agent="agent-core_dev",type="primary",state="activating"} 0',
        'agent_state{agent="agent-core_dev",type="primary",state="deactivating"} 0',
        'agent_cpu_seconds_total{agent="agent-core_dev",type="primary"} 12.5',
        'agent_tasks{agent="agent-core_dev",type="primary"} 3',
        'agent_start_time_seconds{agent="agent-core_dev",type="primary"} 1795400000',
        'agent_info{agent="agent-core_dev",type="primary",unit="agent-core_dev.service",scope="user"} 1',
        'agent_last_result{agent="agent-core_dev",type="primary",result="success"} 1',
        'agent_starts_total{agent="agent-core_dev",type="primary"} 1',
        'agent_memory_peak_bytes{agent="agent-core_dev",type="primary"} 307200000',
        'agent_memory_swap_bytes{agent="agent-core_dev",type="primary"} 0',
        'agent_oom_kills_total{agent="agent-core_dev",type="primary"} 0',
        'agent_expected_state{agent="agent-core_dev",type="primary",expected="running"} 1',
        'agent_healthy{agent="agent-core_dev",type="primary"} 1',
        "agent_exporter_last_success_timestamp_seconds 1795486400.5",
        "agent_exporter_run_duration_seconds 0.0125",
        "agent_exporter_collect_errors 0",
        'agent_exporter_build_info{version="0.1.0"} 1',
    ]
    assert text.endswith("\n") and not text.endswith("\n\n")
    assert "# TYPE agent_restart_count counter\n" in text
    assert "# TYPE agents_total gauge\n" in text


def test_every_family_has_help_and_type_in_order() -> None:
    text = render(snapshot())
    types = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")]
    helps = [line.split()[2] for line in text.splitlines() if line.startswith("# HELP")]
    assert types == helps
    assert types[:7] == ["agent_up", "agent_memory_kb", "agent_cpu_percent", "agent_uptime_seconds",
                         "agent_restart_count", "agents_running_total", "agents_total"]
    assert len(types) == len(set(types)) == 41


def test_unknown_values_are_absent_not_zero() -> None:
    text = render(snapshot(agent(memory_bytes=None, cpu_percent=None, cpu_seconds=None,
                                 tasks=None, start_time_seconds=None),
                           host=HostSample(None, None, None, None, None)))
    for name in ("agent_memory_kb{", "agent_cpu_percent{", "agent_cpu_seconds_total{", "agent_tasks{",
                 "agent_start_time_seconds{", "system_memory_used_kb ", "system_load_average{"):
        assert f"\n{name}" not in text, name
    assert "\nagent_up{" in text


def test_stable_order_by_name() -> None:
    text = render(snapshot(agent("zeta"), agent("alpha"), agent("mid")))
    ups = [line for line in text.splitlines() if line.startswith("agent_up{")]
    assert [u.split('"')[1] for u in ups] == ["alpha", "mid", "zeta"]


def test_escaping() -> None:
    assert escape_label('a\\b"c\nd') == 'a\\\\b\\"c\\nd'
    text = render(snapshot(agent('we"ird\\x2d\nname', type="ty\\pe")))
    assert 'agent_up{agent="we\\"ird\\\\x2d\\nname",type="ty\\\\pe"} 1' in text


@pytest.mark.parametrize(("value", "text"), [
    (0, "0"), (3, "3"), (2.5, "2.5"), (1e-05, "1e-05"), (240.0, "240"), (float("nan"), "NaN"),
    (float("inf"), "+Inf"), (float("-inf"), "-Inf"), (True, "1"), (2.0**60, "1.152921504606847e+18"),
])
def test_format_value(value: float, text: str) -> None:
    assert format_value(value) == text


# Pieces that break naive exposition writers: quotes, backslashes, newlines, systemd's \x2d escapes,
# braces and separators, plus any non-surrogate Unicode character.
label_text = st.lists(
    st.one_of(st.sampled_from(['"', "\\", "\n", "\\x2d", "\\x20", "{", "}", ",", "=", " ", "#", "é", "日本"]),
              st.characters(codec="utf-8", exclude_categories=("Cs",))),
    min_size=1, max_size=12,
).map("".join)


def parse(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(names=st.lists(label_text, min_size=1, max_size=5, unique=True), type_=label_text,
       unit=label_text)
def test_hostile_labels_round_trip(names: list[str], type_: str, unit: str) -> None:
    agents = [agent(n, type=type_, unit=unit + n) for n in names]
    parsed = parse(render(snapshot(*agents)))
    for n in names:
        assert parsed[("agent_up", frozenset({("agent", n), ("type", type_)}))] == 1
        assert parsed[("agent_info", frozenset({("agent", n), ("type", type_), ("unit", unit + n),
                                                ("scope", "user")}))] == 1
    assert parsed[("agents_total", frozenset())] == len(names)


# `promtool check metrics` lint findings that the metric contract's own names cause (kept because
# users' dashboards and alerts depend on them). Nothing else may appear.
CONTRACT_LINT = {
    "agent_memory_kb metric names should not contain abbreviated units",
    'agent_restart_count counter metrics should have "_total" suffix',
    'agent_restart_count non-histogram and non-summary metrics should not have "_count" suffix',
    'agents_running_total non-counter metrics should not have "_total" suffix',
    'agents_total non-counter metrics should not have "_total" suffix',
    "system_disk_total_kb metric names should not contain abbreviated units",
    "system_disk_used_kb metric names should not contain abbreviated units",
    "system_memory_total_kb metric names should not contain abbreviated units",
    "system_memory_used_kb metric names should not contain abbreviated units",
}


def promtool_findings(text: str) -> set[str]:
    promtool = need("promtool")
    done = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True,
                          timeout=30, check=False)
    assert "error" not in done.stderr.lower() or done.returncode == 3, done.stderr
    return {line.strip() for line in (done.stdout + done.stderr).splitlines() if line.strip()}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(names=st.lists(label_text, min_size=1, max_size=4, unique=True), type_=label_text)
def test_promtool_finds_only_the_contracts_own_names(names: list[str], type_: str) -> None:
    text = render(snapshot(*[agent(n, type=type_) for n in names]))
    assert promtool_findings(text) == CONTRACT_LINT


def test_diagnostics_of_an_unhealthy_timer_agent_with_a_probe_and_labels() -> None:
    sick = agent("agent-j\"ob", state="failed", result="exit-code", exit_code=3, exit_time_seconds=1795486000.25,
                 starts=7, recent_starts=6, memory_max_bytes=2**30, memory_high_bytes=2**29, oom_kills=2,
                 oom_time_seconds=1795480000.0, expected="timer", reason="failed", timer="agent-job.timer",
                 timer_last_seconds=1795486000.0, timer_next_seconds=1795486600.0, probe_success=False,
                 probe_duration_seconds=0.25, probe_status=None, labels=(("team", 'pay"ments'), ("tier", "1")))
    text = render(snapshot(sick))
    key = 'agent="agent-j\\"ob",type="primary"'
    for line in (f'agent_last_result{{{key},result="exit-code"}} 1', f"agent_last_exit_code{{{key}}} 3",
                 f"agent_last_exit_timestamp_seconds{{{key}}} 1795486000.25", f"agent_starts_total{{{key}}} 7",
                 f"agent_recent_starts{{{key}}} 6", f"agent_memory_max_bytes{{{key}}} 1073741824",
                 f"agent_memory_high_bytes{{{key}}} 536870912", f"agent_oom_kills_total{{{key}}} 2",
                 f"agent_last_oom_kill_timestamp_seconds{{{key}}} 1795480000",
                 f'agent_expected_state{{{key},expected="timer"}} 1', f"agent_healthy{{{key}}} 0",
                 f'agent_unhealthy_reason{{{key},reason="failed"}} 1',
                 f'agent_timer_last_trigger_timestamp_seconds{{{key},timer="agent-job.timer"}} 1795486000',
                 f'agent_timer_next_trigger_timestamp_seconds{{{key},timer="agent-job.timer"}} 1795486600',
                 f"agent_probe_success{{{key}}} 0", f"agent_probe_duration_seconds{{{key}}} 0.25",
                 f'agent_info{{{key},unit="agent-j\\"ob.service",scope="user",team="pay\\"ments",tier="1"}} 1'):
        assert line + "\n" in text, line
    assert "agent_probe_http_status{" not in text and "agent_last_exit_signal{" not in text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["agent_starts"].type == "counter" and families["agent_oom_kills"].type == "counter"
