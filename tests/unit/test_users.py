"""users.py and `users:` (several users' managers in one run): the configuration, the user label, the
runner as each user, a user who cannot be asked. The real managers are asked in
tests/integration/install/test_users_scope.py, on the throwaway host."""

from __future__ import annotations

import os
import pwd
from collections.abc import Sequence
from pathlib import Path

import pytest
from builders import HOST
from captured import CGROUP_ROOT, FIXTURES, fleet_replay
from test_collect import CLOCK, CONFIG
from test_config import test_errors_name_file_line_and_key as one_line_config_error

from textfile_writer import state
from textfile_writer.cgroups import Cgroupfs
from textfile_writer.collect import collect
from textfile_writer.config import AgentSpec, Config, UserSpec, parse_config
from textfile_writer.metrics import render
from textfile_writer.model import Snapshot
from textfile_writer.options import Settings
from textfile_writer.proc import Completed
from textfile_writer.users import account, collect_users, down_samples, runner_as, user_settings
from textfile_writer.writer import _collect

# render() of fleet_snapshot() by the code before users: existed (main at d706e22), byte for byte,
# but for one deliberate change since: agent_memory_peak_bytes for every agent whose cgroup keeps a
# peak (its HELP, and two agents' lines). Regenerate it only for a deliberate change of the
# single-user output.
SINGLE_USER = FIXTURES / "render" / "fleet.prom"


def fleet_snapshot() -> Snapshot:
    """The captured fleet collected as in test_collect.py, with the builders' host and fixed figures."""
    snap = collect(CONFIG, None, fleet_replay(), 5, Cgroupfs(str(CGROUP_ROOT)), CLOCK).snapshot
    return snap._replace(host=HOST, duration_seconds=0.0125, version="0.1.0")


def as_users(snap: Snapshot, *users: str) -> Snapshot:
    """The same agents under each of users, as a run over their managers makes it."""
    return snap._replace(agents=tuple(a._replace(user=u) for u in users for a in snap.agents), by_user=True)


# -- the output ---------------------------------------------------------------------------------


def test_the_single_user_output_is_byte_for_byte_what_it_was() -> None:
    assert render(fleet_snapshot()).encode() == SINGLE_USER.read_bytes()


def test_one_user_differs_only_by_the_user_label_on_per_agent_lines() -> None:
    single = SINGLE_USER.read_text()
    text = render(as_users(fleet_snapshot(), "alice"))
    assert text != single
    assert text.replace(',user="alice"', "") == single
    for line in text.splitlines():
        per_agent = line.startswith("agent_") and "{agent=" in line
        assert (',user="alice"' in line) == per_agent, line
        if per_agent:  # right after agent and type, before the family's own labels
            assert '",type="' in line.split(',user="alice"')[0] and line.count("user=") == 1, line


def test_two_users_with_the_same_agents_stay_distinct() -> None:
    snap = fleet_snapshot()
    text = render(as_users(snap, "bob", "alice"))
    up = [line for line in text.splitlines() if line.startswith("agent_up{")]
    assert len(up) == 2 * len(snap.agents) == len(set(up))
    # sorted by agent name; one agent's users in the configuration's order
    assert up[0].startswith('agent_up{agent="agent-absent",type="primary",user="bob"}'), up[:2]
    assert up[1].startswith('agent_up{agent="agent-absent",type="primary",user="alice"}'), up[:2]
    assert f"agents_total {2 * len(snap.agents)}\n" in text


# -- the configuration --------------------------------------------------------------------------

USERS = """\
agents:
  - pattern: "agent-*"
users:
  - alice
  - user: bob
    agents:
      - unit: worker
        type: support
"""


def test_users_with_shared_and_own_agents() -> None:
    cfg = parse_config(USERS, "u.yml", scope="system")
    shared = (AgentSpec(type="primary", pattern="agent-*.service"),)
    assert cfg.users == (UserSpec("alice", shared),
                         UserSpec("bob", (AgentSpec(type="support", unit="worker.service"),)))
    assert cfg.scope == "user"  # users' managers, whatever the default scope
    assert Config.from_dict(cfg.to_dict()) == cfg


def test_a_list_of_names_takes_the_builtin_agents() -> None:
    cfg = parse_config("users: [alice, bob]\n", "u.yml", scope="system")
    assert [u.name for u in cfg.users] == ["alice", "bob"]
    assert all(u.agents == Config(scope="user").agents for u in cfg.users)


def test_a_config_without_users_caches_as_before() -> None:
    assert "users" not in parse_config("agents: [{unit: a}]\n", "c.yml", scope="user").to_dict()


@pytest.mark.parametrize(("text", "expected"), [
    ("users: []\n", "c.yml:1: users: must be a non-empty list of user names or {user: NAME, agents: [...]}"),
    ("users: alice\n", "c.yml:1: users: must be a non-empty list"),
    ("users: [alice, bob, alice]\n", "c.yml:1: users[2]: user alice is already listed at users[0]"),
    ("users:\n  - alice\n  - user: alice\n", "c.yml:3: users[1].user: user alice is already listed at users[0]"),
    ("users: [-rf]\n", "c.yml:1: users[0]: '-rf' is not a user name"),
    ("users: ['1000']\n", "c.yml:1: users[0]: '1000' is not a user name"),
    ("users: ['al ice']\n", "c.yml:1: users[0]: 'al ice' is not a user name"),
    ("users: [" + "a" * 33 + "]\n", "c.yml:1: users[0]: '" + "a" * 33 + "' is longer than 32 characters"),
    ("users: [null]\n", "c.yml:1: users[0]: must be a non-empty string, got None"),
    ("users: [[alice]]\n", "c.yml:1: users[0]: must be a mapping of key: value"),
    ("users:\n  - agents: []\n", "c.yml:2: users[0]: needs a 'user' (a user name)"),
    ("users:\n  - user: a\n    name: b\n", "c.yml:3: users[0].name: unknown key (expected one of: user, agents)"),
    ("users:\n  - user: a\n    agents:\n      - unit: x\n        nme: y\n",
     "c.yml:5: users[0].agents[0].nme: unknown key"),
    ("users:\n  - user: a\n    agents: {unit: x}\n",
     "c.yml:3: users[0].agents: must be a list of entries with 'unit' or 'pattern'"),
    ("scope: system\nusers: [a]\n", "c.yml:1: scope: must be 'user' (or left out) with 'users'"),
])
def test_users_errors_name_file_line_and_key(text: str, expected: str) -> None:
    one_line_config_error(text, expected)  # as every configuration error


# -- asking each user's manager -----------------------------------------------------------------


class Calls:
    """proc.run's place in runner_as: records each call and answers as a manager that is not there."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[str, ...], dict[str, str | None]]] = []

    def __call__(self, argv: Sequence[str], timeout: float, env: dict[str, str | None]) -> Completed:
        self.calls.append((tuple(argv), env))
        return Completed(tuple(argv), 1, "", "Failed to connect to bus: No such file or directory\n")


def test_the_runner_switches_to_the_user_with_its_runtime_dir() -> None:
    calls = Calls()
    other = account("nobody")
    assert other is not None and other.uid != os.geteuid()
    runner_as(other, calls)(["systemctl", "--user", "show"], 5)
    argv, env = calls.calls[0]
    assert argv == ("setpriv", f"--reuid={other.uid}", f"--regid={other.gid}", "--init-groups", "--inh-caps=-all",
                    "--", "systemctl", "--user", "show")
    assert env == {"XDG_RUNTIME_DIR": f"/run/user/{other.uid}", "DBUS_SESSION_BUS_ADDRESS": None}


def test_the_runner_for_oneself_needs_no_setpriv() -> None:
    calls = Calls()
    me = account(pwd.getpwuid(os.geteuid()).pw_name)
    assert me is not None
    runner_as(me, calls)(["systemctl", "--user", "show"], 5)
    assert calls.calls[0][0] == ("systemctl", "--user", "show")


def test_an_unknown_user_is_none() -> None:
    assert account("no-such-user-here") is None


def settings(tmp_path: Path, text: str) -> Settings:
    return Settings(parse_config(text, "u.yml", scope="system"), str(tmp_path / "state"), 5.0, False)


def test_a_user_who_cannot_be_asked_is_a_collect_error_with_its_agents_down(tmp_path: Path) -> None:
    s = settings(tmp_path, "users:\n  - user: no-such-user-here\n    agents: [{unit: a}, {pattern: 'b-*'}]\n"
                           "  - user: nobody\n    agents: [{unit: a, expect: stopped}]\n")
    calls = Calls()
    result, parts = collect_users(s, _collect, Cgroupfs(str(CGROUP_ROOT)), CLOCK, spawn=calls)
    assert parts == []
    assert result.problems == (
        "user no-such-user-here: no such user; its agents are reported down",
        "user nobody: its systemd manager did not answer (systemctl list-units failed: Failed to connect to "
        "bus: No such file or directory); its agents are reported down")
    text = render(result.snapshot)
    assert 'agent_up{agent="a",type="primary",user="no-such-user-here"} 0\n' in text
    assert 'agent_up{agent="a",type="primary",user="nobody"} 0\n' in text
    assert 'agent_healthy{agent="a",type="primary",user="no-such-user-here"} 0\n' in text
    assert 'agent_healthy{agent="a",type="primary",user="nobody"} 1\n' in text  # expected stopped
    assert "agent_memory_kb{" not in text and 'state="inactive"} 1' not in text  # unknown, not zero
    assert "agent_exporter_collect_errors 2\n" in text
    assert not (tmp_path / "state").exists()  # nothing kept: the users' last state stays as it was


def test_the_agents_its_patterns_found_last_time_are_reported_down(tmp_path: Path) -> None:
    s = settings(tmp_path, "users:\n  - user: no-such-user-here\n    agents: [{unit: a}, {pattern: 'b-*'}]\n")
    mine = user_settings(s, s.config.users[0])
    assert mine.state_dir == str(tmp_path / "state" / "users" / "no-such-user-here")
    assert mine.config.users == () and mine.config.scope == "user"
    os.makedirs(mine.state_dir)
    counters = {u: state.Counter(1, 2) for u in ("b-1.service", "b-2.service", "c.service")}
    Path(mine.state_dir, "cpu-state").write_bytes(state.State(state.boot_id(), "user", 1, counters).dumps())
    down = down_samples(mine, "no-such-user-here")
    assert [(a.name, a.up, a.user, a.reason) for a in down] == [
        ("a", False, "no-such-user-here", "down"), ("b-1", False, "no-such-user-here", "down"),
        ("b-2", False, "no-such-user-here", "down")]
