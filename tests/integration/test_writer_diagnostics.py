"""Issue 12 against a real user manager: why an agent stopped (each Result this machine can produce),
starts that include manual restarts, OOM kills, a timer-started oneshot healthy then late, HTTP
probes that succeed, fail and hang, and every new family through node_exporter.

The units are `diag-*` (the session's other tests list `agent-*`), named explicitly in the config,
and removed with their cgroups when the module ends."""

from __future__ import annotations

import http.server
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.harness import DIAGNOSTICS, MetricKey, UserManager, parse_metrics
from devtools.stack import NodeExporter, wait_until
from tests.cli_checks import EXE
from tests.procs import Processes
from textfile_writer.cgroups import Cgroupfs

HOLD = "[Service]\nExecStart=/bin/sleep infinity\n"
UNITS = {
    "diag-exit.service": "[Service]\nExecStart=/bin/sh -c 'exit 3'\n",
    # systemd turns $$ into $: the shell sees $$, its own PID
    "diag-kill.service": "[Service]\nExecStart=/bin/sh -c 'kill -KILL $$$$'\n",
    "diag-core.service": "[Service]\nExecStart=/bin/sh -c 'kill -SEGV $$$$'\nLimitCORE=infinity\n"
                         "WorkingDirectory={work}\n",
    "diag-timeout.service": "[Service]\nType=oneshot\nTimeoutStartSec=1\nExecStart=/bin/sleep 30\n",
    # a service that exits 0 and is restarted at once hits its start limit (Result stays that of the
    # last run when that run failed: /bin/true keeps it "success" until the limit)
    "diag-limit.service": "[Unit]\nStartLimitBurst=3\nStartLimitIntervalSec=60\n"
                          "[Service]\nExecStart=/bin/true\nRestart=always\nRestartSec=100ms\n",
    # its main process lives on; a child outgrows MemoryMax and the kernel kills it
    "diag-oom.service": "[Service]\nMemoryMax=40M\nMemorySwapMax=0\nExecStart=/bin/sh -c "
                        "'/usr/bin/python3 -c \"b = bytearray(200 << 20)\"; exec sleep infinity'\n",
    # restarted six times within seconds below: no start limit
    "diag-run.service": "[Unit]\nStartLimitIntervalSec=0\n"
                        "[Service]\nExecStart=/bin/sleep infinity\nRestart=always\nRestartSec=100ms\n",
    "diag-job.service": "[Service]\nType=oneshot\nExecStart=/bin/true\n",
    "diag-job.timer": "[Timer]\nOnActiveSec=1s\nOnUnitActiveSec=1h\n",
    "diag-stopped.service": HOLD,
    "diag-p1.service": HOLD, "diag-p2.service": HOLD, "diag-p3.service": HOLD,
}
FAILING = ("diag-exit.service", "diag-kill.service", "diag-core.service", "diag-timeout.service",
           "diag-limit.service")


@pytest.fixture(scope="module")
def units(user_manager: UserManager, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UserManager]:
    work = tmp_path_factory.mktemp("diag-cores")  # where a core dump lands
    for name, text in UNITS.items():
        user_manager.install_unit(name, text.format(work=work), reload=False)
    user_manager.systemctl("daemon-reload")
    try:
        yield user_manager
    finally:
        names = list(UNITS)
        user_manager.systemctl("stop", "--", *names, check=False)
        for name in names:
            (user_manager.unit_dir / name).unlink(missing_ok=True)
        user_manager.systemctl("daemon-reload", check=False)
        user_manager.systemctl("reset-failed", "--", *names, check=False)


def config(base: Path, body: str, interval: float = 10) -> Path:
    (base / "textfile").mkdir(parents=True, exist_ok=True)
    path = base / "config.yml"
    path.write_text(f"scope: user\ninterval_seconds: {interval}\ntextfile_dir: {base / 'textfile'}\n"
                    f"agents:\n{body}")
    return path


def entries(*units: str, extra: str = "") -> str:
    return "".join(f"  - unit: {u}\n{extra}" for u in units)


def write(manager: UserManager, conf: Path, state: Path) -> tuple[dict[MetricKey, float], float]:
    start = time.monotonic()
    done = manager.run([*EXE, "write", "--config", str(conf), "--state-dir", str(state)], check=False, timeout=60)
    took = time.monotonic() - start
    assert done.returncode == 0, done.stderr
    return parse_metrics((conf.parent / "textfile" / "agents.prom").read_text()), took


def value(metrics: dict[MetricKey, float], family: str, agent: str, **labels: str) -> float | None:
    for (name, found), v in metrics.items():
        have = dict(found)
        if name == family and have.get("agent") == agent and all(have.get(k) == w for k, w in labels.items()):
            return v
    return None


def labelled(metrics: dict[MetricKey, float], family: str, agent: str, label: str) -> set[str]:
    return {dict(k)[label] for (n, k) in metrics if n == family and dict(k).get("agent") == agent}


def settled(manager: UserManager, unit: str, *states: str) -> None:
    wait_until(lambda: manager.show(unit, "ActiveState")["ActiveState"] in states, 30, f"{unit} {states}", step=0.1)


def test_why_each_agent_last_stopped(units: UserManager, tmp_path: Path) -> None:
    before = time.time()
    units.systemctl("start", "--no-block", "--", *FAILING)
    for unit in FAILING:
        settled(units, unit, "failed")
    metrics, _ = write(units, config(tmp_path, entries(*FAILING)), tmp_path / "state")
    results = {u.removesuffix(".service"): labelled(metrics, "agent_last_result", u.removesuffix(".service"), "result")
               for u in FAILING}
    assert results == {"diag-exit": {"exit-code"}, "diag-kill": {"signal"}, "diag-core": {"core-dump"},
                       "diag-timeout": {"timeout"}, "diag-limit": {"start-limit-hit"}}
    assert value(metrics, "agent_last_exit_code", "diag-exit") == 3
    assert value(metrics, "agent_last_exit_signal", "diag-kill") == 9
    assert value(metrics, "agent_last_exit_signal", "diag-core") == 11
    assert value(metrics, "agent_last_exit_signal", "diag-timeout") == 15  # systemd's SIGTERM at the timeout
    assert value(metrics, "agent_last_exit_code", "diag-kill") is None  # a signal: no exit code
    for unit in FAILING:
        agent = unit.removesuffix(".service")
        exited = value(metrics, "agent_last_exit_timestamp_seconds", agent)
        assert exited is not None and before - 1 <= exited <= time.time() + 1, agent
        assert value(metrics, "agent_healthy", agent) == 0
    reasons = {u: labelled(metrics, "agent_unhealthy_reason", u.removesuffix(".service"), "reason") for u in FAILING}
    assert reasons["diag-limit.service"] == {"start-limit-hit"}
    assert reasons["diag-exit.service"] == reasons["diag-kill.service"] == {"failed"}
    assert labelled(metrics, "agent_expected_state", "diag-timeout", "expected") == {"oneshot"}
    assert labelled(metrics, "agent_expected_state", "diag-exit", "expected") == {"running"}


def test_starts_count_manual_and_automatic_restarts(units: UserManager, tmp_path: Path) -> None:
    unit, agent = "diag-run.service", "diag-run"
    conf, state = config(tmp_path, entries(unit)), tmp_path / "state"
    units.systemctl("restart", unit)
    settled(units, unit, "active")
    metrics, _ = write(units, conf, state)
    first = value(metrics, "agent_starts_total", agent)
    assert first is not None and first >= 1

    def running_anew(old: str) -> bool:
        now = units.show(unit, "InvocationID", "ActiveState")
        return now["ActiveState"] == "active" and now["InvocationID"] not in ("", old)

    def starts_after(*actions: str) -> float:
        for action in actions:
            invocation = units.show(unit, "InvocationID")["InvocationID"]
            if action == "restart":
                units.systemctl("restart", unit)
            else:  # killed: systemd restarts it (Restart=always), NRestarts + 1
                units.systemctl("kill", "--signal=KILL", unit)
            wait_until(lambda old=invocation: running_anew(old), 30, "a new invocation", step=0.05)
        metrics, _ = write(units, conf, state)
        found = value(metrics, "agent_starts_total", agent)
        assert found is not None
        return found

    assert starts_after("restart") == first + 1  # NRestarts stays 0: only the new invocation tells
    assert starts_after("kill", "kill") == first + 3  # two automatic restarts within one interval
    restarts = int(units.show(unit, "NRestarts")["NRestarts"])
    assert restarts == 2
    assert starts_after("restart", "kill") == first + 5  # manual (NRestarts back to 0), then automatic
    metrics, _ = write(units, conf, state)
    assert value(metrics, "agent_restart_count", agent) == 1  # systemd's NRestarts, as the contract says
    # the five seen since the first run, all within the last 10 minutes (the first sight's are not timed)
    assert value(metrics, "agent_recent_starts", agent) == 5
    assert labelled(metrics, "agent_unhealthy_reason", agent, "reason") == {"crash-looping"}


def test_oom_kills_are_counted_where_the_cgroup_tells(units: UserManager, tmp_path: Path) -> None:
    unit, agent = "diag-oom.service", "diag-oom"
    units.systemctl("start", unit)
    cgroup = units.show(unit, "ControlGroup")["ControlGroup"]
    fs = Cgroupfs()
    wait_until(lambda: (fs.oom_kills(cgroup) or 0) >= 1 or not fs.counts_ooms, 30, "the child to be OOM-killed",
               step=0.1)
    metrics, _ = write(units, config(tmp_path, entries(unit)), tmp_path / "state")
    if not fs.counts_ooms:  # no memory controller here: absent, not 0
        assert value(metrics, "agent_oom_kills_total", agent) is None
        return
    assert value(metrics, "agent_oom_kills_total", agent) == fs.oom_kills(cgroup) >= 1
    assert value(metrics, "agent_memory_max_bytes", agent) == 40 << 20
    assert value(metrics, "agent_memory_high_bytes", agent) is None  # unlimited: no sample
    peak = value(metrics, "agent_memory_peak_bytes", agent)
    assert peak is not None and peak >= 30 << 20  # the child reached the limit before it was killed
    assert value(metrics, "agent_healthy", agent) == 1  # the service itself lives on


def test_a_timer_started_oneshot_is_healthy_then_late(units: UserManager, tmp_path: Path) -> None:
    units.systemctl("start", "diag-job.timer")
    wait_until(lambda: units.show("diag-job.service", "ExecMainExitTimestampMonotonic")[
        "ExecMainExitTimestampMonotonic"] not in ("", "0"), 30, "the timer's first run", step=0.1)
    conf, state = config(tmp_path, entries("diag-job.service")), tmp_path / "state"
    metrics, _ = write(units, conf, state)
    assert labelled(metrics, "agent_expected_state", "diag-job", "expected") == {"timer"}
    assert value(metrics, "agent_healthy", "diag-job") == 1
    last = value(metrics, "agent_timer_last_trigger_timestamp_seconds", "diag-job", timer="diag-job.timer")
    upcoming = value(metrics, "agent_timer_next_trigger_timestamp_seconds", "diag-job", timer="diag-job.timer")
    assert last is not None and upcoming is not None
    assert abs(last - time.time()) < 120 and 3000 < upcoming - time.time() < 3700  # OnUnitActiveSec=1h
    units.systemctl("stop", "diag-job.timer")  # it will not fire again
    metrics, _ = write(units, conf, state)
    assert value(metrics, "agent_healthy", "diag-job") == 0
    assert labelled(metrics, "agent_unhealthy_reason", "diag-job", "reason") == {"timer-late"}


def test_expected_stopped_is_healthy_while_stopped(units: UserManager, tmp_path: Path) -> None:
    conf = config(tmp_path, entries("diag-stopped.service", extra="    expect: stopped\n"))
    metrics, _ = write(units, conf, tmp_path / "state")
    assert value(metrics, "agent_healthy", "diag-stopped") == 1
    units.systemctl("start", "diag-stopped.service")
    try:
        metrics, _ = write(units, conf, tmp_path / "state")
        assert labelled(metrics, "agent_unhealthy_reason", "diag-stopped", "reason") == {"running"}
    finally:
        units.systemctl("stop", "diag-stopped.service")


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/ok" else 503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


def test_probes_succeed_fail_and_a_hung_one_keeps_to_the_budget(units: UserManager, tmp_path: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(8)  # accepts (the kernel does) and never answers
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port, hung_port = server.server_address[1], hung.getsockname()[1]
        units.systemctl("start", "diag-p1.service", "diag-p2.service", "diag-p3.service")
        body = (f"  - unit: diag-p1.service\n    probe: {{url: 'http://127.0.0.1:{port}/ok', timeout: 1s}}\n"
                f"  - unit: diag-p2.service\n    probe: {{url: 'http://127.0.0.1:{port}/bad', timeout: 1s}}\n"
                f"  - unit: diag-p3.service\n    probe: {{url: 'http://127.0.0.1:{hung_port}/', timeout: 1s}}\n")
        metrics, took = write(units, config(tmp_path, body), tmp_path / "state")
    finally:
        server.shutdown()
        server.server_close()
        hung.close()
        units.systemctl("stop", "diag-p1.service", "diag-p2.service", "diag-p3.service")
    assert [value(metrics, "agent_probe_success", f"diag-p{i}") for i in (1, 2, 3)] == [1, 0, 0]
    assert [value(metrics, "agent_probe_http_status", f"diag-p{i}") for i in (1, 2, 3)] == [200, 503, None]
    hang = value(metrics, "agent_probe_duration_seconds", "diag-p3")
    assert hang is not None and 0.9 <= hang <= 1.5  # its timeout, not more
    assert labelled(metrics, "agent_unhealthy_reason", "diag-p2", "reason") == {"probe-failing"}
    assert labelled(metrics, "agent_unhealthy_reason", "diag-p3", "reason") == {"probe-failing"}
    assert value(metrics, "agent_healthy", "diag-p1") == 1
    # a whole run with the hung probe: its budget plus an interpreter start, far below the interval
    assert took < 10, took


def test_every_new_family_through_node_exporter(units: UserManager, tmp_path: Path, procs: Processes,
                                                node_exporter_bin: str) -> None:
    conf = config(tmp_path, entries(*FAILING, "diag-run.service", "diag-oom.service", "diag-job.service"))
    write(units, conf, tmp_path / "state")
    text = (tmp_path / "textfile" / "agents.prom").read_text()
    declared = {line.split(" ")[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    assert set(DIAGNOSTICS) <= declared
    exporter = NodeExporter(procs, tmp_path / "textfile", node_exporter_bin).start()
    scraped = parse_metrics(exporter.scrape())
    assert scraped[("node_textfile_scrape_error", frozenset())] == 0
    written = parse_metrics(text)
    assert {k: scraped.get(k) for k in written} == written  # every sample, as written
    assert os.path.exists(tmp_path / "state")
