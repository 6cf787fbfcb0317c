"""One collection: configured agents -> systemd (+ cgroupfs, psutil fallbacks) + host -> Snapshot.

A problem with one unit becomes a log line and a count in agent_exporter_collect_errors; only a
failure that leaves us knowing nothing about the agents (systemctl unusable) fails the run.
"""

from __future__ import annotations

import os
import time

from . import __version__, changes, state, systemd, unitglob
from .cgroups import Cgroupfs, rss_bytes
from .config import AgentSpec, Config, default_agent_name
from .host import read_host
from .model import UP_STATES, AgentSample, Snapshot
from .records import NamedTuple
from .unitcache import Cache

TYPE_CHECKING = False  # typing, collections.abc: names for the type checker only
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from .proc import Runner
    from .systemd import UnitProperties


class Agent(NamedTuple):
    """A configured or discovered agent: the unit and its labels."""

    unit: str
    name: str
    type: str


class Clock(NamedTuple):
    wall: Callable[[], float] = time.time
    monotonic_ns: Callable[[], int] = time.monotonic_ns


class Result(NamedTuple):
    snapshot: Snapshot
    state: state.State
    problems: tuple[str, ...]
    units: changes.Answer | None = None  # a change-driven run's cache and counts


class ChangeDriven(NamedTuple):
    """Collect change-driven (changes.py), from the last run's unit cache (None: none usable)."""

    cache: Cache | None


def resolve_agents(config: Config, explicit: Sequence[UnitProperties],
                   discovered: Sequence[tuple[str, UnitProperties]]
                   ) -> tuple[list[tuple[Agent, UnitProperties]], list[str]]:
    """Explicit entries first (they win), then each discovered unit under its first pattern."""
    agents: list[tuple[Agent, UnitProperties]] = []
    problems: list[str] = []
    names: dict[str, str] = {}

    def add(agent: Agent, props: UnitProperties) -> None:
        if agent.name in names:
            problems.append(f"{agent.unit}: agent name {agent.name!r} is already used by {names[agent.name]}; "
                            "left out")
            return
        names[agent.name] = agent.unit
        agents.append((agent, props))

    for spec, props in zip(config.explicit, explicit, strict=True):
        unit = str(spec.unit)
        add(Agent(unit, spec.name or default_agent_name(unit), spec.type), props)
    patterns = config.patterns
    for unit, props in discovered:
        match = _first_pattern(patterns, unit, props)
        if match is not None:
            add(Agent(unit, default_agent_name(unit), match.type), props)
    return agents, problems


def _first_pattern(patterns: Sequence[AgentSpec], unit: str, props: UnitProperties) -> AgentSpec | None:
    """The first pattern that matches the unit or one of its aliases (Names), read only when needed."""
    aliases: list[str] | None = None
    for spec in patterns:
        pattern = str(spec.pattern)
        if unitglob.match(pattern, unit):
            return spec
        if aliases is None:
            aliases = [n for n in systemd.split_names(props.get("Names", "")) if n != unit]
        if any(unitglob.match(pattern, n) for n in aliases):
            return spec
    return None


def collect(config: Config, previous: state.State | None, runner: Runner, timeout: float,
            cgroupfs: Cgroupfs | None = None, clock: Clock | None = None,
            proc_root: str = "/proc", change_driven: ChangeDriven | None = None) -> Result:
    """One collection; with `change_driven`, from as little systemd work as its cache allows, and
    the next run's cache in Result.units."""
    clock = clock or Clock()
    cgroupfs = cgroupfs or Cgroupfs()
    started_ns = clock.monotonic_ns()
    explicit = [str(s.unit) for s in config.explicit]
    patterns = [str(s.pattern) for s in config.patterns]
    boot = state.boot_id(proc_root)
    answer = None
    if change_driven is None:
        explicit_props, discovered = systemd.query(config.scope, explicit, patterns, runner, timeout)
    else:
        answer = changes.query(config.scope, explicit, patterns, runner, timeout, cgroupfs,
                               change_driven.cache, boot)
        explicit_props, discovered = answer.explicit, answer.discovered
    agents, problems = resolve_agents(config, explicit_props, discovered)
    now_ns = clock.monotonic_ns()
    now_wall = clock.wall()
    cpus = os.cpu_count() or 1

    samples: list[AgentSample] = []
    counters: dict[str, state.Counter] = {}
    for agent, props in agents:
        sample, counter, unit_problems = _agent_sample(
            agent, props, config.scope, previous, cgroupfs, now_ns, now_wall, cpus)
        samples.append(sample)
        problems.extend(unit_problems)
        if counter is not None:
            counters[agent.unit] = counter

    host, host_problems = read_host(config.disk_path, proc_root)
    problems.extend(host_problems)
    snapshot = Snapshot(
        agents=tuple(samples), host=host, timestamp=clock.wall(),
        duration_seconds=(clock.monotonic_ns() - started_ns) / 1e9,
        collect_errors=len(problems), version=__version__,
    )
    new_state = state.State(boot, config.scope, now_ns, counters)
    return Result(snapshot, new_state, tuple(problems), answer)


def _agent_sample(agent: Agent, props: systemd.UnitProperties, scope: str,
                  previous: state.State | None, cgroupfs: Cgroupfs, now_ns: int,
                  now_wall: float, cpus: int
                  ) -> tuple[AgentSample, state.Counter | None, list[str]]:
    problems: list[str] = []
    active = props.get("ActiveState") or "inactive"
    load_state = props.get("LoadState") or "not-found"
    up = active in UP_STATES
    cgroup = props.get("ControlGroup", "")
    if load_state in ("error", "bad-setting"):
        problems.append(f"{agent.unit}: systemd could not load the unit ({load_state})")

    cpu_ns = systemd.uint(props, "CPUUsageNSec")
    if cpu_ns is None and cgroup:
        cpu_ns = cgroupfs.cpu_ns(cgroup)
    memory = systemd.uint(props, "MemoryCurrent")
    if memory is None and cgroup:
        memory = cgroupfs.memory_bytes(cgroup)
        if memory is None:
            pids = cgroupfs.pids(cgroup)
            memory = rss_bytes(pids) if pids else None
    tasks = systemd.uint(props, "TasksCurrent")
    if tasks is None and cgroup:
        tasks = cgroupfs.tasks(cgroup)
    if not up:
        memory = 0 if memory is None else memory
        tasks = 0 if tasks is None else tasks
    elif cpu_ns is None or memory is None:
        missing = " and ".join(w for w, v in (("CPU", cpu_ns), ("memory", memory)) if v is None)
        problems.append(f"{agent.unit}: {missing} unknown (no systemd accounting, cgroup "
                        f"{cgroup or '(none)'} unreadable)")

    enter_us = systemd.uint(props, "ActiveEnterTimestampMonotonic") or None
    uptime = max(0.0, (now_ns / 1e3 - enter_us) / 1e6) if up and enter_us else 0.0
    start_time = None if enter_us is None else now_wall - (now_ns / 1e3 - enter_us) / 1e6

    counter = None if cpu_ns is None else state.Counter(cpu_ns, enter_us)
    if not up:
        cpu_percent: float | None = 0.0
    elif counter is None:
        cpu_percent = None
    else:
        cpu_percent = state.cpu_percent(previous, agent.unit, counter, now_ns, cpus)

    sample = AgentSample(
        name=agent.name, type=agent.type, unit=agent.unit, scope=scope, state=active,
        load_state=load_state, memory_bytes=memory,
        cpu_seconds=None if cpu_ns is None else cpu_ns / 1e9, cpu_percent=cpu_percent,
        uptime_seconds=uptime, start_time_seconds=start_time,
        restarts=systemd.uint(props, "NRestarts"), tasks=tasks,
    )
    return sample, counter, problems
