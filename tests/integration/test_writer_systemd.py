"""`agent-exporter write` against a real systemd user manager, read back by a real node_exporter.

Every run of the writer happens inside the manager's mount namespace (user_manager.run), exactly as
the timer would run it; what it wrote is compared with `systemctl show` read right after.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from procs import Processes, wait_until

from devtools.harness import (
    DIAGNOSTICS,
    EXE,
    HOST_AND_RUN,
    MEMORY_HELD,
    PER_AGENT,
    Fleet,
    UserManager,
    agent_name,
    agent_values,
    parse_metrics,
    sample_names,
)
from devtools.stack import NodeExporter
from textfile_writer.proc import Completed

pytestmark = pytest.mark.integration

UP_STATES = ("active", "reloading")
STATES = ("active", "reloading", "inactive", "failed", "activating", "deactivating")
LAST_FAMILY = "agent_exporter_build_info"
PROPS = ["Id", "LoadState", "ActiveState", "NRestarts", "MemoryCurrent", "TasksCurrent"]
EXPLICIT_NAME = "runner"  # agent-running is listed explicitly under this name, type primary


@dataclass(frozen=True)
class Work:
    textfile_dir: Path
    state_dir: Path
    config: Path

    @property
    def prom(self) -> Path:
        return self.textfile_dir / "agents.prom"

    def args(self, *extra: str) -> list[str]:
        return ["--config", str(self.config), "--state-dir", str(self.state_dir), *extra]


def fleet_config(textfile_dir: Path, fleet: Fleet) -> str:
    # The absent unit and agent-running are named explicitly (".service" left out for the latter);
    # the pattern finds the rest, including the stopped unit that only has a unit file.
    return (
        "scope: user\n"
        f"textfile_dir: {textfile_dir}\n"
        "interval_seconds: 10\n"
        "disk_path: /\n"
        "agents:\n"
        f"  - unit: {fleet.absent}\n"
        "    type: primary\n"
        f"  - unit: {fleet.running.removesuffix('.service')}\n"
        "    type: primary\n"
        f"    name: {EXPLICIT_NAME}\n"
        '  - pattern: "agent-*.service"\n'
        "    type: support\n"
    )


def names(fleet: Fleet) -> dict[str, str]:
    """Unit -> the agent label the writer must give it."""
    return {u: EXPLICIT_NAME if u == fleet.running else agent_name(u) for u in fleet.units}


def make_work(base: Path, config_text: str | None = None, fleet: Fleet | None = None) -> Work:
    textfile_dir = base / "textfile"
    textfile_dir.mkdir(parents=True)
    work = Work(textfile_dir, base / "state", base / "config.yml")
    if config_text is None:
        assert fleet is not None
        config_text = fleet_config(textfile_dir, fleet)
    work.config.write_text(config_text)
    return work


@pytest.fixture
def work(tmp_path: Path, fleet: Fleet) -> Work:
    return make_work(tmp_path, fleet=fleet)


def write(manager: UserManager, work: Work, *extra: str) -> subprocess.CompletedProcess[str]:
    return manager.run([EXE, "write", *work.args(*extra)], check=False, timeout=60)


def assert_quiet_success(done: subprocess.CompletedProcess[str], tolerated: str = "") -> None:
    """Exit 0 and nothing on stderr; a warning naming `tolerated` (a crash-looping unit's race) is allowed."""
    assert done.returncode == 0, done.stderr
    noise = [line for line in done.stderr.splitlines() if not (tolerated and tolerated in line)]
    assert noise == [], done.stderr


def assert_one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode != 0, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("agent-exporter: error: "), lines[0]
    return lines[0]


def metrics_of(path: Path) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return parse_metrics(path.read_text(encoding="utf-8"))


def show(manager: UserManager, units: Sequence[str]) -> dict[str, dict[str, str]]:
    return dict(zip(units, manager.show_units(units, PROPS), strict=True))


def temporaries(directory: Path) -> list[str]:
    return [n for n in os.listdir(directory) if n.endswith(".tmp") or (n.startswith(".") and ".prom." in n
                                                                       and not n.endswith(".lock"))]


# ---------------------------------------------------------------------------------------------


def test_every_agent_matches_systemd(user_manager: UserManager, fleet: Fleet, work: Work) -> None:
    # The stopped unit must be found through its unit file alone: make sure it is not loaded now.
    def stopped_unloaded() -> bool:
        listed = user_manager.systemctl("list-units", "--all", "--plain", "--no-legend", "--full", "--",
                                        "agent-*.service").stdout
        return fleet.stopped not in listed

    wait_until(stopped_unloaded, 10, f"{fleet.stopped} to be unloaded (garbage-collected)")
    done = write(user_manager, work)
    after = show(user_manager, fleet.units)
    assert_quiet_success(done, tolerated=fleet.crashloop)
    metrics = metrics_of(work.prom)
    label = names(fleet)
    up = agent_values(metrics, "agent_up")
    assert set(up) == set(label.values())
    expected_up = {fleet.running: 1, fleet.stopped: 0, fleet.failed: 0, fleet.absent: 0, fleet.weird: 1,
                   fleet.memory: 1}
    for unit, value in expected_up.items():
        assert up[label[unit]] == value, unit
        assert value == int(after[unit]["ActiveState"] in UP_STATES), (unit, after[unit])

    # one-hot agent_state, on systemd's ActiveState for every agent that is not crash-looping
    for unit in fleet.units:
        row = state_row(metrics, label[unit])
        assert sum(row.values()) == 1, (unit, row)
        if unit != fleet.crashloop:
            assert row[after[unit]["ActiveState"]] == 1, (unit, row)
    crash_state = next(s for s, v in state_row(metrics, label[fleet.crashloop]).items() if v == 1)
    assert up[label[fleet.crashloop]] == int(crash_state in UP_STATES)

    # explicit entries win (type primary, their own name); the pattern found every installed unit
    types = {a: agent_type(metrics, a) for a in up}
    assert types.pop(EXPLICIT_NAME) == "primary"
    assert types.pop(agent_name(fleet.absent)) == "primary"
    assert set(types.values()) == {"support"}
    info = {dict(labels)["agent"]: dict(labels) for (n, labels) in metrics if n == "agent_info"}
    assert {a: (i["unit"], i["scope"]) for a, i in info.items()} == {label[u]: (u, "user") for u in fleet.units}

    assert metrics[("agents_total", frozenset())] == len(fleet.units)
    assert metrics[("agents_running_total", frozenset())] == sum(up.values())

    tasks = agent_values(metrics, "agent_tasks")
    restarts = agent_values(metrics, "agent_restart_count")
    uptime = agent_values(metrics, "agent_uptime_seconds")
    memory = agent_values(metrics, "agent_memory_kb")
    for unit in fleet.long_running:
        assert tasks[label[unit]] == int(after[unit]["TasksCurrent"]), unit
        assert 0 < uptime[label[unit]] < 600, unit
        assert memory[label[unit]] > 0, unit
    for unit in (fleet.stopped, fleet.failed, fleet.absent):
        assert (tasks[label[unit]], uptime[label[unit]], memory[label[unit]]) == (0, 0, 0), unit
    for unit in fleet.units:
        if unit != fleet.crashloop:
            assert restarts[label[unit]] == int(after[unit]["NRestarts"]), unit
    assert metrics[("agent_exporter_collect_errors", frozenset())] <= 1  # only the crash-looping race


def state_row(metrics: dict[tuple[str, frozenset[tuple[str, str]]], float], agent: str) -> dict[str, float]:
    """{state: value} of agent_state for one agent; every one of the six states must be there."""
    labels = {"agent": agent, "type": agent_type(metrics, agent)}
    return {s: metrics[("agent_state", frozenset({**labels, "state": s}.items()))] for s in STATES}


def agent_type(metrics: dict[tuple[str, frozenset[tuple[str, str]]], float], agent: str) -> str:
    for name, labels in metrics:
        if name == "agent_up" and dict(labels)["agent"] == agent:
            return dict(labels)["type"]
    raise KeyError(agent)


COUNTERS = ("agent_restart_count", "agent_cpu_seconds_total", "agent_starts_total", "agent_oom_kills_total")


def test_families_types_and_host_metrics(user_manager: UserManager, fleet: Fleet, work: Work) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    import textfile_writer

    assert_quiet_success(write(user_manager, work), tolerated=fleet.crashloop)
    text = work.prom.read_text()
    metrics = parse_metrics(text)
    declared = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            declared[name] = kind
    helped = {line.split(" ")[2] for line in text.splitlines() if line.startswith("# HELP ")}
    assert set(declared) == set(PER_AGENT) | set(HOST_AND_RUN) | set(DIAGNOSTICS) == helped
    assert {n for n, k in declared.items() if k == "counter"} == set(COUNTERS)
    assert {k for n, k in declared.items() if n not in COUNTERS} == {"gauge"}
    assert [f.name for f in text_string_to_metric_families(text)][-1] == LAST_FAMILY
    assert not [line for line in text.splitlines() if not line.startswith("#") and len(line.split(" ")) != 2], \
        "a sample with a timestamp"

    def one(name: str, **labels: str) -> float:
        return metrics[(name, frozenset(labels.items()))]

    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    mem_total_kb = int(meminfo["MemTotal"].split()[0])
    assert one("system_memory_total_kb") == mem_total_kb
    assert 0 < one("system_memory_used_kb") < mem_total_kb
    disk = os.statvfs("/")
    assert one("system_disk_total_kb") == disk.f_blocks * disk.f_frsize / 1024
    assert abs(one("system_disk_used_kb") - (disk.f_blocks - disk.f_bfree) * disk.f_frsize / 1024) < 64 * 1024
    assert all(one("system_load_average", period=p) >= 0 for p in ("1m", "5m", "15m"))
    assert one("agent_exporter_build_info", version=textfile_writer.__version__) == 1
    assert 0 < one("agent_exporter_run_duration_seconds") < 5
    assert abs(one("agent_exporter_last_success_timestamp_seconds") - time.time()) < 30
    # start time + uptime = the moment of the run, for agents that are up
    started = agent_values(metrics, "agent_start_time_seconds")
    uptime = agent_values(metrics, "agent_uptime_seconds")
    for unit in fleet.long_running:
        agent = names(fleet)[unit]
        assert abs(started[agent] + uptime[agent] - one("agent_exporter_last_success_timestamp_seconds")) < 2


def test_restart_count_is_systemds_nrestarts(user_manager: UserManager, fleet: Fleet, work: Work) -> None:
    label = agent_name(fleet.crashloop)
    seen = []
    for _ in range(3):  # three runs over ~2.5 s: the count moves with systemd's
        before = int(user_manager.show(fleet.crashloop, "NRestarts")["NRestarts"])
        done = write(user_manager, work)
        after = int(user_manager.show(fleet.crashloop, "NRestarts")["NRestarts"])
        assert_quiet_success(done, tolerated=fleet.crashloop)
        written = agent_values(metrics_of(work.prom), "agent_restart_count")[label]
        assert before <= written <= after
        seen.append(written)
        time.sleep(1.2)
    assert seen[-1] > seen[0] >= 1  # restarts every ~1.2 s


def test_memory_is_the_units_memory_current(user_manager: UserManager, fleet: Fleet, work: Work) -> None:
    done = write(user_manager, work)
    current = int(user_manager.show(fleet.memory, "MemoryCurrent")["MemoryCurrent"])
    assert_quiet_success(done, tolerated=fleet.crashloop)
    kb = agent_values(metrics_of(work.prom), "agent_memory_kb")[agent_name(fleet.memory)]
    assert abs(kb - current / 1024) <= 0.1 * current / 1024, (kb, current)
    assert kb >= MEMORY_HELD / 1024  # the 50 MiB it holds are all resident


def test_second_run_has_cpu_percent_and_growing_counters(user_manager: UserManager, fleet: Fleet,
                                                          work: Work) -> None:
    running = [names(fleet)[u] for u in fleet.long_running]
    assert_quiet_success(write(user_manager, work), tolerated=fleet.crashloop)
    first = metrics_of(work.prom)
    cpu_first = agent_values(first, "agent_cpu_percent")
    assert not [a for a in running if a in cpu_first], cpu_first  # nothing to compare with yet
    time.sleep(1.0)
    assert_quiet_success(write(user_manager, work), tolerated=fleet.crashloop)
    second = metrics_of(work.prom)
    cpu = agent_values(second, "agent_cpu_percent")
    seconds_first = agent_values(first, "agent_cpu_seconds_total")
    seconds_second = agent_values(second, "agent_cpu_seconds_total")
    uptime_first = agent_values(first, "agent_uptime_seconds")
    uptime_second = agent_values(second, "agent_uptime_seconds")
    for agent in running:
        assert 0 <= cpu[agent] < 10, (agent, cpu)  # idle agents: sleep, a sleeping python
        assert seconds_second[agent] >= seconds_first[agent] > 0, agent
        assert uptime_second[agent] - uptime_first[agent] >= 0.9, agent
    assert (second[("agent_exporter_last_success_timestamp_seconds", frozenset())]
            - first[("agent_exporter_last_success_timestamp_seconds", frozenset())]) >= 0.9


def test_busy_agent_cpu_percent_from_cgroupfs(user_manager: UserManager, tmp_path: Path) -> None:
    """A CPU loop: systemd reports no CPUUsageNSec on this layout, so the figure comes from cgroupfs."""
    unit = "burner-busy.service"
    work = make_work(tmp_path, f"scope: user\ntextfile_dir: {tmp_path / 'textfile'}\nagents:\n  - unit: {unit}\n")
    user_manager.run(["systemd-run", "--user", f"--unit={unit}", "--", "/bin/sh", "-c", "while :; do :; done"])
    try:
        assert_quiet_success(write(user_manager, work))
        first = metrics_of(work.prom)
        time.sleep(1.5)
        assert_quiet_success(write(user_manager, work))
        second = metrics_of(work.prom)
    finally:
        user_manager.systemctl("stop", unit, check=False)
    agent = agent_name(unit)
    assert agent not in agent_values(first, "agent_cpu_percent")
    percent = agent_values(second, "agent_cpu_percent")[agent]
    assert 10 < percent <= 100 * (os.cpu_count() or 1) * 1.1, percent
    seconds = [agent_values(m, "agent_cpu_seconds_total")[agent] for m in (first, second)]
    used = seconds[1] - seconds[0]
    assert used > 0.15, used


def test_status_json_agrees_with_systemd(user_manager: UserManager, fleet: Fleet, work: Work) -> None:
    done = user_manager.run([EXE, "status", "--format", "json", *work.args()], check=False)
    after = show(user_manager, fleet.units)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    agents = {a["agent"]: a for a in report["agents"]}
    label = names(fleet)
    assert set(agents) == set(label.values())
    for unit in fleet.units:
        row = agents[label[unit]]
        assert row["unit"] == unit
        assert set(row) >= {"agent", "type", "unit", "state", "up", "cpu_percent", "memory_kb", "uptime_seconds",
                            "restarts", "tasks"}
        if unit != fleet.crashloop:
            assert row["state"] == after[unit]["ActiveState"], unit
            assert row["up"] is (after[unit]["ActiveState"] in UP_STATES), unit
            assert row["restarts"] == int(after[unit]["NRestarts"]), unit
    memory = agents[label[fleet.memory]]["memory_kb"]
    assert abs(memory - int(after[fleet.memory]["MemoryCurrent"]) / 1024) < 0.1 * memory
    assert set(report["host"]) >= {"memory_total_kb", "memory_used_kb", "disk_total_kb", "disk_used_kb"}
    # health, in words (healthtext.py): the failed unit ran `exit 1`, the stopped one never started
    failed = agents[label[fleet.failed]]
    assert (failed["healthy"], failed["reason"], failed["result"], failed["exit_code"]) == \
        (False, "failed", "exit-code", 1)
    assert re.fullmatch(r"failed: exit code 1, \d+ (s|min|h) ago", failed["reason_text"]), failed
    assert (agents[label[fleet.running]]["healthy"], agents[label[fleet.running]]["reason_text"]) == (True, "ok")
    assert agents[label[fleet.stopped]]["reason_text"] == "down"
    assert report["agents_healthy"] == sum(a["healthy"] for a in agents.values())
    table = user_manager.run([EXE, "status", *work.args()], check=False)
    assert table.returncode == 0, table.stderr
    row = next(line for line in table.stdout.splitlines() if line.startswith(label[fleet.failed] + " "))
    assert re.search(r"  !  failed: exit code 1, \d+ (s|min|h) ago$", row), table.stdout
    assert not work.prom.exists()  # status writes nothing


@contextlib.contextmanager
def burner(manager: UserManager, unit: str) -> Iterator[str]:
    """A unit that spins a CPU core for as long as the block runs; its agent name."""
    manager.run(["systemd-run", "--user", f"--unit={unit}", "--", "/bin/sh", "-c", "while :; do :; done"])
    try:
        yield agent_name(unit)
    finally:
        manager.systemctl("stop", unit, check=False)


def by_hand(manager: UserManager, tmp_path: Path, *args: str) -> tuple[dict[str, Any], str]:
    """`status --format json` and `status` as a person runs them: no --state-dir, no state directory of
    the timer's anywhere (the state and config homes are empty directories of the test's)."""
    homes = {"XDG_STATE_HOME": str(tmp_path / "state-home"), "XDG_CONFIG_HOME": str(tmp_path / "config-home"),
             "AGENT_EXPORTER_STATE_DIR": ""}
    done = manager.run([EXE, "status", "--format", "json", *args], check=False, env=homes)
    assert done.returncode == 0, done.stderr
    table = manager.run([EXE, "status", *args], check=False, env=homes)
    assert table.returncode == 0, table.stderr
    return json.loads(done.stdout), table.stdout


def test_status_by_hand_samples_a_busy_agents_cpu(user_manager: UserManager, tmp_path: Path) -> None:
    """No writer's state to start from: status samples the counters itself (issue 14: it showed '-')."""
    config = tmp_path / "config.yml"
    config.write_text(f"scope: user\ntextfile_dir: {tmp_path}\nagents:\n  - unit: burner-status.service\n")
    with burner(user_manager, "burner-status.service") as agent:
        report, table = by_hand(user_manager, tmp_path, "--config", str(config))
    (row,) = report["agents"]
    assert row["agent"] == agent and row["up"]
    assert 10 < row["cpu_percent"] <= 100 * (os.cpu_count() or 1) * 1.1, row
    window = report["cpu_window"]
    assert window["source"] == "status" and window["state_dir"] is None and 0.5 <= window["seconds"] < 5, window
    cpu = next(line for line in table.splitlines() if line.startswith(agent + " ")).split()[3]
    assert float(cpu) > 10, table
    assert re.search(r"^CPU% over the last \d\.\d s, sampled by status", table, re.M), table
    assert not list(tmp_path.glob("*-home"))  # status made no state directory


def test_status_by_hand_reads_the_timers_fresh_state(user_manager: UserManager, tmp_path: Path) -> None:
    """A writer whose state is where a user unit's StateDirectory= is on systemd before 254
    ($XDG_CONFIG_HOME/agent-exporter): status finds it and measures since that run."""
    config = tmp_path / "config.yml"
    config.write_text(f"scope: user\ntextfile_dir: {tmp_path}\ninterval_seconds: 10\n"
                      "agents:\n  - unit: burner-timer.service\n")
    timers = tmp_path / "config-home" / "agent-exporter"
    with burner(user_manager, "burner-timer.service") as agent:
        assert_quiet_success(user_manager.run([EXE, "write", "--config", str(config), "--state-dir", str(timers)],
                                              check=False))
        time.sleep(1.0)
        report, _table = by_hand(user_manager, tmp_path, "--config", str(config))
    window = report["cpu_window"]
    assert window["source"] == "writer" and window["state_dir"] == str(timers), window
    assert 1.0 <= window["seconds"] < 30, window  # the first (json) status: since the write
    (row,) = report["agents"]
    assert row["agent"] == agent and row["cpu_percent"] > 10, row


def test_node_exporter_serves_every_family(user_manager: UserManager, fleet: Fleet, work: Work,
                                          procs: Processes, node_exporter_bin: str) -> None:
    assert_quiet_success(write(user_manager, work), tolerated=fleet.crashloop)
    time.sleep(1.0)
    assert_quiet_success(write(user_manager, work), tolerated=fleet.crashloop)  # with agent_cpu_percent
    written = metrics_of(work.prom)
    exporter = NodeExporter(procs, work.textfile_dir).start()
    scraped = parse_metrics(exporter.scrape())
    assert scraped[("node_textfile_scrape_error", frozenset())] == 0
    assert set(PER_AGENT) | set(HOST_AND_RUN) <= sample_names(scraped)
    # node_exporter re-exposes the file as it is: every sample, every (escaped) label, same value
    missing = {k for k in written if k not in scraped}
    assert missing == set()
    assert {k: scraped[k] for k in written} == written
    assert agent_values(scraped, "agent_up")["agent-we\\x20ird"] == 1


# ---------------------------------------------------------------------------------------------
# The file is replaced whole, or not at all

READER = r"""
import json, os, sys
from prometheus_client.parser import text_string_to_metric_families
path, stop, result, last = sys.argv[1:5]
reads, bad, versions = 0, [], set()
while not os.path.exists(stop):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        bad.append(f"open: {exc}")
        continue
    reads += 1
    try:
        text = data.decode("utf-8")
        families = {fam.name: fam for fam in text_string_to_metric_families(text)}
        assert text.endswith("\n"), "no final newline"
        assert text.rstrip("\n").splitlines()[-1].startswith(last + "{"), "last sample is not " + last
        assert last in families, "no " + last
        versions.add(families["agent_exporter_last_success_timestamp_seconds"].samples[0].value)
    except Exception as exc:
        bad.append(f"{type(exc).__name__}: {exc}: ...{data[-120:]!r}")
with open(result + ".tmp", "w") as f:
    json.dump({"reads": reads, "bad": bad[:20], "nbad": len(bad), "versions": len(versions)}, f)
os.rename(result + ".tmp", result)
"""

RUNS = 500


class Recorder:
    """A writer runner: each distinct systemctl call goes to the real manager once, then is replayed.

    The atomicity test is about replacing the file, not about asking systemd: replaying real answers
    lets 500 in-process runs take seconds, so the readers race many more renames.
    """

    def __init__(self, manager: UserManager) -> None:
        self.manager = manager
        self.answers: dict[tuple[str, ...], Completed] = {}

    def __call__(self, argv: Sequence[str], timeout: float) -> Completed:
        key = tuple(argv)
        if key not in self.answers:
            self.answers[key] = self.manager.runner(argv, timeout)
        return self.answers[key]


@contextlib.contextmanager
def scraping(exporter: NodeExporter) -> Iterator[list[object]]:
    """node_textfile_scrape_error of every scrape made while the block runs (a thread scraping in a loop);
    a scrape that fails is recorded as its exception."""
    errors: list[object] = []
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                errors.append(parse_metrics(exporter.scrape())[("node_textfile_scrape_error", frozenset())])
            except Exception as exc:
                errors.append(exc)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield errors
    finally:
        stop.set()
        thread.join(timeout=30)


def test_readers_only_ever_see_complete_files(user_manager: UserManager, fleet: Fleet, work: Work,
                                              procs: Processes, node_exporter_bin: str) -> None:
    from textfile_writer.options import resolve
    from textfile_writer.writer import write as write_once

    settings = resolve({"config": str(work.config), "state_dir": str(work.state_dir)})
    runner = Recorder(user_manager)
    write_once(settings, runner=runner)
    stop, result = work.state_dir / "stop-reader", work.state_dir / "reader.json"
    procs.start([sys.executable, "-c", READER, str(work.prom), str(stop), str(result), LAST_FAMILY], name="reader")
    exporter = NodeExporter(procs, work.textfile_dir).start()
    started = time.monotonic()
    with scraping(exporter) as scrape_errors:
        for _ in range(RUNS):
            write_once(settings, runner=runner)
    elapsed = time.monotonic() - started
    stop.touch()
    wait_until(result.exists, 30, "the reader's result")
    report = json.loads(result.read_text())
    assert report["nbad"] == 0, report["bad"]
    # the reader really raced the writer: it saw many different files, not one
    assert report["reads"] >= 200 and report["versions"] >= 50, (report, elapsed)
    assert len(scrape_errors) >= 10 and all(e == 0.0 for e in scrape_errors), scrape_errors
    assert temporaries(work.textfile_dir) == []
    assert metrics_of(work.prom)[("agents_total", frozenset())] == len(fleet.units)


# ---------------------------------------------------------------------------------------------
# Failures: non-zero exit, one line on stderr, the previous file byte for byte


def fill(path: Path) -> None:
    """Write to path until the filesystem has not a byte left."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        for chunk in (65536, 4096, 512, 1):
            data = b"\0" * chunk
            while True:
                try:
                    os.write(fd, data)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)


def test_full_filesystem_leaves_the_old_file(user_manager: UserManager, fleet: Fleet, tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    work = make_work(tmp_path / "w", fleet_config(small, fleet))
    # a 64 KiB tmpfs inside the manager's namespace, where the writer runs; seen from here through /proc
    user_manager.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", str(small)])
    try:
        view = user_manager.host_path(small)
        assert_quiet_success(write(user_manager, work), tolerated=fleet.crashloop)
        old = (view / "agents.prom").read_bytes()
        assert old.rstrip(b"\n").splitlines()[-1].startswith(LAST_FAMILY.encode())
        fill(view / "filler")
        assert os.statvfs(view).f_bavail == 0
        done = write(user_manager, work)
        line = assert_one_line_error(done)
        assert "No space left on device" in line, line
        assert (view / "agents.prom").read_bytes() == old
        assert temporaries(view) == []
        assert sorted(os.listdir(view)) == sorted([".agents.prom.lock", "agents.prom", "filler"])
    finally:
        user_manager.run(["umount", str(small)], check=False)


def outside_manager_env(runtime_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBUS_", "XDG_", "AGENT_EXPORTER_"))}
    return {**env, "XDG_RUNTIME_DIR": str(runtime_dir), "LC_ALL": "C"}


def test_unreachable_manager_leaves_the_old_file(user_manager: UserManager, fleet: Fleet, work: Work,
                                                  tmp_path: Path) -> None:
    assert_quiet_success(write(user_manager, work), tolerated=fleet.crashloop)
    old = work.prom.read_bytes()
    empty = tmp_path / "empty-runtime"
    empty.mkdir(mode=0o700)
    done = subprocess.run([EXE, "write", *work.args()], capture_output=True, text=True, timeout=60, check=False,
                          env=outside_manager_env(empty))
    line = assert_one_line_error(done)
    assert "Failed to connect to bus" in line, line
    assert work.prom.read_bytes() == old
    assert temporaries(work.textfile_dir) == []


def test_hung_manager_times_out_and_leaves_the_old_file(user_manager: UserManager, fleet: Fleet, work: Work,
                                                        tmp_path: Path) -> None:
    """Sockets that accept connections and never answer: systemctl waits, the writer's --timeout ends it."""
    import socket

    assert_quiet_success(write(user_manager, work), tolerated=fleet.crashloop)
    old = work.prom.read_bytes()
    runtime = tmp_path / "hung-runtime"
    (runtime / "systemd").mkdir(parents=True, mode=0o700)
    listeners = []
    try:
        for path in (runtime / "systemd" / "private", runtime / "bus"):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(str(path))
            s.listen(16)
            listeners.append(s)
        started = time.monotonic()
        done = subprocess.run([EXE, "write", *work.args("--timeout", "1")], capture_output=True, text=True,
                              timeout=60, check=False, env=outside_manager_env(runtime))
        elapsed = time.monotonic() - started
    finally:
        for s in listeners:
            s.close()
    line = assert_one_line_error(done)
    assert "timed out" in line, line
    assert elapsed < 10, elapsed
    assert work.prom.read_bytes() == old
    assert temporaries(work.textfile_dir) == []
