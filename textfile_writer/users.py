"""Several users' managers in one run (`users:` in the configuration; docs/multi-user.md).

Each user's agents are collected from that user's own systemd manager by the same collection as a
single-user run (collect.py, changes.py), with the user's own state (CPU counters, unit cache,
starts counters) in <state dir>/users/<name>/: two users' units of the same name never mix.

systemctl runs as the user, through proc.run: `setpriv --reuid --regid --init-groups` with
XDG_RUNTIME_DIR=/run/user/<uid> and no DBUS_SESSION_BUS_ADDRESS, so `systemctl --user` connects
straight to the manager's private socket. As root, `systemctl --user -M <user>@` reaches the same
manager through a bridge process, and cost 5 times as much a call on the throwaway host (100 ms
against 18-21 ms, docs/multi-user.md). setpriv needs root, or CAP_SETUID and CAP_SETGID (the
writer unit of `agent-exporter install --system` for a configuration with users).

A user who is unknown, or whose manager does not answer, is a collect error with the reason, never
a failed run: the user's agents (its explicit ones, and those its patterns found last time) are
reported down, and its state stays as it was for when the manager answers again.
"""

from __future__ import annotations

import os

from . import __version__, state
from .collect import Agent, Clock, Result, resolve_agents
from .config import UserSpec
from .defaults import STATE_FILE, USER_RUNTIME_DIR, USERS_STATE_DIR
from .errors import CommandError, SystemdError
from .host import read_host
from .model import AgentSample, Snapshot
from .proc import run
from .records import NamedTuple
from .unitglob import any_match

TYPE_CHECKING = False  # typing, collections.abc: names for the type checker only
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from . import unitcache
    from .cgroups import Cgroupfs
    from .options import Settings
    from .proc import Completed, Runner

    Log = Callable[[str], None]
    Spawn = Callable[..., Completed]  # proc.run: (argv, timeout, env=...)
    # writer._collect: one user's collection from its own state and unit cache
    CollectOne = Callable[[Settings, Runner, Cgroupfs | None, Clock | None, str, Log],
                          tuple[Result, unitcache.Cache | None]]


class Account(NamedTuple):
    name: str
    uid: int
    gid: int


class Part(NamedTuple):
    """One user's collection that answered, with what to keep of it after the textfile."""

    settings: Settings  # the user's: its agents, its state directory
    result: Result
    known: unitcache.Cache | None


def account(name: str) -> Account | None:
    """The user's uid and primary group from the password database, or None for no such user."""
    import pwd

    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    return Account(name, entry.pw_uid, entry.pw_gid)


def runner_as(who: Account, spawn: Spawn = run) -> Runner:
    """A runner whose commands run as the user, against its own manager."""
    env: Mapping[str, str | None] = {"XDG_RUNTIME_DIR": f"{USER_RUNTIME_DIR}/{who.uid}",
                                     "DBUS_SESSION_BUS_ADDRESS": None}
    prefix: tuple[str, ...] = ()
    if who.uid != os.geteuid():
        # --inh-caps=-all: systemctl gets none of the writer's capabilities (from a uid other than 0,
        # setresuid keeps them, and ambient ones would pass through the exec)
        prefix = ("setpriv", f"--reuid={who.uid}", f"--regid={who.gid}", "--init-groups", "--inh-caps=-all", "--")

    def runner(argv: Sequence[str], timeout: float) -> Completed:
        return spawn([*prefix, *argv], timeout, env=env)

    return runner


def user_settings(settings: Settings, spec: UserSpec) -> Settings:
    """The settings of one user's collection: its agents, asked in user scope, its own state directory."""
    config = settings.config._replace(scope="user", agents=spec.agents, users=())
    return settings._replace(config=config, state_dir=os.path.join(settings.state_dir, USERS_STATE_DIR, spec.name),
                             config_cache=None)


def collect_users(settings: Settings, collect_one: CollectOne, cgroupfs: Cgroupfs | None = None,
                  clock: Clock | None = None, proc_root: str = "/proc", note: Log | None = None,
                  spawn: Spawn = run) -> tuple[Result, list[Part]]:
    """Every configured user's agents, each labelled with its user, as one Result; and the parts
    whose state is to be kept once the textfile is written."""
    clock = clock or Clock()
    started_ns = clock.monotonic_ns()
    samples: list[AgentSample] = []
    problems: list[str] = []
    parts: list[Part] = []
    for spec in settings.config.users:
        mine = user_settings(settings, spec)
        part, why = _ask(mine, spec.name, collect_one, cgroupfs, clock, proc_root, note, spawn)
        if part is None:
            problems.append(f"user {spec.name}: {why}; its agents are reported down")
            samples += down_samples(mine, spec.name, proc_root)
            continue
        parts.append(part)
        samples += [a._replace(user=spec.name) for a in part.result.snapshot.agents]
        problems += [f"user {spec.name}: {p}" for p in part.result.problems]
    host = parts[0].result.snapshot.host if parts else read_host(settings.config.disk_path, proc_root)[0]
    snapshot = Snapshot(tuple(samples), host, clock.wall(), (clock.monotonic_ns() - started_ns) / 1e9,
                        len(problems), __version__, by_user=True)
    # (each user's counters are in its Part, kept in its own directory: the run as a whole keeps none)
    empty = state.State(state.boot_id(proc_root), "user", 0, {})
    return Result(snapshot, empty, tuple(problems)), parts


def _ask(mine: Settings, user: str, collect_one: CollectOne, cgroupfs: Cgroupfs | None, clock: Clock,
         proc_root: str, note: Log | None, spawn: Spawn) -> tuple[Part | None, str]:
    """One user's collection, or (None, why the user could not be asked)."""
    who = account(user)
    if who is None:
        return None, "no such user"

    def log(message: str) -> None:
        if note is not None:
            note(f"user {user}: {message}")

    try:
        result, known = collect_one(mine, runner_as(who, spawn), cgroupfs, clock, proc_root, log)
    except (SystemdError, CommandError) as exc:
        return None, f"its systemd manager did not answer ({exc})"
    return Part(mine, result, known), ""


def down_samples(settings: Settings, user: str, proc_root: str = "/proc") -> list[AgentSample]:
    """The agents of a user whose manager cannot be asked: its explicit ones, and the units its
    patterns found in its last run that answered (its state file), each down."""
    config = settings.config
    previous, _why = state.load(os.path.join(settings.state_dir, STATE_FILE), state.boot_id(proc_root), "user")
    patterns = [str(s.pattern) for s in config.patterns]
    seen = [] if previous is None else sorted(u for u in previous.counters if any_match(patterns, u))
    wanted = {s.unit for s in config.explicit}
    agents, _problems = resolve_agents(config, [{} for _ in config.explicit],
                                       [(u, {}) for u in seen if u not in wanted])
    return [_down(agent, user) for agent, _props in agents]


def _down(agent: Agent, user: str) -> AgentSample:
    # state "unknown": agent_up 0 and no agent_state line at 1; the figures are absent, not zero
    expected = agent.expect or "running"
    return AgentSample(agent.name, agent.type, agent.unit, "user", "unknown", "unknown", None, None, None, 0.0,
                       None, None, None, expected=expected, reason=None if expected == "stopped" else "down",
                       labels=agent.labels, user=user)

