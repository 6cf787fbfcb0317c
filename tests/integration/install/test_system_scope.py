"""System scope under a real systemd booted as PID 1 (devtools.throwaway): the README's real-host
quick start, run as a new user would, then every system-scope path.

One host for the module, set up in order as the README says: a venv of Debian's python3 under
/opt with the package installed from wheels, the config in /etc/agent-exporter, then
`install --scope system --now --interval 2` (its --dry-run first). The tests read what that host does;
the last ones uninstall, then install and uninstall the writer alone (--no-server).
Only the real PID 1 showed that a dynamic user cannot reach it through Debian 12's dbus-daemon,
and that systemd refuses to clean the state of a failed unit.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from host_checks import journal, node_exporter_metrics, stat_line, wait_for_rewrite
from procs import need

from devtools.harness import agent_values, parse_metrics
from devtools.throwaway import SHARE_MOUNT, ThrowawayHost, throwaway_supported
from devtools.wheels import build_wheels
from textfile_writer.install import units
from textfile_writer.model import UP_STATES

pytestmark = pytest.mark.integration

VENV = "/opt/agent-exporter"
EXE = f"{VENV}/bin/agent-exporter"
CONFIG = "/etc/agent-exporter/config.yml"
TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"
TEXTFILE = f"{TEXTFILE_DIR}/agents.prom"
INTERVAL = 2
# systemd-analyze security's verdict inside the booted system (the same limits as offline)
MAX_EXPOSURE = {units.WRITER_SERVICE: 1.0, units.SERVER_SERVICE: 1.5}

AGENTS = {
    "agent-running.service": "[Service]\nExecStart=/bin/sleep infinity\n",
    "agent-crashloop.service": "[Unit]\nStartLimitIntervalSec=0\n[Service]\n"
                               "ExecStart=/bin/sh -c 'sleep 0.5; exit 3'\nRestart=always\nRestartSec=1\n",
    "agent-idle.service": "[Service]\nExecStart=/bin/sleep infinity\n",  # installed, never started
    "agent-failed.service": "[Service]\nExecStart=/bin/false\n",
}
STARTED = ("agent-running.service", "agent-crashloop.service", "agent-failed.service")
CONFIG_TEXT = f"""scope: system
textfile_dir: {TEXTFILE_DIR}
agents:
  - pattern: "agent-*.service"
"""


class System:
    """The booted host with the package installed, and what the tests ask it."""

    def __init__(self, host: ThrowawayHost) -> None:
        self.host = host
        self.install_output = ""
        self.plan_output = ""  # install --dry-run, just before
        self.after_plan = ""  # what the host looked like between the two

    def sh(self, script: str, check: bool = True, timeout: float = 120) -> str:
        return self.host.run(["sh", "-ec", script], check=check, timeout=timeout).stdout

    def textfile(self) -> bytes | None:
        done = self.host.run(["cat", TEXTFILE], check=False)
        return done.stdout.encode() if done.returncode == 0 else None

    def wait_for_rewrite(self, timeout: float = 30) -> str:
        return wait_for_rewrite(self.host, TEXTFILE, timeout)

    def stat(self, path: str) -> str:
        return stat_line(self.host, path)

    def journal(self, unit: str = units.WRITER_SERVICE) -> str:
        return journal(self.host, unit)

    def getent(self, database: str, key: str) -> int:
        return self.host.run(["getent", database, key], check=False).returncode

    def facts(self) -> str:
        """What install changes, as one text: its accounts, the directories, the unit files."""
        return self.sh(f"getent group agent-exporter || true; getent passwd agent-exporter || true; "
                       f"stat -c '%U:%G %a' {TEXTFILE_DIR}; ls -d /var/lib/agent-exporter 2>/dev/null || true; "
                       "ls /etc/systemd/system | grep agent-exporter || true")


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    why = throwaway_supported()
    if why:
        pytest.fail(f"a throwaway host cannot boot here: {why}")
    for tool in ("curl", "prometheus-node-exporter"):
        need(tool)
    host = ThrowawayHost()
    try:
        build_wheels(host.share / "wheels")
        host.start()
        s = System(host)
        # the README's real-host quick start, word for word but for the wheel directory's path
        wheels = f"{SHARE_MOUNT}/wheels"
        s.sh(f"python3 -m venv {VENV}\n"
             f"{VENV}/bin/pip install --quiet --no-index --find-links {wheels} agent-exporter\n"
             "mkdir -p /etc/agent-exporter\n")
        host.write_file(CONFIG, CONFIG_TEXT)
        for name, text in AGENTS.items():
            host.write_file(f"/etc/systemd/system/{name}", text)
        host.systemctl("daemon-reload")
        host.systemctl("start", "--no-block", *STARTED)
        s.sh(f"{EXE} check --config {CONFIG} --system-check")
        s.plan_output = s.sh(f"{EXE} install --scope system --now --interval {INTERVAL} --config {CONFIG} --dry-run")
        s.after_plan = s.facts()
        s.install_output = s.sh(f"{EXE} install --scope system --now --interval {INTERVAL} --config {CONFIG}")
        yield s
    finally:
        host.stop()


def test_install_makes_the_user_the_group_and_the_directory(system: System) -> None:
    out = system.install_output
    assert "  create system group agent-exporter" in out, out
    assert "  create system user agent-exporter" in out, out
    passwd = system.host.run(["getent", "passwd", "agent-exporter"]).stdout.strip().split(":")
    assert int(passwd[2]) != 0 and passwd[6] == "/usr/sbin/nologin" and passwd[5] == "/nonexistent", passwd
    assert system.sh(f"stat -c '%U:%G %a' {TEXTFILE_DIR}").strip() == "root:agent-exporter 2775"
    for unit in units.ENABLED:
        assert system.host.systemctl("is-enabled", unit).stdout.strip() == "enabled"
        assert system.host.systemctl("is-active", unit).stdout.strip() == "active"


def plan_lines(output: str) -> list[str]:
    """The plan as install or install --dry-run says it: after the header, before the units."""
    return output.split("\n\n", 1)[0].splitlines()[1:]


def test_the_dry_run_was_the_plan_install_carried_out(system: System) -> None:
    assert system.after_plan == "root:root 755\n", system.after_plan  # nothing changed by the dry run
    plan = plan_lines(system.plan_output)
    assert plan == plan_lines(system.install_output), system.plan_output
    assert plan[:4] == [
        "  create system group agent-exporter (the writer's, to write the textfile directory): "
        "groupadd --system -- agent-exporter",
        "  create system user agent-exporter (no home, no shell; the writer runs as it): useradd --system --gid "
        "agent-exporter --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin --comment "
        "'agent-exporter writer' -- agent-exporter",
        f"  textfile directory {TEXTFILE_DIR}: group root -> agent-exporter, mode 0755 -> 2775: "
        "chgrp agent-exporter, chmod 2775",
        "  state directory /var/lib/agent-exporter (StateDirectory=, owner agent-exporter, mode 0700): systemd "
        "creates it on the writer's first run; it keeps the timer's CPU counters (agent-exporter status "
        "--state-dir /var/lib/agent-exporter); uninstall removes it",
    ]
    for name in units.UNIT_NAMES:
        assert f"\n# /etc/systemd/system/{name}\n" in system.plan_output


def test_the_timer_runs_the_writer_as_its_user_over_dbus(system: System) -> None:
    system.wait_for_rewrite()
    text = system.wait_for_rewrite()  # twice: the timer keeps firing
    owner = system.stat(TEXTFILE).split()[-3:]
    assert owner == ["agent-exporter", "agent-exporter", "644"], owner
    props = system.host.show(units.WRITER_SERVICE, "User", "DynamicUser", "Result", "ExecMainStatus")
    assert props["User"] == "agent-exporter" and props["DynamicUser"] == "no", props
    assert props["Result"] == "success", system.journal()
    # every agent was found through PID 1: the writer's systemctl calls reached it over D-Bus
    up = agent_values(parse_metrics(text), "agent_up")
    assert set(up) == {name.removesuffix(".service") for name in AGENTS}, text


def test_values_agree_with_systemctl_show(system: System) -> None:
    text = system.wait_for_rewrite()
    after = {name: system.host.show(name, "ActiveState", "NRestarts", "LoadState") for name in AGENTS}
    metrics = parse_metrics(text)
    up = agent_values(metrics, "agent_up")
    restarts = agent_values(metrics, "agent_restart_count")
    assert up["agent-running"] == 1 and up["agent-idle"] == 0 and up["agent-failed"] == 0, up
    assert after["agent-failed.service"]["ActiveState"] == "failed"
    for name, props in after.items():
        agent = name.removesuffix(".service")
        if name == "agent-crashloop.service":  # it moves between the read and the show
            assert 0 <= int(props["NRestarts"]) - restarts[agent] <= 3, (restarts[agent], props)
            assert restarts[agent] >= 1, "the crash-looping agent was never restarted"
            continue
        assert up[agent] == int(props["ActiveState"] in UP_STATES), (name, props)
        assert restarts[agent] == int(props["NRestarts"] or 0), (name, props)
    assert metrics[("agents_total", frozenset())] == len(AGENTS)
    assert metrics[("agent_exporter_collect_errors", frozenset())] <= 1  # only the crash-looping race


def test_node_exporter_service_serves_the_file(system: System) -> None:
    system.host.systemctl("start", "prometheus-node-exporter.service")
    body = node_exporter_metrics(system.host, 9100)
    assert re.search(r"^node_textfile_scrape_error 0$", body, re.M), body[-2000:]
    assert 'agent_up{agent="agent-running",type="primary"} 1' in body


def test_socket_activated_server_answers(system: System) -> None:
    done = system.host.run(["curl", "-sf", "http://127.0.0.1:9200/metrics"])
    assert 'agent_up{agent="agent-running",type="primary"} 1' in done.stdout
    assert "agent_exporter_textfile_age_seconds" in done.stdout
    props = system.host.show(units.SERVER_SERVICE, "ActiveState", "DynamicUser")
    assert props == {"ActiveState": "active", "DynamicUser": "yes"}, props


def test_systemd_analyze_security_inside(system: System) -> None:
    for unit, limit in MAX_EXPOSURE.items():
        out = system.host.run(["systemd-analyze", "security", "--no-pager", unit], check=False).stdout
        found = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", out)
        assert found, out
        assert 0 < float(found.group(1)) <= limit, f"{unit}: {found.group(0)}"


def test_second_install_changes_nothing(system: System) -> None:
    before = {n: system.stat(f"/etc/systemd/system/{n}") for n in units.UNIT_NAMES}
    out = system.sh(f"{EXE} install --scope system --now --interval {INTERVAL} --config {CONFIG}")
    assert out.splitlines()[-1] == "nothing to change: already installed as asked", out
    assert {n: system.stat(f"/etc/systemd/system/{n}") for n in units.UNIT_NAMES} == before


def test_dbus_stopped_keeps_the_old_file(system: System) -> None:
    system.wait_for_rewrite()
    system.host.systemctl("stop", units.WRITER_TIMER)
    try:
        system.host.systemctl("stop", "dbus.socket", "dbus.service")
        old = system.textfile()
        assert old is not None
        # the writer as its unit runs it
        failed = system.host.systemctl("start", units.WRITER_SERVICE, check=False)
        assert failed.returncode != 0
        assert system.textfile() == old
        # and by hand, as its user: one line, non-zero
        done = system.host.run([EXE, "write", "--scope", "system", "--config", CONFIG, "--state-dir",
                                "/var/lib/agent-exporter"], user="agent-exporter", check=False)
        assert done.returncode != 0
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert done.stderr.startswith("agent-exporter: error: systemctl"), done.stderr
        assert system.textfile() == old
        # the unit's run logged its one line too (journald may lag behind on a busy machine)
        deadline = time.monotonic() + 30
        while not [line for line in system.journal().splitlines() if line.startswith("agent-exporter: error:")]:
            if time.monotonic() > deadline:
                run = system.host.show(units.WRITER_SERVICE, "Result", "ExecMainCode", "ExecMainStatus",
                                       "InvocationID")
                tagged = system.host.run(["journalctl", "--no-pager", "-o", "verbose", "-n", "3",
                                          "SYSLOG_IDENTIFIER=agent-exporter"], check=False)
                raise AssertionError(f"no error line in the writer's journal: {system.journal()!r}\nthe run: {run}\n"
                                     f"its identifier's last entries: {tagged.stdout}{tagged.stderr}\n"
                                     f"PID 1's console:\n{system.host.log_tail()}")
            time.sleep(0.5)
    finally:
        system.host.systemctl("reset-failed", units.WRITER_SERVICE, check=False)
        system.host.systemctl("start", "dbus.socket", units.WRITER_TIMER)
    system.host.systemctl("start", units.WRITER_SERVICE)  # works again with dbus back
    assert system.host.show(units.WRITER_SERVICE, "Result")["Result"] == "success"


def test_uninstall_leaves_nothing(system: System) -> None:
    done = system.host.run([EXE, "uninstall", "--scope", "system"], check=False)
    assert done.returncode == 0 and "left in place" not in done.stdout, done.stdout + done.stderr
    leftovers = system.sh("ls -d /etc/systemd/system/agent-exporter* /etc/systemd/system/*.wants/agent-exporter* "
                          "/var/lib/agent-exporter /var/lib/private/agent-exporter "
                          f"{TEXTFILE} {TEXTFILE_DIR}/.agents.prom* 2>/dev/null || true")
    assert leftovers == "", leftovers
    assert system.getent("passwd", "agent-exporter") == 2
    assert system.getent("group", "agent-exporter") == 2
    assert system.sh(f"stat -c '%U:%G %a' {TEXTFILE_DIR}").strip() == "root:root 755"
    listed = system.host.systemctl("list-units", "--all", "--plain", "--no-legend", "agent-exporter*").stdout
    assert listed.strip() == "", listed


def test_no_server_installs_and_uninstalls_the_writer_alone(system: System) -> None:
    """After the full uninstall above: the writer and its timer only, then nothing again."""
    out = system.sh(f"{EXE} install --scope system --now --no-server --interval {INTERVAL} --config {CONFIG}")
    assert "  create system user agent-exporter (no home" in out and "no server (--no-server)" in out, out
    installed = system.sh("ls /etc/systemd/system | grep agent-exporter").split()
    assert sorted(installed) == sorted([*units.WRITER_UNITS, "agent-exporter.install.json"]), installed
    system.wait_for_rewrite()
    listed = system.host.systemctl("list-units", "--all", "--plain", "--no-legend", "agent-exporter-server*").stdout
    assert listed.strip() == "", listed
    done = system.host.run([EXE, "uninstall", "--scope", "system"], check=False)
    assert done.returncode == 0 and "left in place" not in done.stdout, done.stdout + done.stderr
    assert system.facts() == "root:root 755\n", system.facts()
