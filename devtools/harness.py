"""The real parts the integration tests run against: a systemd user manager and its agent fleet
(node_exporter is devtools.stack's, shared with the demo).

UserManager is devtools.sandbox.SandboxManager (the demo's and the benchmarks' manager) with what
the tests add: a fixed cgroup name for captured fixtures, an unprivileged variant, multi-unit
`show`, a writer runner through the manager's mount namespace, and host paths into that namespace.

How the sandbox works (root, PID 1 not systemd): `unshare -m --propagation private` puts a tmpfs
on /run/systemd (with /run/systemd/system, so `systemd --user` believes systemd is the init
system) and a fresh 0700 tmpfs on XDG_RUNTIME_DIR, then execs `/lib/systemd/systemd --user`.
The unshare process is a direct child of the caller, so the manager can be reaped. The manager
lives in a cgroup subtree of its own in every hierarchy (unified, name=systemd, memory, pids,
cpu, cpuacct): units' ControlGroup is `/<name>/app.slice/<unit>`, and stop() SIGKILLs whatever is
left in that subtree after the manager is gone. Other commands reach the manager through
`nsenter -t <pid> -m` with the same XDG_RUNTIME_DIR and XDG_CONFIG_HOME.

Unprivileged (user="nobody"): root still has to prepare the sandbox -- the mount namespace and
tmpfs mounts, and a cgroup subtree chowned to the user (cgroup delegation) -- and then the manager
and every command run with `setpriv --reuid/--regid` as that user. Without the delegated cgroup
`systemd --user` exits 1 without a message (EACCES opening <cgroup>/init.scope/cgroup.procs);
without /run/systemd/system it says "Trying to run as user instance, but the system has not been
booted with systemd."; root cannot talk to an unprivileged user's manager ("Failed to connect to
bus: Operation not permitted": sd-bus accepts only a peer of its own uid or root).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from textfile_writer.proc import Completed
from textfile_writer.proc import run as run_child

from .sandbox import (
    ManagerError,
    SandboxManager,
    cgroup_hierarchies,
    sandbox_supported,
)
from .stack import wait_until

__all__ = [
    "DIAGNOSTICS",
    "EXE",
    "HOST_AND_RUN",
    "PER_AGENT",
    "Fleet",
    "ManagerError",
    "UserManager",
    "agent_values",
    "install_fleet",
    "parse_metrics",
    "prerequisites_missing",
    "sample_names",
]

SYSTEMD = "/lib/systemd/systemd"
# The writer as installed in the project venv (the same interpreter that runs the tests).
EXE = str(Path(sys.executable).with_name("agent-exporter"))
# The metric contract (DESIGN.md): every family the writer produces, per agent and host/run.
PER_AGENT = ("agent_up", "agent_memory_kb", "agent_cpu_percent", "agent_uptime_seconds", "agent_restart_count",
             "agent_state", "agent_cpu_seconds_total", "agent_tasks", "agent_start_time_seconds", "agent_info")
HOST_AND_RUN = ("agents_running_total", "agents_total", "system_memory_used_kb", "system_memory_total_kb",
                "system_disk_used_kb", "system_disk_total_kb", "system_load_average",
                "agent_exporter_last_success_timestamp_seconds", "agent_exporter_run_duration_seconds",
                "agent_exporter_collect_errors", "agent_exporter_build_info")
# Issue 12's families: every one declared in every file, its samples only where they apply (an
# exit code once the agent has exited, a timer's times for timer-started agents, a probe's figures).
DIAGNOSTICS = ("agent_last_result", "agent_last_exit_code", "agent_last_exit_signal",
               "agent_last_exit_timestamp_seconds", "agent_starts_total", "agent_recent_starts",
               "agent_memory_max_bytes", "agent_memory_high_bytes", "agent_memory_peak_bytes",
               "agent_memory_swap_bytes", "agent_oom_kills_total", "agent_last_oom_kill_timestamp_seconds",
               "agent_expected_state", "agent_healthy", "agent_unhealthy_reason",
               "agent_timer_last_trigger_timestamp_seconds", "agent_timer_next_trigger_timestamp_seconds",
               "agent_probe_success", "agent_probe_duration_seconds", "agent_probe_http_status")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def prerequisites_missing() -> str | None:
    """None when the integration tests can run here, else what is missing."""
    why = sandbox_supported(("systemd-run", "systemd-escape", "setpriv"))
    if why:
        return why
    if not os.path.exists(EXE):
        return f"{EXE} is missing (make venv)"
    return None


class UserManager(SandboxManager):
    """A private `systemd --user`, as root or (user=...) as an unprivileged user prepared by root."""

    def __init__(self, tmp_dir: Path | None = None, name: str | None = None, user: str | None = None) -> None:
        # An unprivileged manager must reach its directories: pytest's tmp dirs are 0700 root.
        super().__init__(None if user else tmp_dir)
        if name is not None:
            self.name = name
            self.cgroups = [h / name for h in cgroup_hierarchies()]
        self.user = pwd.getpwnam(user) if user else None
        self.env = {**self.env, "PATH": os.environ.get("PATH") or DEFAULT_PATH}
        if self.user is not None:
            self.env["HOME"] = str(self.base / "home")

    def start(self, timeout: float = 30) -> UserManager:
        if self.user is None:
            super().start(timeout)
            return self
        return self._start_unprivileged(self.user, timeout)

    def _start_unprivileged(self, user: pwd.struct_passwd, timeout: float) -> UserManager:
        why = sandbox_supported()
        if why:
            raise ManagerError(f"cannot start a sandboxed systemd user manager: {why}")
        uid, gid = user.pw_uid, user.pw_gid
        self.base.chmod(0o755)
        for d in (self.runtime_dir, self.unit_dir, self.base / "home"):
            d.mkdir(parents=True, mode=0o755)
        for d in (self.config_home, self.config_home / "systemd", self.unit_dir, self.base / "home"):
            os.chown(d, uid, gid)
        # Delegation: the user owns its subtree (the directory and the files that move processes).
        for cg in self.cgroups:
            cg.mkdir()
            for path in (cg, *(cg / f for f in ("cgroup.procs", "tasks", "cgroup.subtree_control",
                                                "cgroup.threads"))):
                if path.exists():
                    os.chown(path, uid, gid)
        join = "".join(f'echo $$ > "{cg}/cgroup.procs"\n' for cg in self.cgroups)
        script = (
            "set -e\n" + join +
            "mount -t tmpfs -o mode=0755 tmpfs /run/systemd\n"
            "mkdir -p /run/systemd/system\n"
            f'mount -t tmpfs -o mode=0700,uid={uid},gid={gid} tmpfs "{self.runtime_dir}"\n'
            f"exec setpriv --reuid {uid} --regid {gid} --clear-groups -- {SYSTEMD} --user\n"
        )
        with open(self.base / "manager.log", "wb") as log:
            self.proc = subprocess.Popen(
                ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                env={**os.environ, **self.env, "SYSTEMD_LOG_TARGET": "console"},
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ManagerError(f"systemd --user as {user.pw_name} exited {self.proc.returncode}: "
                                   f"{self.log()[-2000:]}")
            state = self.run(["systemctl", "--user", "is-system-running"], check=False, timeout=10).stdout.strip()
            if state in ("running", "degraded"):
                return self
            time.sleep(0.1)
        self.stop()
        raise ManagerError(f"systemd --user did not come up in {timeout}s (state {state!r}): {self.log()[-2000:]}")

    def command(self, argv: Sequence[str]) -> list[str]:
        if self.user is None:
            return super().command(argv)
        return ["nsenter", "-t", str(self.pid), "-m", "--", "setpriv", "--reuid", str(self.user.pw_uid),
                "--regid", str(self.user.pw_gid), "--clear-groups", "--", *argv]

    def host_path(self, path: str | Path) -> Path:
        """The host's view of a path inside the manager's mount namespace (for mounts made there)."""
        return Path(f"/proc/{self.pid}/root") / Path(path).relative_to("/")

    def show_units(self, units: Sequence[str], props: Iterable[str]) -> list[dict[str, str]]:
        """One `systemctl show` for several units: a property mapping per unit, in order."""
        out = self.systemctl("show", "--property=" + ",".join(props), "--", *units).stdout
        blocks = [dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
                  for block in out.strip("\n").split("\n\n")]
        if len(blocks) != len(units):
            raise ManagerError(f"systemctl show gave {len(blocks)} blocks for {len(units)} units:\n{out}")
        return blocks

    def runner(self, argv: Sequence[str], timeout: float) -> Completed:
        """A textfile_writer Runner whose commands (systemctl) run inside this manager's namespace."""
        env = [f"{k}={v}" for k, v in self.env.items()]
        return run_child(self.command(["env", *env, *argv]), timeout)


# ---------------------------------------------------------------------------------------------
# The fleet: one agent per state the writer has to tell apart.

MIB = 1024 * 1024
MEMORY_HELD = 50 * MIB
# Holds MEMORY_HELD bytes and writes one byte in every page, so all of it is resident.
_HOLD_MEMORY = (f"import time; b = bytearray({MEMORY_HELD}); n = len(range(0, len(b), 4096)); "
                "b[::4096] = bytes([1]) * n; time.sleep(10**9)")


def escaped_unit(prefix: str, raw: str) -> str:
    """prefix + systemd-escape(raw) + .service: a unit name that needs escaping (\\x20 for a space)."""
    done = subprocess.run(["systemd-escape", "--", raw], capture_output=True, text=True, check=True)
    return f"{prefix}{done.stdout.strip()}.service"


@dataclass(frozen=True)
class Fleet:
    running: str = "agent-running.service"
    stopped: str = "agent-stopped.service"
    failed: str = "agent-failed.service"
    crashloop: str = "agent-crashloop.service"
    memory: str = "agent-memory.service"
    weird: str = "agent-we\\x20ird.service"
    absent: str = "agent-absent.service"

    @property
    def units(self) -> list[str]:
        """Every fleet unit, the absent one last (the order the captured fixtures use)."""
        return [self.running, self.stopped, self.failed, self.crashloop, self.memory, self.weird, self.absent]

    @property
    def installed(self) -> list[str]:
        return [u for u in self.units if u != self.absent]

    @property
    def started(self) -> list[str]:
        return [self.running, self.failed, self.crashloop, self.memory, self.weird]

    @property
    def long_running(self) -> list[str]:
        """Agents that stay active for the whole session (the crash-looping one comes and goes)."""
        return [self.running, self.memory, self.weird]

    def unit_texts(self) -> dict[str, str]:
        head = "[Unit]\nDescription=agent-exporter test agent {}\nStartLimitIntervalSec=0\n\n[Service]\n"
        return {
            self.running: head.format("running") + "ExecStart=/bin/sleep infinity\n",
            self.stopped: head.format("stopped (never started)") + "ExecStart=/bin/sleep infinity\n",
            self.failed: head.format("failed") + "ExecStart=/bin/sh -c 'exit 1'\n",
            self.crashloop: head.format("crash-looping") +
            "ExecStart=/bin/sh -c 'sleep 1; exit 1'\nRestart=always\nRestartSec=200ms\n",
            self.memory: head.format("holding 50 MiB") + f'ExecStart=/usr/bin/python3 -c "{_HOLD_MEMORY}"\n',
            self.weird: head.format("with a name that needs escaping") + "ExecStart=/bin/sleep infinity\n",
        }


def agent_name(unit: str) -> str:
    """The writer's default agent label: the unit name without .service."""
    return unit.removesuffix(".service")


def install_fleet(manager: UserManager, timeout: float = 30) -> Fleet:
    """Install every fleet unit but the absent one, start all but the stopped one, wait until settled."""
    fleet = Fleet()
    if escaped_unit("agent-", "we ird") != fleet.weird:
        raise ManagerError(f"systemd-escape does not give {fleet.weird!r}")
    for name, text in fleet.unit_texts().items():
        manager.install_unit(name, text, reload=False)
    manager.systemctl("daemon-reload")
    manager.systemctl("start", "--no-block", "--", *fleet.started)

    def settled() -> bool:
        props = dict(zip(fleet.units, manager.show_units(
            fleet.units, ["ActiveState", "NRestarts", "MemoryCurrent"]), strict=True))
        memory = props[fleet.memory].get("MemoryCurrent", "")
        return (all(props[u]["ActiveState"] == "active" for u in fleet.long_running)
                and props[fleet.failed]["ActiveState"] == "failed"
                and int(props[fleet.crashloop]["NRestarts"]) >= 1
                and memory.isdigit() and int(memory) >= MEMORY_HELD)

    wait_until(settled, timeout, "the fleet to settle (running, failed, a restart, 50 MiB held)", step=0.1)
    return fleet


# ---------------------------------------------------------------------------------------------
# The exposition format (node_exporter itself is devtools.stack.NodeExporter)


MetricKey = tuple[str, frozenset[tuple[str, str]]]


def parse_metrics(text: str) -> dict[MetricKey, float]:
    """Exposition text -> {(sample name, frozenset(labels)): value}, by prometheus_client's parser.

    Sample names are kept as the text spells them, as Prometheus keeps them: the parser renames
    a counter sample without `_total` (agent_restart_count -> agent_restart_count_total); that is
    undone here. Raises on text the parser rejects and on a sample given twice.
    """
    from prometheus_client.parser import text_string_to_metric_families

    spelled = {line.split("{", 1)[0].split(" ", 1)[0] for line in text.splitlines()
               if line and not line.startswith("#")}
    out: dict[MetricKey, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name
            if name not in spelled and name.endswith("_total") and name.removesuffix("_total") in spelled:
                name = name.removesuffix("_total")
            key = (name, frozenset(sample.labels.items()))
            if key in out:
                raise ValueError(f"sample {key} appears twice")
            out[key] = float(sample.value)
    return out


def sample_names(metrics: Mapping[MetricKey, float]) -> set[str]:
    return {name for name, _labels in metrics}


def agent_values(metrics: Mapping[MetricKey, float], name: str) -> dict[str, float]:
    """{agent label: value} for one per-agent metric."""
    out = {}
    for (sample, labels), value in metrics.items():
        if sample == name:
            agent = dict(labels)["agent"]
            if agent in out:
                raise ValueError(f"{name} has agent {agent!r} twice")
            out[agent] = value
    return out


def stop_quietly(manager: UserManager) -> None:
    """stop() for cleanup paths: never raises, so it cannot hide the original failure."""
    with contextlib.suppress(Exception):
        manager.stop()
    with contextlib.suppress(ProcessLookupError):
        if manager.proc is not None and manager.proc.poll() is None:
            os.kill(manager.proc.pid, signal.SIGKILL)
            manager.proc.wait(timeout=10)
