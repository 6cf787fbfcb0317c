"""cgroups.py: reading a unit's cgroup, on files copied from a real hybrid-layout cgroupfs."""

from __future__ import annotations

import os
from pathlib import Path

from captured import CGROUP_ROOT, cgroup_file, fleet_blocks, usage_usec

from textfile_writer.cgroups import Cgroupfs, rss_bytes

MEMORY = fleet_blocks()["agent-memory.service"]["ControlGroup"]
RUNNING = fleet_blocks()["agent-running.service"]["ControlGroup"]


def test_hybrid_layout_uses_the_unified_hierarchy_for_cpu() -> None:
    fs = Cgroupfs(str(CGROUP_ROOT))
    assert fs.unified == str(CGROUP_ROOT / "unified")
    assert fs.cpu_ns(MEMORY) == usage_usec("agent-memory.service") * 1000
    assert fs.cpu_ns(RUNNING) == usage_usec("agent-running.service") * 1000


def test_memory_and_tasks_from_v1_controllers() -> None:
    fs = Cgroupfs(str(CGROUP_ROOT))
    assert fs.memory_bytes(MEMORY) == int(cgroup_file("agent-memory.service", "memory", "memory.usage_in_bytes"))
    assert fs.memory_bytes(MEMORY) > 50 * 2**20  # the agent holds 50 MiB
    assert fs.tasks(RUNNING) == int(cgroup_file("agent-running.service", "pids", "pids.current"))
    assert fs.pids(MEMORY) == [int(p) for p in cgroup_file("agent-memory.service", "unified", "cgroup.procs").split()]


def test_procs_are_the_pids_directly_in_the_cgroup_sorted() -> None:
    fs = Cgroupfs(str(CGROUP_ROOT))
    captured = sorted(int(p) for p in cgroup_file("agent-running.service", "unified", "cgroup.procs").split())
    assert fs.procs(RUNNING) == tuple(captured) and captured


def test_unknown_cgroup_is_none() -> None:
    fs = Cgroupfs(str(CGROUP_ROOT))
    for read in (fs.cpu_ns, fs.memory_bytes, fs.tasks, fs.pids, fs.procs):
        assert read("/no/such.service") is None


def test_control_group_cannot_climb_out_of_the_root() -> None:
    fs = Cgroupfs(str(CGROUP_ROOT / "unified" / "agent-exporter-capture"))
    # "/../app.slice/..." must not reach outside the root it was given
    assert fs.cpu_ns("/../agent-exporter-capture/app.slice/agent-memory.service") is None


def test_pure_cgroup2_layout(tmp_path: Path) -> None:
    unified = CGROUP_ROOT / "unified"
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    target = tmp_path / MEMORY.lstrip("/")
    target.mkdir(parents=True)
    (target / "cpu.stat").write_bytes((unified / MEMORY.lstrip("/") / "cpu.stat").read_bytes())
    fs = Cgroupfs(str(tmp_path))
    assert fs.unified == str(tmp_path)
    assert fs.cpu_ns(MEMORY) == usage_usec("agent-memory.service") * 1000


def test_rss_fallback_uses_real_processes() -> None:
    rss = rss_bytes([os.getpid()])
    assert rss is not None and rss > 1024 * 1024
    assert rss_bytes([2**22 + 12345]) is None  # no such process
