"""One collection: configured agents -> systemd (+ cgroupfs, psutil fallbacks) + host -> Snapshot.

A problem with one unit becomes a log line and a count in agent_exporter_collect_errors; only a
failure that leaves us knowing nothing about the agents (systemctl unusable) fails the run.
"""

from __future__ import annotations

import os
import time

from . import __version__, changes, health, state, systemd, unitglob
from .cgroups import Cgroupfs, rss_bytes
from .config import AgentSpec, Config, Probe, default_agent_name
from .errors import CommandError, SystemdError
from .host import read_host
from .model import UP_STATES, AgentSample, Snapshot
from .records import NamedTuple, maker
from .unitcache import Cache

TYPE_CHECKING = False  # typing, collections.abc: names for the type checker only
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from .probe import ProbeResult
    from .proc import Runner
    from .systemd import UnitProperties


class Agent(NamedTuple):
    """A configured or discovered agent: the unit, its labels and what its entry expects of it."""

    unit: str
    name: str
    type: str
    expect: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    probe: Probe | None = None


# (every field given, in order: records.maker's fast path; type-checked as the class)
_new_agent = maker(Agent)
_new_sample = maker(AgentSample)
_new_counter = maker(state.Counter)


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
        add(_new_agent(unit, spec.name or default_agent_name(unit), spec.type, spec.expect, spec.labels,
                  spec.probe), props)
    patterns = config.patterns
    for unit, props in discovered:
        match = _first_pattern(patterns, unit, props)
        if match is not None:
            add(_new_agent(unit, default_agent_name(unit), match.type, match.expect, match.labels,
                      match.probe), props)
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
    timed = {agent.unit: t for agent, props in agents if (t := _timer_of(agent, props))}
    timers = _timers(config.scope, sorted(set(timed.values())), runner, timeout, problems)
    probes = _probe(agents, config.interval_seconds)  # before the clock is read: CPU % is per elapsed time
    host, host_problems = read_host(config.disk_path, proc_root)
    unit = _UnitRun(previous, cgroupfs, clock.monotonic_ns(), clock.wall(), os.cpu_count() or 1,
                    host.swap_total_bytes != 0, config.interval_seconds, timed, timers, probes)
    samples: list[AgentSample] = []
    counters: dict[str, state.Counter] = {}
    measured = {} if answer is None else answer.measured
    for agent, props in agents:
        # a block from the cache has no MEASURED property (a shown one has all): its figures come apart
        figures = None if "MemoryCurrent" in props else measured.get(props.get("Id", ""))
        sample, counters[agent.unit] = _agent_sample(agent, props, config.scope, unit, problems, figures)
        samples.append(sample)
    problems.extend(host_problems)
    snapshot = Snapshot(
        agents=tuple(samples), host=host, timestamp=clock.wall(),
        duration_seconds=(clock.monotonic_ns() - started_ns) / 1e9,
        collect_errors=len(problems), version=__version__,
    )
    new_state = state.State(boot, config.scope, unit.now_ns, counters)
    return Result(snapshot, new_state, tuple(problems), answer)


class _UnitRun(NamedTuple):
    """What every agent's sample of one run shares."""

    previous: state.State | None
    cgroupfs: Cgroupfs
    now_ns: int
    now_wall: float
    cpus: int
    swap: bool  # the host has swap: agents' swap is worth reading
    interval: float
    timer_of: dict[str, str]  # unit -> the timer that may start it (_timer_of)
    timers: dict[str, dict[str, str]]  # those timers' properties, by Id
    probes: dict[str, ProbeResult]  # by unit, for agents with a probe

    def wall(self, monotonic_us: int | None) -> float | None:
        """A CLOCK_MONOTONIC time of systemd's as Unix time (None for none or 0)."""
        return None if not monotonic_us else self.now_wall - (self.now_ns / 1e3 - monotonic_us) / 1e6


def _timers(scope: str, names: Sequence[str], runner: Runner, timeout: float,
            problems: list[str]) -> dict[str, dict[str, str]]:
    """One `show` of the timers that may start agents (none asked when no agent may have one)."""
    if not names:
        return {}
    try:
        return systemd.timers(scope, names, runner, systemd.Budget.start(timeout))
    except (SystemdError, CommandError) as exc:
        more = f" and {len(names) - 3} more" if len(names) > 3 else ""
        problems.append(f"timers {', '.join(names[:3])}{more}: {exc}")
        return {}


def _timer_of(agent: Agent, props: UnitProperties) -> str | None:
    """The timer that starts the agent: the first TriggeredBy names, else for a oneshot (or an agent
    configured `expect: timer`) the timer of its own name, a timer's default Unit= (systemd stops
    listing it in TriggeredBy when it is stopped and unloaded: then it is the late one)."""
    for word in props.get("TriggeredBy", "").split():
        if word.endswith(".timer"):
            return word
    if agent.expect == "timer" or (agent.expect is None and health.oneshot(props)):
        return agent.unit.removesuffix(".service") + ".timer"
    return None


def probe_budget(agents: Sequence[Agent], interval: float) -> float:
    """All probes of a run together take at most this long: their longest timeout, and never more
    than half the writer's interval (a hung agent must not delay the file)."""
    return min(max((a.probe.timeout_seconds for a in agents if a.probe is not None), default=0.0), interval / 2)


def _probe(agents: Sequence[tuple[Agent, UnitProperties]], interval: float) -> dict[str, ProbeResult]:
    targets = [(agent.unit, agent.probe) for agent, _props in agents if agent.probe is not None]
    if not targets:
        return {}
    from .probe import run_probes  # only where a probe is configured: sockets cost every run an import

    return run_probes(targets, probe_budget([a for a, _props in agents], interval))


def _agent_sample(agent: Agent, props: UnitProperties, scope: str, run: _UnitRun, problems: list[str],
                  figures: changes.Measured | None = None) -> tuple[AgentSample, state.Counter]:
    # Runs for every agent every run: the run's and the agent's fields unpacked once into locals
    # (a NamedTuple's field read by name is a generic attribute lookup), props read once each.
    unit, name, agent_type, expect, labels, _probe_spec = agent
    previous, cgroupfs, now_ns, now_wall, cpus, has_swap, interval, timer_of, timers, probes = run
    get = props.get
    uint = systemd.uint
    active = get("ActiveState") or "inactive"
    load_state = get("LoadState") or "not-found"
    up = active in UP_STATES
    cgroup = get("ControlGroup", "")
    if load_state in ("error", "bad-setting"):
        problems.append(f"{unit}: systemd could not load the unit ({load_state})")

    if figures is None:
        cpu_ns, memory, tasks = uint(props, "CPUUsageNSec"), uint(props, "MemoryCurrent"), uint(props, "TasksCurrent")
    else:
        cpu_ns, memory, tasks = figures
    if cgroup and (cpu_ns is None or memory is None or tasks is None):
        cpu_ns, memory, tasks = _from_cgroup(cgroupfs, cgroup, cpu_ns, memory, tasks)
    memory_max, memory_high = uint(props, "MemoryMax"), uint(props, "MemoryHigh")
    peak = cgroupfs.memory_peak(cgroup) if cgroup else None  # (where the cgroup keeps one)
    # (no sample at all on a host without swap: no agent can use any)
    swap = cgroupfs.swap_bytes(cgroup) if has_swap and cgroup else None
    if not up:
        memory = 0 if memory is None else memory
        tasks = 0 if tasks is None else tasks
        swap = 0 if swap is None and has_swap else swap
    elif cpu_ns is None or memory is None:
        missing = " and ".join(w for w, v in (("CPU", cpu_ns), ("memory", memory)) if v is None)
        problems.append(f"{unit}: {missing} unknown (no systemd accounting, cgroup "
                        f"{cgroup or '(none)'} unreadable)")

    enter_us = uint(props, "ActiveEnterTimestampMonotonic") or None
    uptime = max(0.0, (now_ns / 1e3 - enter_us) / 1e6) if up and enter_us else 0.0
    start_time = run.wall(enter_us)

    # Why it last stopped (ExecMainCode: 0 never exited, 1 exited, 2 killed, 3 dumped core), its
    # starts, its OOM kills
    result = None if load_state == "not-found" else health.result_state(get("Result"))
    if result == health.OTHER_RESULT:
        problems.append(f"{unit}: unknown Result={get('Result')!r} (reported as result=\"other\")")
    code = status = exit_us = None
    if get("ExecMainCode", "0") != "0":  # a long-running agent's main process has not exited
        code, status = uint(props, "ExecMainCode"), uint(props, "ExecMainStatus")
        exit_us = uint(props, "ExecMainExitTimestampMonotonic") or None
    before = None if previous is None else previous.counters.get(unit)
    invocation = get("InvocationID", "")
    restarts = uint(props, "NRestarts")
    starts, seen = health.count_starts(before, invocation, restarts)
    recent = health.recent_starts(before, seen, now_wall)
    oom_raw = uint(props, changes.OOM_KILLS) if changes.OOM_KILLS in props else (
        cgroupfs.oom_kills(cgroup) if cgroup else None)
    ooms, oom_raw, oom_time, oom_mark = health.count_ooms(before, invocation, oom_raw, result, exit_us, now_wall,
                                                          cgroupfs.counts_ooms)

    timer_name = timer_of.get(unit)
    timer = None if timer_name is None else timers.get(timer_name)
    if timer is not None and timer.get("LoadState") in ("not-found", "", None):
        timer_name = timer = None  # a oneshot without a timer of its name
    expectation = health.expected(expect, props, timer_name)
    last = next_ = None
    late = False
    if timer is not None:
        last = run.wall(systemd.timespan_us(timer.get("LastTriggerUSecMonotonic", "")))
        next_ = systemd.timestamp(timer.get("NextElapseUSecRealtime", "")) or run.wall(
            systemd.timespan_us(timer.get("NextElapseUSecMonotonic", "")))
        late = health.timer_late(timer.get("ActiveState") == "active", last, next_, now_wall, interval)

    probe = probes.get(unit) if probes else None
    counter = _new_counter(cpu_ns, enter_us, starts, restarts, invocation, ooms, oom_raw, oom_time, oom_mark,
                           recent)
    if not up:
        cpu_percent: float | None = 0.0
    elif cpu_ns is None:
        cpu_percent = None
    else:
        cpu_percent = state.cpu_percent(before, counter, now_ns - previous.taken_ns, cpus) \
            if previous is not None else None

    ok = None if probe is None else probe.success
    # Positional, in AgentSample's field order (half the cost of 35 keywords, for every agent every
    # run); tests/unit/test_collect.py checks each field of a sample by name.
    sample = _new_sample(
        name, agent_type, unit, scope, active, load_state, memory,
        None if cpu_ns is None else cpu_ns / 1e9, cpu_percent, uptime, start_time, restarts, tasks,
        # result, exit_code, exit_signal, exit_time_seconds, starts, recent_starts
        result, status if code == 1 else None, status if code in (2, 3) else None,
        run.wall(exit_us), starts, len(recent),
        # memory_max_bytes, memory_high_bytes, memory_peak_bytes, swap_bytes, oom_kills, oom_time_seconds
        memory_max, memory_high, peak, swap, ooms, oom_time,
        # expected, reason, timer, timer_last_seconds, timer_next_seconds
        expectation, health.health(expectation, active, load_state, result, len(recent), late, ok),
        timer_name if timer is not None else None, last, next_,
        # probe_success, probe_duration_seconds, probe_status, labels, user (users.py sets it)
        ok, None if probe is None else round(probe.duration_seconds, 6), None if probe is None else probe.http_status,
        labels, None,
    )
    return sample, counter


def _from_cgroup(cgroupfs: Cgroupfs, cgroup: str, cpu_ns: int | None, memory: int | None,
                 tasks: int | None) -> tuple[int | None, int | None, int | None]:
    """The figures systemd did not give (None), from the unit's cgroup; memory, last of all, as the
    RSS of its processes."""
    if cpu_ns is None:
        cpu_ns = cgroupfs.cpu_ns(cgroup)
    if memory is None:
        memory = cgroupfs.memory_bytes(cgroup)
        if memory is None:
            pids = cgroupfs.pids(cgroup)
            memory = rss_bytes(pids) if pids else None
    if tasks is None:
        tasks = cgroupfs.tasks(cgroup)
    return cpu_ns, memory, tasks
