"""Several users' managers in one run (`users:`), under a real systemd booted as PID 1 (devtools.throwaway).

One host for the module: two real users (useradd) with lingering managers (`loginctl enable-linger`:
systemd-logind is started by D-Bus activation inside the host, and starts user@UID.service), each
with agents as unit files in ~/.config/systemd/user, enabled so that they start with the manager.
Both users have an agent-web.service, running for alice and failing for bob: the same name with
other values. The config also names `ghost`, a user who does not exist. The package is installed
as the README's real-host quick start does it, then `install --system --now --interval 2` renders
the writer unit for users (docs/multi-user.md) and the timer runs it.

The tests read what the timer's writer makes of it, compare it with `systemctl --user show` run as
each user, stop bob's manager (the next run gives his agents agent_up 0 and a collect error, alice's
figures stay right) and start it again (the run after recovers).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_system_scope import CONFIG, EXE, VENV, System

from devtools.harness import parse_metrics
from devtools.throwaway import SHARE_MOUNT, ThrowawayHost, throwaway_supported
from devtools.wheels import build_wheels
from textfile_writer import state, systemd
from textfile_writer.install import units
from textfile_writer.model import UP_STATES

pytestmark = pytest.mark.integration

INTERVAL = 2
# systemd-analyze security inside the booted host: 1.1 (0.4 for the single-user writer; the two
# capabilities and PrivateUsers=no make the difference; docs/multi-user.md)
MAX_EXPOSURE = 1.1
RUNNING = "[Service]\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=default.target\n"
FAILING = "[Service]\nExecStart=/bin/sh -c 'exit 3'\n[Install]\nWantedBy=default.target\n"
AGENTS = {
    "alice": {"agent-web.service": RUNNING, "agent-db.service": RUNNING},
    "bob": {"agent-web.service": FAILING, "agent-queue.service": RUNNING},
}
CONFIG_TEXT = """\
agents:
  - pattern: "agent-*.service"
users:
  - alice
  - user: bob
    agents:
      - unit: agent-web.service
        type: support
      - pattern: "agent-*.service"
  - user: ghost
    agents:
      - unit: agent-web.service
"""
GHOST_ERROR = "user ghost: no such user; its agents are reported down"
STATE_DIR = "/var/lib/agent-exporter"

Labels = dict[str, str]


class Users(System):
    """The host with the users, their agents and the writer installed for them."""

    def uid(self, user: str) -> int:
        return int(self.host.run(["id", "-u", user]).stdout)

    def user_systemctl(self, user: str, *args: str, check: bool = True) -> str:
        uid = self.uid(user)
        return self.host.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--init-groups", "env",
                              f"XDG_RUNTIME_DIR=/run/user/{uid}", "systemctl", "--user", "--no-pager", *args],
                             check=check).stdout

    def user_show(self, user: str, unit: str, *props: str) -> dict[str, str]:
        out = self.user_systemctl(user, "show", "--property=" + ",".join(props), "--", unit)
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def manager(self, user: str, verb: str) -> None:
        self.host.systemctl(verb, f"user@{self.uid(user)}.service")

    def wait_for(self, ok: Callable[[str], bool], what: str, timeout: float = 40) -> str:
        """The textfile once a run of the timer's writer has made it so that ok(text)."""
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.wait_for_rewrite()
            if ok(text):
                return text
        raise AssertionError(f"{what}: not within {timeout}s; last file:\n{text}\nwriter log:\n{self.journal()}")


def by_user(text: str, family: str) -> dict[tuple[str, str], float]:
    """(user, agent) -> value of a per-agent family."""
    out: dict[tuple[str, str], float] = {}
    for (name, labels), value in parse_metrics(text).items():
        if name == family:
            found = dict(labels)
            out[(found["user"], found["agent"])] = value
    return out


def collect_errors(text: str) -> float:
    return parse_metrics(text)[("agent_exporter_collect_errors", frozenset())]


@pytest.fixture(scope="module")
def users() -> Iterator[Users]:
    why = throwaway_supported()
    if why:
        pytest.fail(f"a throwaway host cannot boot here: {why}")
    host = ThrowawayHost()
    try:
        build_wheels(host.share / "wheels")
        host.start()
        s = Users(host)
        s.sh(f"python3 -m venv {VENV}\n"
             f"{VENV}/bin/pip install --quiet --no-index --find-links {SHARE_MOUNT}/wheels agent-exporter\n"
             "mkdir -p /etc/agent-exporter /var/lib/prometheus/node-exporter\n")
        host.write_file(CONFIG, CONFIG_TEXT)
        for user, agents in AGENTS.items():
            s.sh(f"useradd --create-home {user}")
            unit_dir = f"/home/{user}/.config/systemd/user"
            for name, text in agents.items():
                host.write_file(f"{unit_dir}/{name}", text)
                s.sh(f"mkdir -p {unit_dir}/default.target.wants && ln -s ../{name} {unit_dir}/default.target.wants/")
            s.sh(f"chown -R {user}: /home/{user}/.config")
        # logind (started by D-Bus activation) starts each user's manager, and keeps it without a login
        s.sh("loginctl enable-linger alice bob")
        for user in AGENTS:
            deadline = time.monotonic() + 30
            while s.host.systemctl("is-active", f"user@{s.uid(user)}.service", check=False).stdout.strip() != "active":
                assert time.monotonic() < deadline, f"user@{s.uid(user)}.service did not start:\n{host.log_tail()}"
                time.sleep(0.2)
        s.install_output = s.sh(f"{EXE} install --system --now --interval {INTERVAL} --config {CONFIG}")
        yield s
    finally:
        host.stop()


def test_the_writer_unit_carries_two_capabilities_only(users: Users) -> None:
    props = users.host.show(units.WRITER_SERVICE, "User", "AmbientCapabilities", "CapabilityBoundingSet",
                            "PrivateUsers", "ProtectHome", "NoNewPrivileges")
    assert props == {"User": "agent-exporter", "AmbientCapabilities": "cap_setgid cap_setuid",
                     "CapabilityBoundingSet": "cap_setgid cap_setuid", "PrivateUsers": "no",
                     "ProtectHome": "read-only", "NoNewPrivileges": "yes"}, props
    out = users.host.run(["systemd-analyze", "security", "--no-pager", units.WRITER_SERVICE], check=False).stdout
    found = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", out)
    assert found, out
    assert 0 < float(found.group(1)) <= MAX_EXPOSURE, found.group(0)


def test_both_users_agents_with_the_user_label(users: Users) -> None:
    text = users.wait_for(lambda t: by_user(t, "agent_up").get(("alice", "agent-web")) == 1, "alice's agent-web up")
    up = by_user(text, "agent_up")
    assert up == {("alice", "agent-web"): 1, ("alice", "agent-db"): 1, ("bob", "agent-web"): 0,
                  ("bob", "agent-queue"): 1, ("ghost", "agent-web"): 0}, up
    # every per-agent line has its user; the host's and the run's lines have none
    for line in text.splitlines():
        if line.startswith("agent_") and "{agent=" in line:
            assert re.search(r'^\w+\{agent="[^"]+",type="[^"]+",user="(alice|bob|ghost)"', line), line
        elif not line.startswith("#"):
            assert "user=" not in line, line
    types = {(dict(labels)["user"], dict(labels)["agent"]): dict(labels)["type"]
             for (name, labels) in parse_metrics(text) if name == "agent_up"}
    assert types[("bob", "agent-web")] == "support" and types[("alice", "agent-web")] == "primary"
    assert collect_errors(text) == 1  # ghost
    assert GHOST_ERROR in users.journal()
    assert users.host.show(units.WRITER_SERVICE, "Result")["Result"] == "success"


def agree_with_show(users: Users, text: str, user: str) -> None:
    """The user's figures in the file are what its own manager says (a user manager accounts no CPU,
    memory or tasks itself: those come from the cgroup, and are only checked to be there)."""
    up, restarts, started, memory = (by_user(text, f) for f in ("agent_up", "agent_restart_count",
                                                                "agent_start_time_seconds", "agent_memory_kb"))
    for unit in AGENTS[user]:
        agent = unit.removesuffix(".service")
        props = users.user_show(user, unit, "ActiveState", "NRestarts", "ActiveEnterTimestamp", "ControlGroup")
        assert up[(user, agent)] == int(props["ActiveState"] in UP_STATES), (user, unit, props)
        assert restarts[(user, agent)] == int(props["NRestarts"]), (user, unit, props)
        if props["ActiveState"] == "active":
            entered = systemd.timestamp(props["ActiveEnterTimestamp"])  # to the second
            assert entered is not None and abs(started[(user, agent)] - entered) < 1.5, (started[(user, agent)], props)
            assert memory[(user, agent)] > 0, (user, unit)
            assert props["ControlGroup"].startswith(f"/user.slice/user-{users.uid(user)}.slice/"), props


def test_values_agree_with_each_users_systemctl_show(users: Users) -> None:
    text = users.wait_for_rewrite()
    for user in AGENTS:
        agree_with_show(users, text, user)
    # the same unit name, two users, two figures: bob's failed, alice's runs
    assert users.user_show("bob", "agent-web.service", "ActiveState")["ActiveState"] == "failed"
    assert by_user(text, "agent_uptime_seconds")[("bob", "agent-web")] == 0
    assert by_user(text, "agent_uptime_seconds")[("alice", "agent-web")] > 0


def test_state_is_kept_per_user(users: Users, tmp_path: Path) -> None:
    users.wait_for_rewrite()
    listing = users.sh(f"cd {STATE_DIR}/users && ls -1 */cpu-state */unit-cache.marshal").split()
    assert listing == ["alice/cpu-state", "alice/unit-cache.marshal", "bob/cpu-state", "bob/unit-cache.marshal"]

    def units_kept(user: str) -> set[str]:
        copy = tmp_path / f"{user}-cpu-state"
        copy.write_bytes(users.host.read_file(f"{STATE_DIR}/users/{user}/cpu-state"))
        kept, why = state.load(str(copy), state.boot_id(), "user")  # (the host runs on this kernel)
        assert kept is not None and why is None, why
        return set(kept.counters)

    alice, bob = units_kept("alice"), units_kept("bob")
    assert "agent-web.service" in alice and "agent-web.service" in bob
    assert "agent-db.service" in alice and "agent-db.service" not in bob
    assert "agent-queue.service" in bob and "agent-queue.service" not in alice
    # the running agents have a CPU % from their own previous counters
    text = users.wait_for_rewrite()
    cpu = by_user(text, "agent_cpu_percent")
    assert ("alice", "agent-web") in cpu and ("bob", "agent-queue") in cpu, cpu


def test_a_stopped_manager_is_a_collect_error_and_comes_back(users: Users) -> None:
    users.manager("bob", "stop")
    try:
        text = users.wait_for(lambda t: by_user(t, "agent_up").get(("bob", "agent-queue")) == 0,
                              "bob's agents down with his manager")
        up = by_user(text, "agent_up")
        # bob's agents, the explicit one and the one his pattern found last time, are down
        assert up[("bob", "agent-web")] == 0 and up[("bob", "agent-queue")] == 0, up
        assert collect_errors(text) == 2, text  # ghost, and bob
        assert users.host.show(units.WRITER_SERVICE, "Result")["Result"] == "success"
        assert ("user bob: its systemd manager did not answer (systemctl list-units failed: Failed to connect to "
                "bus: No such file or directory); its agents are reported down") in users.journal()
        agree_with_show(users, text, "alice")  # alice's figures stay right
    finally:
        users.manager("bob", "start")
    text = users.wait_for(lambda t: by_user(t, "agent_up").get(("bob", "agent-queue")) == 1 and collect_errors(t) == 1,
                          "bob's agents back with his manager")
    agree_with_show(users, text, "bob")
    agree_with_show(users, text, "alice")


def test_status_and_check_ask_each_users_manager(users: Users) -> None:
    users.wait_for(lambda t: by_user(t, "agent_up").get(("bob", "agent-queue")) == 1, "bob's agents up")
    done = users.host.run([EXE, "status", "--config", CONFIG, "--state-dir", STATE_DIR], check=False)
    assert done.returncode == 0, done.stderr
    rows = [line.split()[:4] for line in done.stdout.splitlines()]
    assert rows[0] == ["USER", "AGENT", "TYPE", "STATE"], done.stdout
    assert rows[1:6] == [["alice", "agent-db", "primary", "active"], ["alice", "agent-web", "primary", "active"],
                         ["bob", "agent-queue", "primary", "active"], ["bob", "agent-web", "support", "failed"],
                         ["ghost", "agent-web", "primary", "unknown"]], done.stdout
    assert done.stderr.strip() == f"agent-exporter: warning: {GHOST_ERROR}", done.stderr
    done = users.host.run([EXE, "check", "--config", CONFIG, "--system-check"], check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "  user bob (its own manager): 1 explicit agent, 1 pattern\n" in done.stdout, done.stdout
    assert "systemd (user alice): answers; 2 agents found\n" in done.stdout, done.stdout
    assert "systemd (user bob): answers; 2 agents found\n" in done.stdout, done.stdout
    assert "user ghost: no such user" in done.stderr, done.stderr
