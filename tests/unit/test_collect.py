"""collect.py: from captured systemd answers and cgroup files to the model, one unit never fatal."""

from __future__ import annotations

from pathlib import Path

from captured import CGROUP_ROOT, fleet_blocks, fleet_replay, usage_usec

from textfile_writer import state
from textfile_writer.cgroups import Cgroupfs
from textfile_writer.collect import Agent, Clock, Result, collect, resolve_agents
from textfile_writer.config import parse_config
from textfile_writer.model import AgentSample

CONFIG = parse_config(
    "scope: user\ntextfile_dir: /tmp\nagents:\n"
    "  - unit: agent-absent\n    type: primary\n"
    "  - unit: agent-memory\n    type: primary\n    name: big\n"
    "  - pattern: 'agent-*'\n    type: support\n",
    "c.yml",
)
BLOCKS = fleet_blocks()
ENTER_RUNNING_US = int(BLOCKS["agent-running.service"]["ActiveEnterTimestampMonotonic"])
RUNNING_CPU_NS = usage_usec("agent-running.service") * 1000
NOW_NS = (ENTER_RUNNING_US + 60_000_000) * 1000  # one minute after it started
CLOCK = Clock(wall=lambda: 1_800_000_000.0, monotonic_ns=lambda: NOW_NS)


def run(previous: state.State | None = None) -> Result:
    return collect(CONFIG, previous, fleet_replay(), 5, Cgroupfs(str(CGROUP_ROOT)), CLOCK)


def by_name(result: Result) -> dict[str, AgentSample]:
    return {a.name: a for a in result.snapshot.agents}


def test_every_fleet_agent_with_its_state() -> None:
    agents = by_name(run())
    assert set(agents) == {"agent-absent", "big", "agent-running", "agent-stopped", "agent-failed",
                           "agent-crashloop", "agent-we\\x20ird"}
    answered = fleet_blocks("show_query.txt")  # what fleet_replay() answers
    for agent in agents.values():
        captured = answered[agent.unit]
        assert agent.state == captured["ActiveState"]
        assert agent.up == (captured["ActiveState"] in ("active", "reloading"))
        assert agent.restarts == int(captured["NRestarts"])
    assert [a.state for a in agents.values() if a.name in ("big", "agent-running", "agent-we\\x20ird")] == [
        "active"] * 3
    assert agents["agent-failed"].state == "failed"
    assert agents["agent-stopped"].state == "inactive"
    assert agents["agent-absent"].load_state == "not-found" and not agents["agent-absent"].up
    assert agents["big"].type == "primary" and agents["agent-running"].type == "support"
    assert agents["agent-crashloop"].restarts > 0


def test_values_come_from_systemd_then_cgroupfs() -> None:
    running = by_name(run())["agent-running"]
    props = BLOCKS["agent-running.service"]
    assert running.memory_bytes == int(props["MemoryCurrent"])
    assert running.tasks == int(props["TasksCurrent"])
    # CPUUsageNSec=[not set] in the capture: CPU time read from the unified cgroup's cpu.stat
    assert props["CPUUsageNSec"] == "[not set]"
    assert running.cpu_seconds == RUNNING_CPU_NS / 1e9
    assert running.uptime_seconds == 60.0
    assert running.start_time_seconds == 1_800_000_000.0 - 60.0


def test_down_agents_report_zero_not_unknown() -> None:
    stopped = by_name(run())["agent-stopped"]
    assert (stopped.memory_bytes, stopped.tasks, stopped.cpu_percent, stopped.uptime_seconds) == (0, 0, 0.0, 0.0)
    assert stopped.cpu_seconds is None and stopped.start_time_seconds is None


def test_first_run_has_no_cpu_percent_and_the_next_one_has() -> None:
    first = run()
    assert by_name(first)["agent-running"].cpu_percent is None
    kept = first.state.counters["agent-running.service"]
    assert (kept.cpu_ns, kept.active_enter_us) == (RUNNING_CPU_NS, ENTER_RUNNING_US)
    # the same counters 10 s earlier, 0.5 s less CPU: 5 %
    earlier = state.State(first.state.boot_id, "user", NOW_NS - 10 * 10**9,
                          {"agent-running.service": state.Counter(RUNNING_CPU_NS - 5 * 10**8, ENTER_RUNNING_US)})
    assert by_name(run(earlier))["agent-running"].cpu_percent == 5.0


def test_problems_are_counted_not_fatal(tmp_path: Path) -> None:
    # the same answers, but the cgroupfs is empty: running agents' CPU is unknowable
    result = collect(CONFIG, None, fleet_replay(), 5, Cgroupfs(str(tmp_path)), CLOCK)
    up = [a for a in result.snapshot.agents if a.up]
    assert result.snapshot.collect_errors == len(result.problems) == len(up) >= 3
    assert all("CPU unknown" in p for p in result.problems)
    assert by_name(result)["agent-running"].cpu_seconds is None


def test_name_collisions_keep_the_first() -> None:
    config = parse_config("agents:\n  - unit: agent-x\n    name: agent-running\n  - pattern: 'agent-*'\n",
                          "c.yml", scope="user")
    props = {"Id": "agent-x.service", "LoadState": "not-found"}
    agents, problems = resolve_agents(config, [props], [("agent-running.service", {"Id": "agent-running.service"})])
    assert [a for a, _ in agents] == [Agent("agent-x.service", "agent-running", "primary")]
    assert problems == ["agent-running.service: agent name 'agent-running' is already used by agent-x.service; "
                        "left out"]


def test_host_problem_is_counted(tmp_path: Path) -> None:
    config = CONFIG._replace(disk_path=str(tmp_path / "gone"))
    result = collect(config, None, fleet_replay(), 5, Cgroupfs(str(CGROUP_ROOT)), CLOCK)
    assert any("gone" in p for p in result.problems)
    assert result.snapshot.host.disk_total_bytes is None
    assert result.snapshot.host.memory_total_bytes is not None


def test_each_field_of_a_sample_from_the_captured_fleet() -> None:
    """Every AgentSample field by name (collect builds samples positionally, for speed)."""
    agents = by_name(run())
    failed, running, absent = agents["agent-failed"], agents["agent-running"], agents["agent-absent"]
    props = BLOCKS["agent-failed.service"]
    exited_us = int(props["ExecMainExitTimestampMonotonic"])
    assert (failed.name, failed.type, failed.unit, failed.scope) == ("agent-failed", "support",
                                                                     "agent-failed.service", "user")
    assert (failed.state, failed.load_state, failed.memory_bytes, failed.tasks) == ("failed", "loaded", 0, 0)
    assert (failed.result, failed.exit_code, failed.exit_signal) == ("exit-code", int(props["ExecMainStatus"]), None)
    assert failed.exit_time_seconds == 1_800_000_000.0 - (NOW_NS / 1e3 - exited_us) / 1e6
    assert (failed.expected, failed.reason, failed.healthy) == ("running", "failed", False)
    assert (failed.restarts, failed.starts, failed.recent_starts) == (0, 1, 0)  # first sight: its invocation
    assert (running.result, running.exit_code, running.exit_signal, running.exit_time_seconds) == ("success", None,
                                                                                                 None, None)
    assert (running.memory_max_bytes, running.memory_high_bytes) == (None, None)  # "infinity"
    # the peak wherever the cgroup keeps one, a memory limit or not (the captured v1 file)
    peak_file = CGROUP_ROOT / "memory/agent-exporter-capture/app.slice/agent-running.service/memory.max_usage_in_bytes"
    assert running.memory_peak_bytes == int(peak_file.read_text()) > 0
    assert running.oom_kills == 0 and running.oom_time_seconds is None
    assert (running.expected, running.reason, running.timer, running.timer_last_seconds,
            running.timer_next_seconds) == ("running", None, None, None, None)
    assert (running.probe_success, running.probe_duration_seconds, running.probe_status, running.labels) == (
        None, None, None, ())
    assert running.cpu_seconds == RUNNING_CPU_NS / 1e9 and running.uptime_seconds == 60.0
    assert (absent.load_state, absent.result, absent.reason, absent.starts) == ("not-found", None, "down", 0)
