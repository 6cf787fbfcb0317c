"""The Debian package on a real systemd booted as PID 1 (devtools.throwaway), as docs/package.md
tells an admin to use it, then its faults, removal, purge and an upgrade.

One host for the module, in order: `apt-get install ./agent-exporter_<version>_all.deb` (offline:
the host's lower layer is this machine's /, where the Makefile installed the dependencies), the
config in /etc/agent-exporter/agents.yml, the reference's 16 agents as system services (13
primary, 3 support; two stopped, one failing, one crash-looping), the timer's period shortened by
a drop-in. Then: the file in /var/lib/prometheus/node-exporter, Debian's node_exporter service
serving it, the socket-activated server, Prometheus scraping both with the shipped config and
rules, the values against `systemctl show`; the faults (an unreadable config, the textfile
directory's group or mode changed by another package, D-Bus restarted between two runs);
`apt-get remove` then `purge` against a snapshot taken before the install; and an upgrade from the
previous version's package.

The previous version's package is this tree built as 0.1.0~pre1 (its Python package says that
version too): 0.1.0 is the version being released (CHANGELOG's section for it collects what
comes after 2026-11-24 under Unreleased), and the tree of 2026-11-24 has no system scope and no
`install --package` for a package of it to call.
"""

from __future__ import annotations

import difflib
import json
import re
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from host_checks import journal, node_exporter_metrics, stat_line, wait_for_rewrite
from procs import need

from devtools.fleet import DEMO_FLEET, DemoAgent
from devtools.harness import agent_values, parse_metrics
from devtools.stack import prometheus_config, shortened_rules
from devtools.throwaway import HOST_PYTHON, SHARE_MOUNT, ThrowawayHost, throwaway_supported
from textfile_writer import __version__
from textfile_writer.install import package, units
from textfile_writer.model import UP_STATES

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
PREVIOUS = "0.1.0~pre1"
DEB = f"agent-exporter_{__version__}-1_all.deb"
OLD_DEB = f"agent-exporter_{PREVIOUS}-1_all.deb"
TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"
TEXTFILE = f"{TEXTFILE_DIR}/agents.prom"
CONFIG = package.CONFIG
STATE = "/var/lib/agent-exporter/cpu-state"
INTERVAL = 2
NODE_PORT = 9101  # the host has a network namespace of its own: nothing else listens there
PROMETHEUS_PORT = 9091
FLEET: tuple[DemoAgent, ...] = DEMO_FLEET[:16]  # the reference's 13 primary and 3 support
DROP_IN = "/etc/systemd/system/agent-exporter.timer.d/interval.conf"
# An empty OnBootSec= resets every OnXSec= of the timer; then both at the shortened period.
DROP_IN_TEXT = f"[Timer]\nOnBootSec=\nOnBootSec={INTERVAL}s\nOnUnitActiveSec={INTERVAL}s\n"
APT = ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-y", "-q"]
# What the package may change on the host and must leave as it found it once purged.
SNAPSHOT = (
    "set +e; cat /etc/passwd /etc/group; cut -d: -f1 /etc/shadow /etc/gshadow; "
    f"stat -c '%n %U:%G %a' {TEXTFILE_DIR} /var/lib/prometheus; "
    f"ls -A {TEXTFILE_DIR}; "
    "ls -d /etc/agent-exporter /var/lib/agent-exporter* /var/lib/private/agent-exporter /usr/bin/agent-exporter "
    "/usr/lib/python3/dist-packages/textfile_writer /usr/share/doc/agent-exporter "
    "/usr/share/man/man1/agent-exporter.1.gz /usr/share/lintian/overrides/agent-exporter 2>/dev/null; "
    "find /etc/systemd /lib/systemd/system /run/systemd/system /var/lib/systemd -name '*agent-exporter*' | sort; "
    "dpkg-query -W -f='${Status}\\n' agent-exporter 2>&1; true"
)


def config_text() -> str:
    support = [a for a in FLEET if a.type == "support"]
    lines = ["scope: system", f"interval_seconds: {INTERVAL}", "agents:"]
    lines += [f"  - unit: {a.unit}\n    type: support" for a in support]
    lines += ['  - pattern: "agent-*.service"', "    type: primary"]
    return "\n".join(lines) + "\n"


class Host:
    """The booted host and what the tests ask it."""

    def __init__(self, host: ThrowawayHost) -> None:
        self.host = host
        self.before = ""  # SNAPSHOT before the package was installed
        self.install_output = ""

    def sh(self, script: str, check: bool = True, timeout: float = 180) -> str:
        return self.host.run(["sh", "-ec", script], check=check, timeout=timeout).stdout

    def apt(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.host.run([*APT, *args], check=check, timeout=300)

    def stat(self, path: str) -> str:
        return stat_line(self.host, path)

    def journal(self, unit: str = units.WRITER_SERVICE) -> str:
        return journal(self.host, unit)

    def wait_for_rewrite(self) -> str:
        return wait_for_rewrite(self.host, TEXTFILE, timeout=40)

    def curl(self, url: str) -> str:
        return self.host.run(["curl", "-sf", "--max-time", "10", url]).stdout

    def query(self, expr: str) -> list[dict[str, object]]:
        url = f"http://127.0.0.1:{PROMETHEUS_PORT}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        result: list[dict[str, object]] = json.loads(self.curl(url))["data"]["result"]
        return result

    def stop_timer(self, *how: str) -> None:
        """Stop the writer's timer (`how`: "disable", "--now"), and wait for a run it started just before."""
        self.host.systemctl(*(how or ("stop",)), units.WRITER_TIMER)
        while self.host.systemctl("is-active", units.WRITER_SERVICE, check=False).stdout.strip() == "activating":
            time.sleep(0.1)

    def run_writer_once(self) -> str:
        """One run of the installed writer's unit; the file it wrote."""
        self.host.systemctl("start", units.WRITER_SERVICE)
        result = self.host.show(units.WRITER_SERVICE, "Result")["Result"]
        assert result == "success", self.journal()
        return self.host.run(["cat", TEXTFILE]).stdout


def build_deb(out: Path, work: Path, version: str | None = None) -> None:
    argv = [sys.executable, str(ROOT / "packaging" / "build_deb.py"), "--output", str(out), "--work", str(work)]
    done = subprocess.run([*argv, *(["--version", version] if version else [])], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def deb_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    why = throwaway_supported()
    if why:
        pytest.fail(f"a throwaway host cannot boot here: {why}")
    for tool in ("curl", "prometheus", "prometheus-node-exporter", "apt-get"):
        need(tool)
    work = tmp_path_factory.mktemp("deb")
    host = ThrowawayHost()
    try:
        build_deb(host.share, work / "current")
        build_deb(host.share, work / "previous", PREVIOUS)
        prom = host.share / "prometheus"
        prom.mkdir()
        rules = shortened_rules(prom, for_="10s", interval="2s")
        prometheus_config(prom, {"agent-monitoring": "127.0.0.1:9200", "node": f"127.0.0.1:{NODE_PORT}"},
                          alertmanager=None, rules=Path(SHARE_MOUNT) / "prometheus" / rules.name, interval="2s")
        host.start()
        h = Host(host)
        # This machine's image forbids starting services from maintainer scripts (a policy-rc.d that
        # exits 101, as container images have); a real host has none, and the postinst must start
        # the timer and the socket.
        host.run(["rm", "-f", "/usr/sbin/policy-rc.d"])
        h.before = h.sh(SNAPSHOT)
        for agent in FLEET:
            host.write_file(f"/etc/systemd/system/{agent.unit}", agent.unit_text(python=HOST_PYTHON))
        host.systemctl("daemon-reload")
        host.systemctl("start", "--no-block", *(a.unit for a in FLEET if a.kind != "stopped"))
        # docs/package.md's quick start, but for the .deb's directory and the shortened period
        h.install_output = h.apt("install", f"{SHARE_MOUNT}/{DEB}").stdout
        host.write_file(CONFIG, config_text())
        h.sh(f"agent-exporter check --config {CONFIG} --system-check")
        host.write_file(DROP_IN, DROP_IN_TEXT)
        host.systemctl("daemon-reload")
        host.systemctl("restart", units.WRITER_TIMER)
        yield h
    finally:
        host.stop()


def test_the_package_installs_offline_and_starts_the_timer_and_the_socket(deb_host: Host) -> None:
    host = deb_host.host
    assert "Setting up agent-exporter" in deb_host.install_output, deb_host.install_output
    assert host.run(["dpkg-query", "-W", "-f=${Version}", "agent-exporter"]).stdout == f"{__version__}-1"
    passwd = host.run(["getent", "passwd", "agent-exporter"]).stdout.strip().split(":")
    assert int(passwd[2]) != 0 and passwd[6] == "/usr/sbin/nologin", passwd
    assert deb_host.sh(f"stat -c '%U:%G %a' {TEXTFILE_DIR}").strip() == "root:agent-exporter 2775"
    for unit in units.ENABLED:
        assert host.systemctl("is-enabled", unit).stdout.strip() == "enabled", unit
        assert host.systemctl("is-active", unit).stdout.strip() == "active", unit
    # the units are the package's files, as the installer renders them for the package's paths
    for name, text in package.package_units().items():
        assert host.read_file(f"{package.UNIT_DIR}/{name}").decode() == text, name
    assert host.run(["sh", "-c", "ls /etc/systemd/system | grep agent-exporter || true"]).stdout.split() == [
        "agent-exporter.timer.d"]  # the test's drop-in, and no unit of install's
    # bytecode for Debian's python3, compiled by the postinst (the writer's user could not write it)
    cache = deb_host.sh("ls /usr/lib/python3/dist-packages/textfile_writer/__pycache__")
    assert "__main__.cpython-311.pyc" in cache.split(), cache


def test_the_timer_writes_the_file_as_the_writer_user(deb_host: Host) -> None:
    deb_host.wait_for_rewrite()
    text = deb_host.wait_for_rewrite()  # twice: the timer keeps firing at the drop-in's period
    assert deb_host.stat(TEXTFILE).split()[-3:] == ["agent-exporter", "agent-exporter", "644"]
    props = deb_host.host.show(units.WRITER_SERVICE, "User", "ExecMainStatus", "Result")
    assert props == {"User": "agent-exporter", "ExecMainStatus": "0", "Result": "success"}, deb_host.journal()
    metrics = parse_metrics(text)
    types = {dict(labels)["agent"]: dict(labels)["type"] for (name, labels) in metrics if name == "agent_up"}
    assert types == {a.name: a.type for a in FLEET}, types
    assert metrics[("agent_exporter_build_info", frozenset({("version", __version__)}))] == 1


def test_values_agree_with_systemctl_show(deb_host: Host) -> None:
    text = deb_host.wait_for_rewrite()
    after = {a.name: deb_host.host.show(a.unit, "ActiveState", "NRestarts") for a in FLEET}
    metrics = parse_metrics(text)
    up = agent_values(metrics, "agent_up")
    restarts = agent_values(metrics, "agent_restart_count")
    for agent in FLEET:
        props = after[agent.name]
        if agent.kind == "crashloop":  # it moves between the read and the show
            assert 0 <= int(props["NRestarts"]) - restarts[agent.name] <= 3, (restarts[agent.name], props)
            assert restarts[agent.name] >= 1, "the crash-looping agent was never restarted"
            continue
        assert up[agent.name] == int(props["ActiveState"] in UP_STATES), (agent.name, props)
        assert restarts[agent.name] == int(props["NRestarts"] or 0), (agent.name, props)
    # the crash-looping agent is up for a second at a time
    down = {a.name for a in FLEET if up[a.name] == 0 and a.kind != "crashloop"}
    assert down == {a.name for a in FLEET if a.kind in ("stopped", "failed")}, up
    assert metrics[("agents_total", frozenset())] == len(FLEET)
    assert metrics[("agents_running_total", frozenset())] == sum(up.values())


def test_debians_node_exporter_service_serves_the_file(deb_host: Host) -> None:
    host = deb_host.host
    host.write_file("/etc/default/prometheus-node-exporter", f'ARGS="--web.listen-address=127.0.0.1:{NODE_PORT}"\n')
    host.systemctl("restart", "prometheus-node-exporter.service")
    body = node_exporter_metrics(host, NODE_PORT)
    assert re.search(r"^node_textfile_scrape_error 0$", body, re.M), body[-2000:]
    assert 'agent_up{agent="agent-core_dev",type="primary"} 1' in body
    assert 'agent_up{agent="agent-backup",type="support"} 0' in body


def test_the_socket_activated_server_answers(deb_host: Host) -> None:
    body = deb_host.curl("http://127.0.0.1:9200/metrics")
    assert 'agent_up{agent="agent-core_dev",type="primary"} 1' in body
    assert "agent_exporter_textfile_age_seconds" in body
    props = deb_host.host.show(units.SERVER_SERVICE, "ActiveState", "DynamicUser")
    assert props == {"ActiveState": "active", "DynamicUser": "yes"}, props


def test_prometheus_scrapes_both_with_the_shipped_config_and_rules(deb_host: Host) -> None:
    host = deb_host.host
    host.run(["systemd-run", "--unit=test-prometheus", "--property=StateDirectory=test-prometheus",
              "prometheus", f"--config.file={SHARE_MOUNT}/prometheus/prometheus.yml",
              "--storage.tsdb.path=/var/lib/test-prometheus", f"--web.listen-address=127.0.0.1:{PROMETHEUS_PORT}",
              "--log.level=warn"])
    try:
        deadline = time.monotonic() + 60
        found: dict[str, list[dict[str, object]]] = {}
        while time.monotonic() < deadline:
            found = {job: deb_host.query(f'up{{job="{job}"}} == 1') if _ready(host) else []
                     for job in ("agent-monitoring", "node")}
            if all(found.values()) and deb_host.query("agents_running_total"):
                break
            time.sleep(1)
        assert all(found.values()), (found, deb_host.journal("test-prometheus.service"))
        running = [float(r["value"][1]) for r in deb_host.query("agents_running_total")]  # type: ignore[index]
        runs = sum(a.kind == "run" for a in FLEET)
        assert running in ([runs], [runs + 1]), running  # + the crash-looping agent, up for a second at a time
        scrape_error = deb_host.query('node_textfile_scrape_error{job="node"}')
        assert [float(r["value"][1]) for r in scrape_error] == [0.0], scrape_error  # type: ignore[index]
        # the shipped rules are loaded and evaluated: the failed agent's alert is there
        deadline = time.monotonic() + 60
        alerts: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            alerts = json.loads(deb_host.curl(f"http://127.0.0.1:{PROMETHEUS_PORT}/api/v1/alerts"))["data"]["alerts"]
            if any(a["labels"].get("alertname") == "AgentDown" and a["labels"].get("agent") == "agent-docs"  # type: ignore[attr-defined]
                   for a in alerts):
                break
            time.sleep(1)
        else:
            raise AssertionError(f"no AgentDown alert for agent-docs: {alerts}")
    finally:
        host.systemctl("stop", "test-prometheus.service", check=False)


def _ready(host: ThrowawayHost) -> bool:
    return host.run(["curl", "-sf", f"http://127.0.0.1:{PROMETHEUS_PORT}/-/ready"], check=False).returncode == 0


def test_systemd_analyze_verify_and_security(deb_host: Host) -> None:
    host = deb_host.host
    paths = [f"{package.UNIT_DIR}/{n}" for n in units.UNIT_NAMES]
    done = host.run(["systemd-analyze", "verify", *paths], check=False)
    assert done.returncode == 0 and done.stdout + done.stderr == "", done.stdout + done.stderr
    for unit, limit in {units.WRITER_SERVICE: 1.0, units.SERVER_SERVICE: 1.5}.items():
        out = host.run(["systemd-analyze", "security", "--no-pager", unit], check=False).stdout
        found = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", out)
        assert found and 0 < float(found.group(1)) <= limit, out[-500:]


# -- faults ------------------------------------------------------------------------------------

def test_a_config_the_writer_cannot_read_is_named_with_what_to_do(deb_host: Host) -> None:
    host = deb_host.host
    deb_host.stop_timer()
    try:
        old = host.read_file(TEXTFILE)
        host.run(["chmod", "0600", CONFIG])
        done = host.systemctl("start", units.WRITER_SERVICE, check=False)
        assert done.returncode != 0
        assert host.read_file(TEXTFILE) == old
        expected = (f"agent-exporter: error: {CONFIG}: cannot read the file: Permission denied; agent-exporter runs "
                    f"as user agent-exporter (group agent-exporter) here: make the file and its directories readable "
                    f"by it (chmod 0644 {CONFIG}, or chgrp agent-exporter {CONFIG} and chmod 0640 {CONFIG})")
        deadline = time.monotonic() + 30
        while expected not in deb_host.journal().splitlines():
            assert time.monotonic() < deadline, deb_host.journal()
            time.sleep(0.5)
        # what the error says to do works
        host.run(["chgrp", "agent-exporter", CONFIG])
        host.run(["chmod", "0640", CONFIG])
        host.systemctl("reset-failed", units.WRITER_SERVICE)
        assert deb_host.run_writer_once() != old.decode()
    finally:
        host.run(["chmod", "0644", CONFIG], check=False)
        host.systemctl("reset-failed", units.WRITER_SERVICE, check=False)
        host.systemctl("start", units.WRITER_TIMER)


@pytest.mark.parametrize(("change", "advice", "install_says"), [
    # another package gives the directory to its own group, group-writable: install alone could
    # run the writer with that group; the package's units name theirs
    ("chgrp prometheus {d}", "is group-writable for prometheus, but the package's units run the writer with group "
                             "agent-exporter; give it back to root's group for the package to arrange: chgrp root {d}, "
                             "then run dpkg --configure -a",
     "  textfile directory {d}: already group-writable for prometheus; the writer runs with that group, unchanged"),
    # another package takes the group's write permission away (chmod keeps a directory's setgid bit)
    ("chmod g-w {d}", "belongs to group agent-exporter, which cannot write it (mode 2755); make it group-writable "
                      "again: chmod 2775 {d}, then run dpkg --configure -a",
     "agent-exporter: error: textfile directory {d} belongs to group agent-exporter, which cannot write it (mode "
     "2755); make it group-writable again: chmod 2775 {d}, then run agent-exporter install again"),
])
def test_the_textfile_directory_changed_by_another_package(deb_host: Host, change: str, advice: str,
                                                          install_says: str) -> None:
    host = deb_host.host
    deb_host.sh(change.format(d=TEXTFILE_DIR))
    try:
        # the package's postinst says what to do (here on a reinstall; an upgrade runs it alike)
        done = deb_host.apt("install", "--reinstall", f"{SHARE_MOUNT}/{DEB}", check=False)
        assert done.returncode != 0, done.stdout
        assert host.run(["dpkg-query", "-W", "-f=${Status}", "agent-exporter"]).stdout == \
            "install ok half-configured"
        line = f"agent-exporter: error: textfile directory {TEXTFILE_DIR} {advice.format(d=TEXTFILE_DIR)}"
        assert line in (done.stdout + done.stderr).splitlines(), done.stdout + done.stderr
        # and so does `agent-exporter install` (its dry run decides, and refuses, as the real run would)
        done = host.run(["agent-exporter", "install", "--scope", "system", "--dry-run", "--config", CONFIG],
                        check=False)
        said = done.stdout + done.stderr
        assert install_says.format(d=TEXTFILE_DIR) in said.splitlines(), said
        # doing what it says, then dpkg --configure -a, configures the package
        fix = re.search(rf"(chgrp root|chmod 2775) {TEXTFILE_DIR}", advice.format(d=TEXTFILE_DIR))
        assert fix
        deb_host.sh(fix.group(0))
        host.run(["dpkg", "--configure", "-a"])
        assert deb_host.sh(f"stat -c '%U:%G %a' {TEXTFILE_DIR}").strip() == "root:agent-exporter 2775"
        deb_host.wait_for_rewrite()
    finally:
        deb_host.sh(f"chgrp agent-exporter {TEXTFILE_DIR}; chmod 2775 {TEXTFILE_DIR}; dpkg --configure -a", check=False)


def test_dbus_restarted_between_two_runs(deb_host: Host) -> None:
    host = deb_host.host
    deb_host.stop_timer()
    try:
        first = deb_host.run_writer_once()
        host.systemctl("restart", "dbus.service")
        assert host.systemctl("is-active", "dbus.service").stdout.strip() == "active"
        second = deb_host.run_writer_once()
        assert second != first
        assert agent_values(parse_metrics(second), "agent_up") == agent_values(parse_metrics(first), "agent_up")
    finally:
        host.systemctl("start", units.WRITER_TIMER)


# -- removal, purge, upgrade -------------------------------------------------------------------

def test_remove_then_purge_leaves_nothing(deb_host: Host) -> None:
    host = deb_host.host
    deb_host.wait_for_rewrite()
    host.run(["rm", "-r", "/etc/systemd/system/agent-exporter.timer.d"])  # the test's own drop-in
    installed = deb_host.sh(SNAPSHOT)
    for trace in ("agent-exporter:x:", f"{TEXTFILE_DIR} root:agent-exporter 2775", "agents.prom",
                  "/usr/bin/agent-exporter", "timers.target.wants/agent-exporter.timer", "install ok installed"):
        assert trace in installed and trace not in deb_host.before, trace  # what the snapshot sees
    deb_host.apt("remove", "agent-exporter")
    # removed: nothing runs, the textfile is gone and the directory is Debian's again; the
    # writer's user and state wait for purge
    # (their enablement links stay until purge, as Debian keeps them for a reinstall: the timer and
    # the socket are still listed, not-found and inactive)
    listed = host.systemctl("list-units", "--all", "--plain", "--no-legend", "--state=active,activating,failed",
                            "agent-exporter*").stdout
    assert listed.strip() == "", listed
    assert host.run(["ls", "-A", TEXTFILE_DIR]).stdout == ""
    assert deb_host.sh(f"stat -c '%U:%G %a' {TEXTFILE_DIR}").strip() == "root:root 755"
    assert host.run(["getent", "passwd", "agent-exporter"], check=False).returncode == 0
    assert host.run(["test", "-e", STATE], check=False).returncode == 0
    deb_host.apt("purge", "agent-exporter")
    after = deb_host.sh(SNAPSHOT)
    assert after == deb_host.before, "\n".join(
        line for line in difflib.unified_diff(deb_host.before.splitlines(), after.splitlines(),
                                                              "before install", "after purge", lineterm=""))


def test_an_upgrade_keeps_the_config_and_the_cpu_counters(deb_host: Host) -> None:
    host = deb_host.host
    deb_host.apt("install", f"{SHARE_MOUNT}/{OLD_DEB}")
    try:
        host.write_file(CONFIG, config_text())
        host.write_file(DROP_IN, DROP_IN_TEXT)
        host.systemctl("daemon-reload")
        host.systemctl("restart", units.WRITER_TIMER)
        deb_host.wait_for_rewrite()
        old = parse_metrics(deb_host.wait_for_rewrite())
        assert ("agent_exporter_build_info", frozenset({("version", PREVIOUS)})) in old
        # The admin stops the timer: the postinst keeps that choice, and the first run of the new
        # version is the one below.
        deb_host.stop_timer("disable", "--now")
        state = host.read_file(STATE)
        config = host.read_file(CONFIG)
        deb_host.apt("install", f"{SHARE_MOUNT}/{DEB}")
        assert host.run(["dpkg-query", "-W", "-f=${Version}", "agent-exporter"]).stdout == f"{__version__}-1"
        assert host.systemctl("is-enabled", units.WRITER_TIMER, check=False).stdout.strip() == "disabled"
        assert host.read_file(CONFIG) == config
        assert host.read_file(STATE) == state  # no run since the upgrade
        new = parse_metrics(deb_host.run_writer_once())
        assert ("agent_exporter_build_info", frozenset({("version", __version__)})) in new
        # CPU % needs the previous run's counters: the first run of the new version has them for
        # every running agent (it would have none with a lost state), and its counts went on
        running = {a.name for a in FLEET if a.kind == "run"}
        assert set(agent_values(new, "agent_cpu_percent")) >= running, agent_values(new, "agent_cpu_percent")
        starts_old, starts_new = agent_values(old, "agent_starts_total"), agent_values(new, "agent_starts_total")
        crashloop = next(a.name for a in FLEET if a.kind == "crashloop")
        assert starts_new[crashloop] >= starts_old[crashloop] > 0, (starts_old[crashloop], starts_new[crashloop])
        for agent in running:
            assert starts_new[agent] == starts_old[agent], agent
    finally:
        host.run(["rm", "-rf", "/etc/systemd/system/agent-exporter.timer.d"], check=False)
        deb_host.apt("purge", "agent-exporter", check=False)
    assert deb_host.sh(SNAPSHOT) == deb_host.before
