"""The harness itself: the private user manager runs, the fleet is in the states the writer tests assume,
node_exporter picks up a textfile, and stop() leaves nothing behind."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from procs import Processes, wait_until

from devtools.harness import (
    MEMORY_HELD,
    Fleet,
    UserManager,
    agent_values,
    parse_metrics,
    stop_quietly,
)
from devtools.stack import NodeExporter
from devtools.wheels import Venv

pytestmark = pytest.mark.integration

PROPS = ["Id", "LoadState", "ActiveState", "SubState", "NRestarts", "MemoryCurrent", "TasksCurrent", "ControlGroup",
         "CPUUsageNSec"]


def test_manager_is_running_in_its_own_cgroup(user_manager: UserManager) -> None:
    state = user_manager.systemctl("is-system-running", check=False).stdout.strip()
    assert state in ("running", "degraded")
    assert user_manager.proc is not None and user_manager.proc.poll() is None
    own = Path(f"/proc/{user_manager.pid}/cgroup").read_text()
    assert f"/{user_manager.name}/" in own, own
    # the manager answers through its namespace only: the runtime dir is a private tmpfs
    assert not (Path(user_manager.env["XDG_RUNTIME_DIR"]) / "bus").exists()
    assert user_manager.host_path(user_manager.env["XDG_RUNTIME_DIR"]).joinpath("bus").is_socket()


def test_fleet_states(user_manager: UserManager, fleet: Fleet) -> None:
    props = dict(zip(fleet.units, user_manager.show_units(fleet.units, PROPS), strict=True))
    for unit in fleet.units:
        assert props[unit]["Id"] == unit
    for unit in fleet.long_running:
        assert (props[unit]["ActiveState"], props[unit]["SubState"]) == ("active", "running"), unit
        assert props[unit]["ControlGroup"] == f"/{user_manager.name}/app.slice/{unit}"
        assert int(props[unit]["TasksCurrent"]) == 1
    assert (props[fleet.stopped]["LoadState"], props[fleet.stopped]["ActiveState"]) == ("loaded", "inactive")
    assert props[fleet.failed]["ActiveState"] == "failed"
    assert props[fleet.absent]["LoadState"] == "not-found"
    assert props[fleet.absent]["ActiveState"] == "inactive"
    assert props[fleet.weird]["Id"] == "agent-we\\x20ird.service"
    memory = int(props[fleet.memory]["MemoryCurrent"])
    assert MEMORY_HELD <= memory <= MEMORY_HELD + 40 * 2**20
    assert int(props[fleet.running]["MemoryCurrent"]) < 10 * 2**20


def test_crashloop_restarts_keep_rising(user_manager: UserManager, fleet: Fleet) -> None:
    def restarts() -> int:
        return int(user_manager.show(fleet.crashloop, "NRestarts")["NRestarts"])

    first = restarts()
    assert first >= 1
    wait_until(lambda: restarts() > first, 5, "agent-crashloop's NRestarts to rise")


def test_cgroup_cpu_fallback_is_needed_and_possible(user_manager: UserManager, fleet: Fleet) -> None:
    """What test_writer_systemd's CPU tests rely on: systemd has no CPU figure, cgroup2 has one."""
    props = user_manager.show(fleet.running, "CPUUsageNSec", "ControlGroup")
    cpu_stat = Path("/sys/fs/cgroup/unified") / props["ControlGroup"].lstrip("/") / "cpu.stat"
    if props["CPUUsageNSec"] != "[not set]":
        pytest.fail(f"this host accounts CPU in systemd (CPUUsageNSec={props['CPUUsageNSec']}): the "
                    "cgroup fallback is not exercised; the hybrid-layout assumption in the tests is stale")
    assert cpu_stat.read_text().startswith("usage_usec ")


def test_node_exporter_serves_a_textfile(procs: Processes, tmp_path: Path, node_exporter_bin: str) -> None:
    (tmp_path / "probe.prom").write_text('# TYPE probe_up gauge\nprobe_up{agent="a\\\\b"} 1\n')
    exporter = NodeExporter(procs, tmp_path).start()
    metrics = parse_metrics(exporter.scrape())
    assert agent_values(metrics, "probe_up") == {"a\\b": 1.0}
    assert metrics[("node_textfile_scrape_error", frozenset())] == 0


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.usefixtures("sandbox_prerequisites")
def test_stop_leaves_no_process_cgroup_or_mount() -> None:
    """A unit whose leftover process systemd does not kill (KillMode=none) is still swept by PID."""
    manager = UserManager()
    try:
        manager.start()
        manager.install_unit("agent-orphan.service", (
            "[Service]\nType=oneshot\nRemainAfterExit=yes\nKillMode=none\n"
            "ExecStart=/bin/sh -c 'sleep 1000 & echo $! > %t/orphan.pid'\n"))
        manager.systemctl("start", "agent-orphan.service")
        runtime = manager.host_path(manager.env["XDG_RUNTIME_DIR"])
        orphan = int((runtime / "orphan.pid").read_text())
        pids = manager.unit_pids()
        assert {manager.pid, orphan} <= pids
        cgroups = [c for c in manager.cgroups if c.exists()]
        assert cgroups
    finally:
        stop_quietly(manager)
    assert manager.proc is not None and manager.proc.returncode is not None  # reaped, not a zombie
    # SIGKILLed orphans are reaped by PID 1 a moment later; until then they may show as zombies
    wait_until(lambda: not [p for p in pids if alive(p)], 5, f"every process of {sorted(pids)} to end")
    assert not [c for c in cgroups if c.exists()]
    assert not manager.base.exists()


@pytest.mark.usefixtures("sandbox_prerequisites")
def test_unprivileged_user_manager_runs_the_writer(public_venv: Venv) -> None:
    """`systemd --user` as nobody, prepared by root (namespace, tmpfs, delegated cgroup); the writer as nobody,
    installed where nobody can run it (this checkout may be closed to other users)."""
    manager = UserManager(user="nobody")
    try:
        manager.start()
        manager.install_unit("agent-solo.service", "[Service]\nExecStart=/bin/sleep infinity\n")
        manager.systemctl("start", "agent-solo.service")
        assert manager.show("agent-solo.service", "ActiveState")["ActiveState"] == "active"
        main_pid = int(manager.show("agent-solo.service", "MainPID")["MainPID"])
        assert os.stat(f"/proc/{main_pid}").st_uid == manager.user.pw_uid  # type: ignore[union-attr]
        out = manager.base / "textfile"
        out.mkdir()
        os.chown(out, manager.user.pw_uid, manager.user.pw_gid)  # type: ignore[union-attr]
        done = manager.run([public_venv.exe, "write", "--scope", "user", "--textfile-dir", str(out),
                            "--state-dir", str(manager.base / "home" / "state")], check=False)
        assert done.returncode == 0, done.stderr
        prom = out / "agents.prom"
        assert prom.stat().st_uid == manager.user.pw_uid  # type: ignore[union-attr]
        metrics = parse_metrics(prom.read_text())
        assert agent_values(metrics, "agent_up") == {"agent-solo": 1.0}
        assert agent_values(metrics, "agent_cpu_seconds_total")["agent-solo"] >= 0
        # root may not use that manager: sd-bus accepts only a peer of its own uid or root
        as_root = ["nsenter", "-t", str(manager.pid), "-m", "--", "systemctl", "--user", "is-system-running"]
        denied = subprocess.run(as_root, capture_output=True, text=True, timeout=30, check=False,
                                env={**os.environ, **manager.env, "LC_ALL": "C"})
        assert denied.returncode != 0 and "Operation not permitted" in denied.stderr, denied
    finally:
        stop_quietly(manager)
