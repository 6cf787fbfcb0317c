"""The writer's cost per run against node_exporter's systemd collector per scrape, systemd included (issue 11).

For N installed agents (`agent-benchNNNN.service` running `sleep infinity`, CPU, memory and tasks
accounting on) under a private systemd user manager (devtools.sandbox), in two states -- steady
(all running) and crash-looping (2% of them, at least one, exit after half a second and are
restarted 200 ms later, start limit off) -- it measures, in interleaved rounds (A B C D, A B C D, ...):

  A. floor: the installed venv's `python -c pass` plus one `systemctl --user list-units --all
     --plain --no-legend --full -- 'agent-*'`;
  B. `agent-exporter write` with every agent named in its config;
  C. `agent-exporter write` with the pattern `agent-*.service`;
  D. one GET /metrics of node_exporter's systemd collector on the same manager
     (`--collector.systemd.private`, the manager's private socket bind-mounted onto
     /run/systemd/private in a mount namespace of its own).

The cost of one run or scrape is the CPU of the process and its children (wait4) -- for node_exporter
the CPU its threads gained around the GET -- plus the CPU the systemd manager's threads gained over
the same window. Both of those are read from /proc/<pid>/task/*/schedstat (nanoseconds):
/proc/<pid>/stat counts in 10 ms ticks, too coarse for one scrape; it is kept as a cross-check over
the whole run. What the manager does anyway (restarting crash-looping units) is measured in an idle
window each round and subtracted, pro rata of each measurement's window. The writers keep their
state directories across rounds (after warm-up runs), as the timer's runs do. Peak RSS of the
writer comes from GNU time (`/usr/bin/time -f %M`). Every process started here is stopped by PID.

The same N units serve both states: the 2% are installed crash-capable and switched by a flag file
and one kill. (A first version rewrote their unit files and ran daemon-reload: for a minute after
it, with 20 of 1000 units crash-looping, systemd 252 answered a 1000-unit `show` in 25, 21, 13, then
7 s.) Before measuring, the manager is given time to settle (its CPU per second stable).

Caveat when reading node_exporter's figures: systemd sends every signal to every client of its
private socket (no bus daemon filters them), so while units crash-loop a long scrape also pays for
PropertiesChanged traffic; on the system bus dbus-daemon would filter it, at a CPU cost of its own
that this does not measure.

Run: `python -m benchmarks.bench_systemd --units 16,100,500,1000 --rounds 10 --output
benchmarks/RESULTS.md` (the defaults; `make bench` runs it), as root on a host whose PID 1 is not
systemd (devtools.sandbox), with prometheus-node-exporter and GNU time installed.
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from prometheus_client.parser import text_string_to_metric_families

from benchmarks.bench_writer import install_venv, peak_rss_kb
from benchmarks.results import replace_section
from devtools.sandbox import SandboxManager, sandbox_supported
from devtools.stack import NODE_EXPORTER, Processes, free_port, wait_answering, wait_until

ROOT = Path(__file__).resolve().parent.parent
SECTION = "systemd-bench"
CASES = ("floor", "writer explicit", "writer pattern", "node_exporter")
STATES = ("steady", "crashloop")
CRASH_SHARE = 0.02
WARMUP_ROUNDS = 3
IDLE_WINDOW = 0.5  # seconds per round in which nothing but the manager's own work is measured
SETTLE = 0.05  # after a run or scrape, before the counters are read: the manager finishes the disconnect
RSS_RUNS = 3
UNIT_HEAD = ("[Unit]\nDescription=agent-exporter benchmark agent\nStartLimitIntervalSec=0\n\n[Service]\n"
             "CPUAccounting=yes\nMemoryAccounting=yes\nTasksAccounting=yes\n")
STEADY_UNIT = UNIT_HEAD + "ExecStart=/bin/sleep infinity\n"
# The 2% that crash-loop in the second state are installed like this from the start: they run `sleep
# infinity` until the flag file exists and they are killed once. No daemon-reload between the states
# (one reloads all N units, and systemd 252 stays busy for a while after it).
CRASHABLE_UNIT = UNIT_HEAD + ("ExecStart=/bin/sh -c 'if [ -e {flag} ]; then sleep 0.5; exit 1; fi; exec sleep infinity'"
                              "\nRestart=always\nRestartSec=200ms\n")
# A writer's run may take far longer than it costs while the manager is busy (crash-looping units
# on systemd 252, another tenant's load): its default --timeout (5 s + 10 ms per unit) was hit once
# at 1000 agents here. The benchmark measures cost; a slow run should be a figure, not an abort.
WRITER_TIMEOUT = "30"
SETTLE_MAX = 90.0  # seconds the manager may take to settle after agents were started or began crashing
NODE_EXPORTER_FLAGS = (
    "--collector.disable-defaults", "--collector.systemd", "--collector.systemd.private",
    "--collector.systemd.unit-include=agent-.*", "--collector.systemd.enable-restarts-metrics",
    "--collector.systemd.enable-start-time-metrics", "--collector.systemd.enable-task-metrics",
)
# Targets of issue 11, beside which the results are shown.
TARGET_VS_NODE = {"steady": 0.25, "crashloop": 0.5}
TARGET_GROWTH_MS = 0.1
TARGET_FLOOR_RATIO = 1.5
TARGET_RSS_MB = 30.0


class BenchError(RuntimeError):
    pass


# ---------------------------------------------------------------------------------------------
# Counters


def cpu_ns(pid: int) -> int:
    """CPU time of every thread of pid so far, in ns (the first field of each task's schedstat)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass  # a thread that ended between the listing and the read
    return total


def stat_ms(pid: int) -> float:
    """utime + stime of the whole process from /proc/<pid>/stat, in ms (10 ms ticks)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Cost:
    """One run or scrape: its own CPU, the manager's over the same window (raw), and that window."""

    own_ms: float
    manager_ms: float
    window_s: float
    wall_ms: float  # of the run or the GET alone


@dataclass
class Block:
    """Everything measured for one N and one state."""

    n: int
    state: str
    costs: dict[str, list[Cost]] = field(default_factory=lambda: {c: [] for c in CASES})
    idle_manager_ms: float = 0.0
    idle_s: float = 0.0
    rss_kb: dict[str, int] = field(default_factory=dict)
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average at the start and at the end

    @property
    def background_ms_per_s(self) -> float:
        return self.idle_manager_ms / self.idle_s if self.idle_s else 0.0

    def totals(self, case: str) -> list[float]:
        """Own + manager CPU per measurement, the manager's background work taken out."""
        rate = self.background_ms_per_s
        return [c.own_ms + c.manager_ms - rate * c.window_s for c in self.costs[case]]

    def manager(self, case: str) -> list[float]:
        rate = self.background_ms_per_s
        return [c.manager_ms - rate * c.window_s for c in self.costs[case]]

    def median(self, case: str) -> float:
        return statistics.median(self.totals(case))


class Meter:
    """Measures commands and scrapes against one manager's CPU."""

    def __init__(self, manager_pid: int, env: dict[str, str], log: Path) -> None:
        self.manager_pid = manager_pid
        self.env = env
        self.log = log

    def _window(self, action: Callable[[], float]) -> Cost:
        m0, t0 = cpu_ns(self.manager_pid), time.monotonic()
        own = action()
        wall = (time.monotonic() - t0) * 1000
        time.sleep(SETTLE)
        m1, t1 = cpu_ns(self.manager_pid), time.monotonic()
        return Cost(own, (m1 - m0) / 1e6, t1 - t0, wall)

    def commands(self, argvs: Sequence[Sequence[str]]) -> Cost:
        """Run each argv to completion, one after the other; own CPU = theirs and their children's."""
        def run() -> float:
            own = 0.0
            for argv in argvs:
                with open(self.log, "wb") as err:
                    proc = subprocess.Popen(list(argv), env=self.env, stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL, stderr=err)
                    _pid, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
                if proc.returncode != 0:
                    raise BenchError(f"exit {proc.returncode}: {' '.join(argv)}\n{self.log.read_text()[-2000:]}")
                own += (usage.ru_utime + usage.ru_stime) * 1000
            return own
        return self._window(run)

    def idle(self, seconds: float) -> Cost:
        def wait() -> float:
            time.sleep(seconds)
            return 0.0
        return self._window(wait)

    def scrape(self, exporter: NodeExporterSystemd) -> tuple[Cost, str]:
        """One GET /metrics; own CPU = node_exporter's threads', up to SETTLE after the response (its
        work after answering, GC and closing, counts too)."""
        m0, e0, t0 = cpu_ns(self.manager_pid), cpu_ns(exporter.pid), time.monotonic()
        body = exporter.get()
        wall = (time.monotonic() - t0) * 1000
        time.sleep(SETTLE)
        m1, e1, t1 = cpu_ns(self.manager_pid), cpu_ns(exporter.pid), time.monotonic()
        return Cost((e1 - e0) / 1e6, (m1 - m0) / 1e6, t1 - t0, wall), body


# ---------------------------------------------------------------------------------------------
# node_exporter's systemd collector on the sandbox manager


class NodeExporterSystemd:
    """node_exporter with only the systemd collector, talking to the sandbox manager's private
    socket as if it were PID 1's: in a mount namespace made from the sandbox's, a tmpfs on
    /run/systemd holds /run/systemd/private, a bind mount of $XDG_RUNTIME_DIR/systemd/private."""

    def __init__(self, procs: Processes, manager: SandboxManager) -> None:
        self.port = free_port()
        socket_path = manager.runtime_dir / "systemd" / "private"
        script = ("set -e\nmount -t tmpfs -o mode=0755 tmpfs /run/systemd\n: > /run/systemd/private\n"
                  f'mount --bind "{socket_path}" /run/systemd/private\n'
                  f'exec {NODE_EXPORTER} --web.listen-address=127.0.0.1:{self.port} "$@"\n')
        self.name = f"node_exporter-systemd-{self.port}"
        self.procs = procs
        # nsenter, unshare and sh each exec the next: the PID started is node_exporter's
        self.proc = procs.start(manager.command(["unshare", "-m", "--propagation", "private", "sh", "-c", script,
                                                 "node_exporter", *NODE_EXPORTER_FLAGS]), self.name)
        wait_answering(self.proc, self.url, "node_exporter", self.log, 20)
        if Path(f"/proc/{self.pid}/exe").resolve() != Path(NODE_EXPORTER).resolve():
            raise BenchError(f"PID {self.pid} is not node_exporter")

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def log(self) -> str:
        return self.procs.log(self.name)

    def get(self) -> str:
        """One plain GET /metrics (no gzip: the collector's cost, not compression's)."""
        if self.proc.poll() is not None:
            raise BenchError(f"node_exporter exited {self.proc.returncode}: {self.log()[-2000:]}")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
        try:
            conn.request("GET", "/metrics")
            resp = conn.getresponse()
            body = resp.read().decode()
        finally:
            conn.close()
        if resp.status != 200:
            raise BenchError(f"node_exporter answered {resp.status}: {body[:500]}")
        return body


# ---------------------------------------------------------------------------------------------
# What each reports, checked


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def by_label(samples: Samples, name: str, label: str, **match: str) -> dict[str, float]:
    """{value of `label`: sample value} for the samples called name whose labels include match."""
    out = {}
    for (sample, labels), value in samples.items():
        d = dict(labels)
        # prometheus_client's parser calls a counter's sample <name>_total even where the text does not
        if sample in (name, f"{name}_total") and all(d.get(k) == v for k, v in match.items()):
            out[d[label]] = value
    return out


def check_node_exporter(text: str, units: Sequence[str], crashing: Sequence[str]) -> None:
    """Fail loudly unless the scrape has every agent's state, restarts, start time and tasks."""
    samples = parse(text)
    steady = sorted(set(units) - set(crashing))
    problems = []
    active = by_label(samples, "node_systemd_unit_state", "name", state="active")
    if missing := sorted(set(units) - set(active)):
        problems.append(f"node_systemd_unit_state lacks {len(missing)} agents, e.g. {missing[:3]}")
    if down := [u for u in steady if active.get(u) != 1]:
        problems.append(f"node_systemd_unit_state{{state=active}} is not 1 for {down[:3]}")
    restarts = by_label(samples, "node_systemd_service_restart_total", "name")
    if missing := sorted(set(units) - set(restarts)):
        problems.append(f"node_systemd_service_restart_total lacks {len(missing)} agents, e.g. {missing[:3]}")
    if still := [u for u in crashing if restarts.get(u, 0) < 1]:
        problems.append(f"node_systemd_service_restart_total is 0 for crash-looping {still[:3]}")
    for name in ("node_systemd_unit_start_time_seconds", "node_systemd_unit_tasks_current"):
        if missing := sorted(set(steady) - set(by_label(samples, name, "name"))):
            problems.append(f"{name} lacks {len(missing)} agents, e.g. {missing[:3]}")
    if problems:
        raise BenchError("node_exporter's systemd collector does not report the agents: " + "; ".join(problems))


def check_textfile(path: Path, units: Sequence[str], crashing: Sequence[str]) -> None:
    samples = parse(path.read_text())
    agents = {u.removesuffix(".service") for u in units}
    up = by_label(samples, "agent_up", "agent")
    problems = []
    if set(up) != agents:
        problems.append(f"agent_up has {len(up)} agents, {len(agents & set(up))} of the {len(agents)} expected")
    if down := sorted(a for a in agents - {c.removesuffix(".service") for c in crashing} if up.get(a) != 1):
        problems.append(f"agent_up is not 1 for {down[:3]}")
    restarts = by_label(samples, "agent_restart_count", "agent")
    if still := [c for c in crashing if restarts.get(c.removesuffix(".service"), 0) < 1]:
        problems.append(f"agent_restart_count is 0 for crash-looping {still[:3]}")
    if problems:
        raise BenchError(f"{path}: " + "; ".join(problems))


# ---------------------------------------------------------------------------------------------
# The agents


def unit_names(n: int) -> list[str]:
    return [f"agent-bench{i:04d}.service" for i in range(n)]


def crashing_units(units: Sequence[str]) -> list[str]:
    k = max(1, round(len(units) * CRASH_SHARE))
    return [units[i * len(units) // k] for i in range(k)]


def install_agents(manager: SandboxManager, units: Sequence[str], crashable: Sequence[str], flag: Path) -> None:
    """Install and start every agent; the crashable ones run like the others until start_crashing."""
    flag.unlink(missing_ok=True)
    for u in units:
        manager.install_unit(u, CRASHABLE_UNIT.format(flag=flag) if u in crashable else STEADY_UNIT, reload=False)
    manager.systemctl("daemon-reload")
    manager.systemctl("start", "--", *units)
    wait_until(lambda: count_running(manager) == len(units), 60, f"{len(units)} agents running", step=0.5)


def count_running(manager: SandboxManager) -> int:
    out = manager.systemctl("list-units", "--plain", "--no-legend", "--full", "--state=running", "--",
                            "agent-bench*").stdout
    return len(out.splitlines())


def start_crashing(manager: SandboxManager, crashing: Sequence[str], flag: Path) -> None:
    """From now on the crashable agents exit 0.5 s after each start, and are restarted 200 ms later."""
    flag.touch()
    manager.systemctl("kill", "--", *crashing)

    def restarted() -> bool:
        out = manager.systemctl("show", "--property=NRestarts", "--", *crashing).stdout
        counts = re.findall(r"NRestarts=(\d+)", out)
        return len(counts) == len(crashing) and all(int(v) >= 2 for v in counts)
    wait_until(restarted, 60, "the crash-looping agents to restart twice", step=0.2)


def settle(meter: Meter, what: str, notes: list[str]) -> None:
    """Until the manager's CPU per second is stable (within 20% or 5 ms/s of the second before):
    after starting many units, or when units begin to crash-loop, systemd works on for a while."""
    start = time.monotonic()
    before = meter.idle(1.0).manager_ms
    while time.monotonic() - start < SETTLE_MAX:
        now = meter.idle(1.0).manager_ms
        if abs(now - before) <= max(5.0, 0.2 * before):
            print(f"  the manager settled in {time.monotonic() - start:.0f} s after {what} ({now:.0f} ms/s)",
                  file=sys.stderr, flush=True)
            return
        before = now
    notes.append(f"The systemd manager had not settled {SETTLE_MAX:g} s after {what} (last two seconds: "
                 f"{before:.0f} and {now:.0f} ms of CPU); measured anyway.")
    print(f"  warning: {notes[-1]}", file=sys.stderr, flush=True)


def remove_agents(manager: SandboxManager, units: Sequence[str], flag: Path) -> None:
    flag.unlink(missing_ok=True)
    manager.systemctl("stop", "--", *units)
    for u in units:
        (manager.unit_dir / u).unlink()
    manager.systemctl("daemon-reload")
    manager.systemctl("reset-failed", check=False)


# ---------------------------------------------------------------------------------------------
# One N, one state


@dataclass(frozen=True)
class Setup:
    manager: SandboxManager
    meter: Meter
    exporter: NodeExporterSystemd
    venv: Path
    work: Path
    notes: list[str]


def bench_block(s: Setup, n: int, state: str, units: Sequence[str], crashing: Sequence[str], rounds: int) -> Block:
    block = Block(n, state, load=(os.getloadavg()[0], 0.0))
    py, exe = str(s.venv / "bin/python"), str(s.venv / "bin/agent-exporter")
    writers: dict[str, tuple[list[str], Path]] = {}
    for case, agents in (("writer explicit", "".join(f"  - unit: {u}\n" for u in units)),
                         ("writer pattern", "  - pattern: 'agent-*.service'\n")):
        tag = f"{case.split()[1]}-{n}"
        textdir = s.work / f"textfile-{tag}"
        textdir.mkdir(exist_ok=True)
        config = s.work / f"{tag}.yml"
        config.write_text(f"scope: user\ntextfile_dir: {textdir}\nagents:\n{agents}")
        # one state directory per config and N for the whole run, both states: the timer's runs keep theirs
        writers[case] = (s.manager.command([exe, "write", "--config", str(config), "--state-dir",
                                            str(s.work / f"state-{tag}"), "--timeout", WRITER_TIMEOUT]),
                         textdir / "agents.prom")
    floor = [s.manager.command([py, "-c", "pass"]),
             s.manager.command(["systemctl", "--user", "list-units", "--all", "--plain", "--no-legend", "--full",
                                "--", "agent-*"])]

    def measure(case: str) -> Cost:
        if case == "floor":
            return s.meter.commands(floor)
        if case == "node_exporter":
            return s.meter.scrape(s.exporter)[0]
        return s.meter.commands([writers[case][0]])

    for _ in range(WARMUP_ROUNDS):  # page cache, .pyc files, the writers' caches, Go's heap
        for case in CASES:
            measure(case)
    check_node_exporter(s.meter.scrape(s.exporter)[1], units, crashing)
    for argv, textfile in writers.values():
        s.meter.commands([argv])
        check_textfile(textfile, units, crashing)
    for r in range(rounds):
        for case in CASES:
            block.costs[case].append(measure(case))
        idle = s.meter.idle(IDLE_WINDOW)
        block.idle_manager_ms += idle.manager_ms
        block.idle_s += idle.window_s
        print(f"  {n} {state} round {r + 1}/{rounds}, CPU (wall) ms: " + ", ".join(
            f"{c} {block.costs[c][-1].own_ms + block.costs[c][-1].manager_ms:.0f} ({block.costs[c][-1].wall_ms:.0f})"
            for c in CASES) + f"; load {os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)
    for case, (argv, _textfile) in writers.items():
        block.rss_kb[case] = max(peak_rss_kb(argv, s.meter.env) for _ in range(RSS_RUNS))
    block.load = (block.load[0], os.getloadavg()[0])
    return block


# ---------------------------------------------------------------------------------------------
# The report


def spread(values: Sequence[float]) -> str:
    return f"{statistics.median(values):.1f} [{min(values):.1f}, {max(values):.1f}]"


def slope(blocks: dict[int, Block], case: str) -> tuple[float, int, int] | None:
    """(ms per unit, from N, to N) between 100 and 1000 agents, else the smallest and largest N >= 100."""
    ns = sorted(blocks)
    if {100, 1000} <= set(ns):
        lo, hi = 100, 1000
    else:
        lo, hi = ([n for n in ns if n >= 100] or ns)[0], ns[-1]
    if lo == hi:
        return None
    return (blocks[hi].median(case) - blocks[lo].median(case)) / (hi - lo), lo, hi


def mb(kib: int) -> float:
    return kib * 1024 / 1e6


def state_table(blocks: dict[int, Block]) -> list[str]:
    lines = [
        "| N | load 1m | floor ms | writer explicit ms | writer pattern ms | node_exporter ms "
        "| explicit / node_exporter | pattern / node_exporter | explicit / floor | pattern / floor "
        "| peak RSS explicit / pattern |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, b in sorted(blocks.items()):
        m = {c: b.median(c) for c in CASES}
        lines.append(
            f"| {n} | {b.load[0]:.2f}→{b.load[1]:.2f} | " + " | ".join(spread(b.totals(c)) for c in CASES) +
            f" | {m['writer explicit'] / m['node_exporter']:.2f}x | {m['writer pattern'] / m['node_exporter']:.2f}x"
            f" | {m['writer explicit'] / m['floor']:.2f}x | {m['writer pattern'] / m['floor']:.2f}x"
            f" | {mb(b.rss_kb['writer explicit']):.1f} / {mb(b.rss_kb['writer pattern']):.1f} MB |")
    growth = {c: slope(blocks, c) for c in CASES}
    some = next((g for g in growth.values() if g), None)
    if some:
        lines.append(f"| growth {some[1]}→{some[2]} | | " + " | ".join(
            f"{g[0]:.3f} ms/unit" if g else "" for g in growth.values()) + " | | | | | |")
    lines += ["", "Of which the systemd manager's CPU (median ms, its background work taken out), the background "
              "itself, and the wall time of a run or scrape (median ms):", "",
              "| N | manager: floor | writer explicit | writer pattern | node_exporter | manager background "
              "| wall: floor | writer explicit | writer pattern | node_exporter |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n, b in sorted(blocks.items()):
        lines.append(f"| {n} | " + " | ".join(f"{statistics.median(b.manager(c)):.1f}" for c in CASES) +
                     f" | {b.background_ms_per_s:.1f} ms/s | " +
                     " | ".join(f"{statistics.median(c.wall_ms for c in b.costs[case]):.0f}" for case in CASES) + " |")
    return lines


def verdicts(results: dict[str, dict[int, Block]]) -> list[str]:
    out = []

    def say(what: str, value: float | None, limit: float, unit: str = "", strict: bool = False) -> None:
        if value is None:
            out.append(f"- {what}: not measured")
            return
        ok = value < limit if strict else value <= limit
        out.append(f"- {what}: {value:.2f}{unit} ({'met' if ok else 'NOT met'}; target "
                   f"{'<' if strict else '≤'} {limit:g}{unit})")

    for state, limit in TARGET_VS_NODE.items():
        b = results.get(state, {}).get(1000)
        for case in ("writer explicit", "writer pattern"):
            say(f"1000 agents {state}, {case} / node_exporter",
                b.median(case) / b.median("node_exporter") if b else None, limit, "x")
    steady = results.get("steady", {})
    for case in ("writer explicit", "writer pattern"):
        g = slope(steady, case) if len(steady) > 1 else None
        say(f"steady growth of {case} ({g[1]}→{g[2]} agents)" if g else f"steady growth of {case}",
            g[0] if g else None, TARGET_GROWTH_MS, " ms/unit")
    b16 = steady.get(16)
    say("16 agents steady, writer pattern / floor",
        b16.median("writer pattern") / b16.median("floor") if b16 else None, TARGET_FLOOR_RATIO, "x")
    b1000 = [results[s][1000] for s in results if 1000 in results[s]]
    for case in ("writer explicit", "writer pattern"):
        say(f"peak RSS of {case} at 1000 agents", max(mb(b.rss_kb[case]) for b in b1000) if b1000 else None,
            TARGET_RSS_MB, " MB", strict=True)
    return out


def report(results: dict[str, dict[int, Block]], rounds: int, command: str, loads: tuple[str, str],
           notes: Sequence[str]) -> str:
    cpu = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    version = subprocess.run([NODE_EXPORTER, "--version"], capture_output=True, text=True, check=False)
    ne_version = ((version.stdout + version.stderr).splitlines() or ["?"])[0].strip()
    systemd = subprocess.run(["systemctl", "--version"], capture_output=True, text=True, check=False).stdout
    lines = [
        "## systemd: the writer per run against node_exporter's systemd collector per scrape",
        "",
        f"Command: `{command}` (from the repository root). Machine: {os.cpu_count()} CPUs, "
        f"{cpu.group(1) if cpu else platform.machine()}, Linux {platform.release()}; Python "
        f"{platform.python_version()}; {(systemd.splitlines() or ['systemd ?'])[0]}; {ne_version}; "
        f"{time.strftime('%Y-%m-%d')}.",
        "",
        f"Load average (1, 5, 15 min): {loads[0]} at the start, {loads[1]} at the end; per row, the 1-minute "
        "load when its rounds began → ended.",
        "",
        "CPU per run (floor, writers) or per scrape (node_exporter), in ms: the process and its children "
        "(wait4), or node_exporter's threads around one GET /metrics, **plus the systemd manager's CPU over the "
        "same window** (its threads' schedstat), the manager's background work (crash-looping restarts, measured "
        f"idle {IDLE_WINDOW:g} s per round) taken out. Median [min, max] of {rounds} interleaved rounds after "
        f"{WARMUP_ROUNDS} warm-up rounds; the writers keep their state directory throughout. Floor: `python -c pass`"
        " + one `systemctl --user list-units --all --plain --no-legend --full -- 'agent-*'`. node_exporter: "
        f"`{' '.join(NODE_EXPORTER_FLAGS)}` on the same manager. Peak RSS: max of {RSS_RUNS} runs under "
        f"`/usr/bin/time -f %M`. The writers run with `--timeout {WRITER_TIMEOUT}` (below).",
        "",
    ]
    titles = {"steady": "Steady: every agent running",
              "crashloop": f"Crash-looping: {CRASH_SHARE:.0%} of the agents (at least one) exit after 0.5 s and "
                           "restart 200 ms later"}
    for state, blocks in results.items():
        lines += [f"### {titles[state]}", "", *state_table(blocks), ""]
    lines += ["### Against the targets of issue 11", "", *verdicts(results), "", "### Notes", "",
              *(f"- {note}" for note in notes)]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------


def comma_ints(text: str) -> list[int]:
    try:
        values = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text!r}") from None
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError("agent counts are positive")
    return values


def loadavg() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


@dataclass
class Run:
    """What one bench run started, stopped in reverse by stop()."""

    work: Path
    procs: Processes
    manager: SandboxManager | None = None

    def stop(self) -> None:
        self.procs.stop_all()
        if self.manager is not None:
            self.manager.stop()
        shutil.rmtree(self.work, ignore_errors=True)


def run_all(units: Sequence[int], states: Sequence[str], rounds: int
            ) -> tuple[dict[str, dict[int, Block]], list[str]]:
    work = Path(tempfile.mkdtemp(prefix="agent-exporter-bench-systemd-"))
    run = Run(work, Processes(work))
    results: dict[str, dict[int, Block]] = {s: {} for s in states}
    try:
        print("installing the writer into a venv", file=sys.stderr, flush=True)
        venv = install_venv(work)
        run.manager = SandboxManager().start()
        env = {**os.environ, **run.manager.env, "LC_ALL": "C"}
        exporter = NodeExporterSystemd(run.procs, run.manager)
        setup = Setup(run.manager, Meter(run.manager.pid, env, work / "stderr.log"), exporter, venv, work, [])
        stat0, sched0 = stat_ms(exporter.pid), cpu_ns(exporter.pid)
        for n in units:
            names = unit_names(n)
            crashable, flag = crashing_units(names), work / "crashloop"
            print(f"{n} agents: starting", file=sys.stderr, flush=True)
            install_agents(run.manager, names, crashable, flag)
            settle(setup.meter, f"starting {n} agents", setup.notes)
            for state in states:
                crashing = crashable if state == "crashloop" else []
                if crashing:
                    start_crashing(run.manager, crashing, flag)
                    settle(setup.meter, f"{len(crashing)} of {n} agents began to crash-loop", setup.notes)
                results[state][n] = bench_block(setup, n, state, names, crashing, rounds)
            remove_agents(run.manager, names, flag)
        stat_d, sched_d = stat_ms(exporter.pid) - stat0, (cpu_ns(exporter.pid) - sched0) / 1e6
        check = (f"Cross-check over the whole run: node_exporter's threads' schedstat gained {sched_d:.0f} ms, "
                 f"its /proc/<pid>/stat utime+stime {stat_d:.0f} ms.")
        if abs(stat_d - sched_d) > max(50, 0.05 * stat_d):
            check += " **They disagree**: a thread ended and took its CPU time with it? Read its figures with care."
        setup.notes.append(check)
    finally:
        run.stop()
    return results, setup.notes


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--units", type=comma_ints, default=[16, 100, 500, 1000],
                        help="agent counts, comma-separated (default 16,100,500,1000)")
    parser.add_argument("--rounds", type=int, default=10, help="measured rounds per N and state (default 10)")
    parser.add_argument("--states", type=lambda t: [s for s in t.split(",") if s], default=list(STATES),
                        help="steady,crashloop (default both)")
    parser.add_argument("--output", type=Path, help="markdown file whose systemd-bench section is replaced")
    args = parser.parse_args()
    if bad := [s for s in args.states if s not in STATES]:
        parser.error(f"unknown state {bad[0]!r} (steady, crashloop)")
    if why := sandbox_supported(("/usr/bin/time",)):
        raise SystemExit(f"bench_systemd needs a sandboxed systemd user manager: {why}")
    if not os.access(NODE_EXPORTER, os.X_OK):
        raise SystemExit(f"{NODE_EXPORTER} is missing: apt-get install prometheus-node-exporter")

    def terminated(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")  # unwinds through run_all's cleanup
    signal.signal(signal.SIGTERM, terminated)

    python = os.path.relpath(sys.executable, ROOT) if sys.executable.startswith(str(ROOT)) else sys.executable
    command = " ".join([python, "-m", "benchmarks.bench_systemd", *sys.argv[1:]])
    start_load = loadavg()
    try:
        results, notes = run_all(args.units, args.states, args.rounds)
    except KeyboardInterrupt:
        print("bench_systemd: interrupted; every process it started was stopped", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"bench_systemd: {exc}", file=sys.stderr)
        return 1
    text = report(results, args.rounds, command, (start_load, loadavg()), notes)
    print(text)
    if args.output:
        replace_section(args.output, SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
