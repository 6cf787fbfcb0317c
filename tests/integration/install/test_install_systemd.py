"""`agent-exporter install --scope user --now` in a real systemd user manager: the dry run before it is the
plan the real run carries out, the timer runs the hardened writer at its period, the socket starts
the hardened server, node_exporter reads the directory with the flags node_exporter/ documents,
`uninstall` leaves nothing behind, and `--no-server` installs the writer and its timer only.

The session's manager runs as root; one test repeats the essentials under a manager of an
unprivileged user (nobody), where a user manager can apply fewer sandboxing directives.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shlex
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from procs import Processes, free_port, http_get, wait_until

from devtools.harness import (
    EXE,
    HOST_AND_RUN,
    PER_AGENT,
    Fleet,
    UserManager,
    agent_name,
    agent_values,
    parse_metrics,
    sample_names,
    stop_quietly,
)
from devtools.stack import NODE_EXPORTER, REPO
from devtools.wheels import Venv
from textfile_writer.install import units
from textfile_writer.install.manifest import MANIFEST

pytestmark = pytest.mark.integration

INTERVAL = 2.0
# AccuracySec= in timers/agent-exporter.timer.in: systemd may fire the timer up to this much late.
ACCURACY = 1.0
# How late the manager may start the writer after the timer fires: milliseconds on an idle machine;
# half a second leaves room on a loaded one and still tells a 2 s period from one of 3.5 s.
START_LATENCY = 0.5
UNIT_GLOB = "agent-exporter*"


@dataclass(frozen=True)
class Installed:
    manager: UserManager
    work: Path
    config: Path
    port: int
    output: str
    exe: str = EXE
    plan: str = ""  # what `install --dry-run` with the same arguments said just before

    @property
    def textfile_dir(self) -> Path:
        return self.work / "textfile"

    @property
    def prom(self) -> Path:
        return self.textfile_dir / "agents.prom"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def install_args(self) -> list[str]:
        return [self.exe, "install", "--scope", "user", "--now", "--interval", f"{INTERVAL:g}", "--config",
                str(self.config), "--web.listen-address", f"127.0.0.1:{self.port}"]

    def agent_exporter(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.manager.run([self.exe, *args], check=False)


def world_readable_dir(prefix: str) -> Path:
    """A work directory node_exporter's own user can read (pytest's tmp_path is 0700)."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    work.chmod(0o755)
    return work


def install_into(manager: UserManager, work: Path, config_text: str, exe: str = EXE) -> Installed:
    """`install --dry-run`, which must change nothing, then the real install with the same arguments."""
    config = work / "config.yml"
    config.write_text(config_text)
    config.chmod(0o644)
    installed = Installed(manager, work, config, free_port(), "", exe)
    before = unit_files(manager)
    plan = manager.run([*installed.install_args(), "--dry-run"], check=False)
    assert plan.returncode == 0, f"install --dry-run failed ({plan.returncode}): {plan.stdout}\n{plan.stderr}"
    assert unit_files(manager) == before and not installed.textfile_dir.exists(), "the dry run changed something"
    done = manager.run(installed.install_args(), check=False)
    assert done.returncode == 0, f"install failed ({done.returncode}): {done.stdout}\n{done.stderr}"
    return Installed(manager, work, config, installed.port, done.stdout, exe, plan.stdout)


def plan_lines(output: str) -> list[str]:
    """The plan as install or install --dry-run says it: after the header, before the units."""
    return output.split("\n\n", 1)[0].splitlines()[1:]


def uninstall_quietly(installed: Installed) -> None:
    if (installed.manager.unit_dir / MANIFEST).exists():
        installed.agent_exporter("uninstall", "--scope", "user")


def unit_files(manager: UserManager) -> list[str]:
    """Our units (and the manifest) in the manager's unit directory."""
    return sorted(p.name for p in manager.unit_dir.iterdir() if p.name.startswith("agent-exporter"))


def writes(installed: Installed, count: int, timeout: float) -> list[tuple[float, int]]:
    """(agent_exporter_last_success_timestamp_seconds, inode) of `count` consecutive distinct files."""
    seen: list[tuple[float, int]] = []

    def new_file() -> bool:
        try:
            with open(installed.prom, "rb") as f:
                ino = os.fstat(f.fileno()).st_ino
                text = f.read().decode()
        except FileNotFoundError:
            return False
        found = re.search(r"^agent_exporter_last_success_timestamp_seconds (\S+)$", text, re.M)
        assert found, text  # a file is always whole: never one without its last family
        stamp = float(found.group(1))
        if not seen or stamp != seen[-1][0]:
            seen.append((stamp, ino))
        return len(seen) >= count

    wait_until(new_file, timeout, f"{count} writes of {installed.prom}", step=0.05)
    return seen


def process_facts(pid: int) -> dict[str, str]:
    status = dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                  if ":\t" in line)
    return {"uid": status["Uid"].split()[0], "cap_eff": status["CapEff"].strip(),
            "net": os.readlink(f"/proc/{pid}/ns/net"), "user": os.readlink(f"/proc/{pid}/ns/user"),
            "mnt": os.readlink(f"/proc/{pid}/ns/mnt")}


# ---------------------------------------------------------------------------------------------
# The session's manager (root)


@pytest.fixture(scope="module")
def installed(user_manager: UserManager, fleet: Fleet) -> Iterator[Installed]:
    work = world_readable_dir("agent-exporter-install-")
    config = (f"scope: user\ntextfile_dir: {work / 'textfile'}\ninterval_seconds: 10\nagents:\n"
              f"  - unit: {fleet.memory}\n    type: support\n  - pattern: 'agent-*.service'\n")
    result = None
    try:
        result = install_into(user_manager, work, config)
        yield result
    finally:
        if result is not None:
            uninstall_quietly(result)
        shutil.rmtree(work, ignore_errors=True)


def test_install_enables_and_starts_timer_and_socket(installed: Installed) -> None:
    manager = installed.manager
    assert unit_files(manager) == sorted([*units.UNIT_NAMES, MANIFEST])
    lines = installed.output.splitlines()
    for name in units.UNIT_NAMES:
        assert f"  write {manager.unit_dir / name}" in lines
    assert "  systemctl --user enable -- agent-exporter.timer agent-exporter-server.socket" in lines
    assert "  systemctl --user start -- agent-exporter.timer agent-exporter-server.socket" in lines
    assert installed.textfile_dir.is_dir()
    state = manager.show_units(list(units.ENABLED), ["UnitFileState", "ActiveState"])
    assert [s["UnitFileState"] for s in state] == ["enabled", "enabled"]
    assert [s["ActiveState"] for s in state] == ["active", "active"]
    timer = manager.systemctl("show", "--property=TimersMonotonic", "--", units.WRITER_TIMER).stdout
    assert "OnUnitActiveUSec=2s" in timer and "OnBootUSec=2s" in timer, timer


def test_the_dry_run_was_the_plan_install_carried_out(installed: Installed) -> None:
    unit_dir = installed.manager.unit_dir
    assert installed.plan.splitlines()[0] == (f"agent-exporter install --dry-run: user scope, units in {unit_dir}; "
                                              "nothing is changed")
    plan = plan_lines(installed.plan)
    assert plan == plan_lines(installed.output), installed.plan
    # every change, first: the textfile directory, the state directory, the units, systemctl
    assert plan[0] == f"  create textfile directory {installed.textfile_dir}: mkdir -m 0755"
    assert plan[1].startswith(f"  state directory {Path(installed.manager.env['XDG_CONFIG_HOME']) / 'agent-exporter'} ")
    assert [f"  write {unit_dir / n}" for n in units.UNIT_NAMES] == [line for line in plan if "  write " in line][:4]
    # then the units it installs, exactly as written
    for name in units.UNIT_NAMES:
        assert f"\n# {unit_dir / name}\n{(unit_dir / name).read_text()}" in installed.plan


def timer_gaps(manager: UserManager, wanted: int, timeout: float) -> list[float]:
    """Start-to-start gaps (s) of `wanted` consecutive pairs of the writer's runs, each checked against
    the timer's period as it happens; AssertionError at the first that breaks it.

    Measured from systemd's own record of each run, not from when the file appeared: the latest
    run's start and end (InactiveExitTimestampMonotonic, InactiveEnterTimestampMonotonic, on
    CLOCK_MONOTONIC like time.monotonic()), sampled. OnUnitActiveSec= counts from the previous start,
    so a run never starts sooner than INTERVAL after the one before. When that one ended within the
    period, the next starts at most ACCURACY + START_LATENCY later than INTERVAL after it (checked
    while waiting too: a timer that stopped firing fails there). A run that outlasts the period (a
    loaded machine) bounds the next one only from below: the timer does not start the writer while
    it runs. A pair is checked only when the samples that saw it were less than INTERVAL apart, so
    no whole run can have gone unseen between them.
    """
    latest = 0.0  # start of the latest run seen
    ended_in_time = False  # the latest run ended within the period
    gaps: list[float] = []
    previous_sample = None
    deadline = time.monotonic() + timeout
    while len(gaps) < wanted:
        before = time.monotonic()
        assert before < deadline, (f"in {timeout:g}s only {len(gaps)} of {wanted} pairs of runs could be checked "
                                   f"(gaps {gaps}): the runs outlasted the period or sampling was too slow")
        props = manager.show(units.WRITER_SERVICE, "ActiveState", "InactiveExitTimestampMonotonic",
                             "InactiveEnterTimestampMonotonic")
        after = time.monotonic()
        start = int(props["InactiveExitTimestampMonotonic"]) / 1e6
        end = int(props["InactiveEnterTimestampMonotonic"]) / 1e6
        if start > latest:
            if latest:
                gap = start - latest
                why = f"a run started {gap:.3f}s after the previous one (period {INTERVAL:g}s, accuracy {ACCURACY:g}s)"
                assert gap >= INTERVAL - 0.001, why
                if ended_in_time and previous_sample is not None and after - previous_sample < INTERVAL:
                    assert gap <= INTERVAL + ACCURACY + START_LATENCY, why
                    gaps.append(gap)
            latest, ended_in_time = start, False
        if start and props["ActiveState"] in ("inactive", "failed") and end >= start:
            ended_in_time = end - start < INTERVAL
            overdue = before - (start + INTERVAL + ACCURACY + START_LATENCY)
            assert not (ended_in_time and overdue > 0), (
                f"no run started in the {before - start:.3f}s since the last one began (it took {end - start:.3f}s; "
                f"period {INTERVAL:g}s, accuracy {ACCURACY:g}s)")
        previous_sample = before
        time.sleep(0.05)
    return gaps


def test_timer_rewrites_the_file_at_its_period(installed: Installed) -> None:
    timer_gaps(installed.manager, 4, timeout=30 * INTERVAL)
    seen = writes(installed, 3, timeout=30 * INTERVAL)
    assert len({ino for _, ino in seen}) == len(seen)  # each write is a new file renamed into place
    result = installed.manager.show(units.WRITER_SERVICE, "Result", "ExecMainStatus", "NRestarts")
    assert (result["Result"], result["ExecMainStatus"]) == ("success", "0")


def test_hardened_writer_writes_the_full_metric_set(installed: Installed, fleet: Fleet) -> None:
    writes(installed, 2, timeout=4 * INTERVAL + 10)  # a previous run: agent_cpu_percent is there
    metrics = parse_metrics(installed.prom.read_text())
    assert set(PER_AGENT + HOST_AND_RUN) <= sample_names(metrics)
    up = agent_values(metrics, "agent_up")
    assert up["agent-running"] == 1 and up["agent-memory"] == 1
    assert "agent-exporter" not in up and "agent-exporter-server" not in up  # our own units are not agents
    assert agent_values(metrics, "agent_memory_kb")["agent-memory"] >= 50 * 1024
    assert "agent-running" in agent_values(metrics, "agent_cpu_percent")  # the state directory keeps counters
    # host metrics come from /proc and statvfs inside the sandbox
    assert metrics[("system_memory_total_kb", frozenset())] > 0
    assert 0 < metrics[("system_memory_used_kb", frozenset())] < metrics[("system_memory_total_kb", frozenset())]
    assert metrics[("system_disk_total_kb", frozenset())] > 0
    assert {dict(labels)["period"] for name, labels in metrics if name == "system_load_average"} == {"1m", "5m", "15m"}
    assert metrics[("agent_exporter_collect_errors", frozenset())] == 0
    assert stat.S_IMODE(installed.prom.stat().st_mode) == 0o644  # readable by node_exporter's user
    state = Path(installed.manager.env["XDG_CONFIG_HOME"]) / "agent-exporter" / "cpu-state"
    assert state.exists()  # StateDirectory= in a user manager: $XDG_CONFIG_HOME/agent-exporter


def test_status_by_hand_measures_cpu_since_the_timers_run(installed: Installed, fleet: Fleet, tmp_path: Path) -> None:
    """`status` as a person runs it, with the config and nothing else: it finds the installed timer's
    state (StateDirectory=, under $XDG_CONFIG_HOME with this systemd) and has a CPU % for every running
    agent (issue 14: it showed '-', reading a state directory of its own)."""
    writes(installed, 2, timeout=4 * INTERVAL + 10)
    env = {"XDG_STATE_HOME": str(tmp_path / "empty"), "AGENT_EXPORTER_STATE_DIR": ""}
    done = installed.manager.run([installed.exe, "status", "--config", str(installed.config), "--format", "json"],
                                 check=False, env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    timers = Path(installed.manager.env["XDG_CONFIG_HOME"]) / "agent-exporter"
    assert report["cpu_window"]["source"] == "writer", report["cpu_window"]
    assert report["cpu_window"]["state_dir"] == str(timers)
    assert 0.5 <= report["cpu_window"]["seconds"] <= 3 * 10  # fresh: at most 3 intervals of its config
    cpu = {a["agent"]: a["cpu_percent"] for a in report["agents"]}
    steady = [agent_name(u) for u in fleet.long_running]  # (the crash-looper may have restarted since: '?')
    assert steady and all(cpu[a] is not None and cpu[a] >= 0 for a in steady), cpu
    table = installed.manager.run([installed.exe, "status", "--config", str(installed.config)], check=False, env=env)
    assert f"(its state in {timers})" in table.stdout, table.stdout


def test_socket_activated_server_answers_in_its_sandbox(installed: Installed) -> None:
    writes(installed, 1, timeout=4 * INTERVAL + 10)
    status, body = http_get(installed.url, timeout=10)
    assert status == 200, body[:500]
    served = parse_metrics(body.decode())
    written = parse_metrics(installed.prom.read_text())
    assert agent_values(served, "agent_up").keys() == agent_values(written, "agent_up").keys()
    assert ("agent_exporter_textfile_age_seconds", frozenset()) in served
    show = installed.manager.show(units.SERVER_SERVICE, "MainPID", "ActiveState", "TriggeredBy")
    assert show["ActiveState"] == "active" and show["TriggeredBy"] == units.SERVER_SOCKET
    facts, mine = process_facts(int(show["MainPID"])), process_facts(os.getpid())
    # the sandbox is in force, not skipped: own network, user and mount namespaces, no capabilities
    assert facts["net"] != mine["net"] and facts["user"] != mine["user"] and facts["mnt"] != mine["mnt"]
    assert int(facts["cap_eff"], 16) == 0


def test_second_install_changes_nothing(installed: Installed) -> None:
    before = {n: (installed.manager.unit_dir / n).stat().st_mtime_ns for n in units.UNIT_NAMES}
    done = installed.manager.run(installed.install_args(), check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith("nothing to change: already installed as asked"), done.stdout
    assert "  write " not in done.stdout
    assert {n: (installed.manager.unit_dir / n).stat().st_mtime_ns for n in units.UNIT_NAMES} == before


def node_exporter_flags(kind: str, textfile_dir: Path) -> list[str]:
    """node_exporter's flags exactly as the files in node_exporter/ give them, on this directory."""
    default = "/var/lib/prometheus/node-exporter"
    if kind == "debian":
        text = (REPO / "node_exporter" / "prometheus-node-exporter.default").read_text()
        found = re.search(r"^ARGS=(.*)$", text, re.M)
        assert found, text
        flags = shlex.split(shlex.split(found.group(1))[0])
    elif kind == "drop-in":
        text = (REPO / "node_exporter" / "node_exporter.service.d" / "agent-exporter.conf").read_text()
        lines = [line for line in text.splitlines() if line.startswith("ExecStart=")]
        assert lines[0] == "ExecStart=", "the drop-in must clear the unit's own ExecStart="
        flags = shlex.split(lines[1].removeprefix("ExecStart="))[1:]
    else:
        compose = yaml.safe_load((REPO / "node_exporter" / "docker-compose.yml").read_text())
        service = compose["services"]["node-exporter"]
        # the container sees host paths under its mount points: map them back
        mounts = {inside: outside for outside, inside, *_ in (v.split(":") for v in service["volumes"])}
        flags = []
        for flag in service["command"]:
            name, _, value = flag.partition("=")
            outside = mounts.get(value)
            flags.append(f"{name}={outside}" if outside is not None else flag)
    assert f"--collector.textfile.directory={default}" in flags, flags
    return [f.replace(default, str(textfile_dir)) for f in flags]


@pytest.mark.parametrize("kind", ["debian", "drop-in", "container"])
def test_node_exporter_reads_the_installed_directory(installed: Installed, procs: Processes, node_exporter_bin: str,
                                                     kind: str) -> None:
    writes(installed, 1, timeout=4 * INTERVAL + 10)
    flags = node_exporter_flags(kind, installed.textfile_dir)
    port = free_port()
    # As node_exporter's own user when the system has one (Debian's package runs it as prometheus):
    # the file must be readable by it, not just by root.
    try:
        user = pwd.getpwnam("prometheus")
        as_user = ["setpriv", "--reuid", str(user.pw_uid), "--regid", str(user.pw_gid), "--clear-groups"]
    except KeyError:
        as_user = ["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups"]
    name = f"node_exporter-{kind}"
    procs.start([*as_user, NODE_EXPORTER, *flags, f"--web.listen-address=127.0.0.1:{port}"], name=name)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        wait_until(lambda: http_get(url, timeout=5)[0] == 200, 30, f"node_exporter ({kind}) on {url}")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{procs.log(name)[-2000:]}") from None
    metrics = parse_metrics(http_get(url, timeout=30)[1].decode())
    assert metrics[("node_textfile_scrape_error", frozenset())] == 0, procs.log(name)[-2000:]
    assert agent_values(metrics, "agent_up")["agent-running"] == 1
    assert set(PER_AGENT + HOST_AND_RUN) <= sample_names(metrics)
    mtime = metrics[("node_textfile_mtime_seconds", frozenset({("file", str(installed.prom))}))]
    assert time.time() - mtime < 4 * INTERVAL + 5


def test_uninstall_leaves_no_unit_timer_or_socket(installed: Installed) -> None:
    """Runs last in this module (pytest keeps file order): the module's other tests use the install."""
    manager = installed.manager
    done = installed.agent_exporter("uninstall", "--scope", "user")
    assert done.returncode == 0, done.stderr
    assert "left in place" not in done.stdout, done.stdout
    assert unit_files(manager) == [] and not (manager.unit_dir / MANIFEST).exists()
    listed = manager.systemctl("list-units", "--all", "--plain", "--no-legend", UNIT_GLOB).stdout
    files = manager.systemctl("list-unit-files", "--no-legend", UNIT_GLOB, check=False).stdout
    timers = manager.systemctl("list-timers", "--all", "--no-legend", check=False).stdout
    sockets = manager.systemctl("list-sockets", "--all", "--no-legend", check=False).stdout
    assert (listed.strip(), files.strip()) == ("", ""), (listed, files)
    assert not set(units.UNIT_NAMES) & set((timers + sockets).split()), (timers, sockets)
    assert not installed.textfile_dir.exists()  # install created it; the writer's files went with it
    assert not (Path(manager.env["XDG_CONFIG_HOME"]) / "agent-exporter").exists()
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", installed.port)) != 0  # nobody listens any more
    assert installed.config.exists()  # not install's to remove


def test_no_server_installs_the_writer_and_its_timer_only(user_manager: UserManager, fleet: Fleet) -> None:
    """--no-server: no socket, nothing listens, the timer still writes; adding the server later and
    leaving it out again change only the server's units; uninstall leaves nothing either way."""
    assert unit_files(user_manager) == [], "the module's install is still there"
    work = world_readable_dir("agent-exporter-no-server-")
    config = work / "config.yml"
    config.write_text(f"scope: user\ntextfile_dir: {work / 'textfile'}\nagents:\n  - unit: {fleet.running}\n")
    port = free_port()
    args = [EXE, "install", "--scope", "user", "--now", "--interval", f"{INTERVAL:g}", "--config", str(config),
            "--web.listen-address", f"127.0.0.1:{port}"]
    installed = Installed(user_manager, work, config, port, "")
    try:
        done = user_manager.run([*args, "--no-server"], check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        assert unit_files(user_manager) == sorted([*units.WRITER_UNITS, MANIFEST])
        writes(installed, 2, timeout=4 * INTERVAL + 10)
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0  # nobody listens
        listed = user_manager.systemctl("list-units", "--all", "--plain", "--no-legend", "agent-exporter-server*")
        assert listed.stdout.strip() == ""

        done = user_manager.run(args, check=False)  # the server added
        assert done.returncode == 0, done.stdout + done.stderr
        assert unit_files(user_manager) == sorted([*units.UNIT_NAMES, MANIFEST])
        status, body = http_get(installed.url, timeout=10)
        assert status == 200 and b"agent_up{" in body

        done = user_manager.run([*args, "--no-server"], check=False)  # and taken away again
        assert done.returncode == 0, done.stdout + done.stderr
        assert "  systemctl --user disable --now -- agent-exporter-server.socket (--no-server)" in done.stdout
        assert unit_files(user_manager) == sorted([*units.WRITER_UNITS, MANIFEST])
        listed = user_manager.systemctl("list-units", "--all", "--plain", "--no-legend", "agent-exporter-server*")
        assert listed.stdout.strip() == ""
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0

        done = installed.agent_exporter("uninstall", "--scope", "user")
        assert done.returncode == 0 and "left in place" not in done.stdout, done.stdout + done.stderr
        assert unit_files(user_manager) == []
        listed = user_manager.systemctl("list-units", "--all", "--plain", "--no-legend", UNIT_GLOB)
        assert listed.stdout.strip() == ""
        assert not installed.textfile_dir.exists()
    finally:
        uninstall_quietly(installed)
        shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# An unprivileged user's manager


@pytest.mark.usefixtures("sandbox_prerequisites")
def test_user_units_under_an_unprivileged_manager(procs: Processes, public_venv: Venv) -> None:
    """The user variant's sandbox works for a non-root user manager, not only for root's. The units run
    agent-exporter as installed where nobody can run it (this checkout may be closed to other users)."""
    manager = UserManager(user="nobody")
    try:
        manager.start()
        assert manager.user is not None
        # what a systemd host has in /run and the sandbox lacks (see devtools/sandbox.py)
        manager.provide_host_runtime(manager.user.pw_uid)
        manager.install_unit("agent-solo.service", "[Service]\nExecStart=/bin/sleep infinity\n")
        manager.systemctl("start", "agent-solo.service")
        home = manager.base / "home"
        installed = install_into(manager, home, f"scope: user\ntextfile_dir: {home / 'textfile'}\n",
                                 exe=public_venv.exe)
        assert installed.textfile_dir.stat().st_uid == manager.user.pw_uid

        writes(installed, 2, timeout=4 * INTERVAL + 10)
        metrics = parse_metrics(installed.prom.read_text())
        assert installed.prom.stat().st_uid == manager.user.pw_uid
        assert agent_values(metrics, "agent_up") == {"agent-solo": 1.0}
        assert set(PER_AGENT + HOST_AND_RUN) <= sample_names(metrics)
        assert metrics[("agent_exporter_collect_errors", frozenset())] == 0
        result = manager.show(units.WRITER_SERVICE, "Result", "ExecMainStatus")
        assert (result["Result"], result["ExecMainStatus"]) == ("success", "0")

        status, body = http_get(installed.url, timeout=10)
        assert status == 200 and b"agent_up{" in body, body[:300]
        pid = int(manager.show(units.SERVER_SERVICE, "MainPID")["MainPID"])
        facts, mine = process_facts(pid), process_facts(os.getpid())
        assert facts["uid"] == str(manager.user.pw_uid)
        assert facts["net"] != mine["net"] and facts["user"] != mine["user"] and facts["mnt"] != mine["mnt"]

        done = installed.agent_exporter("uninstall", "--scope", "user")
        assert done.returncode == 0, done.stderr
        assert unit_files(manager) == []
        listed = manager.systemctl("list-units", "--all", "--plain", "--no-legend", UNIT_GLOB).stdout
        assert listed.strip() == ""
    finally:
        stop_quietly(manager)
