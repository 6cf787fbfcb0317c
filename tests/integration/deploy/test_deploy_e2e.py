"""deploy/ end to end, everything real, on loopback ports picked at run time:

systemd user manager (sandbox) with five agents -> `agent-exporter install --scope user --now` -> the
installed timer runs `agent-exporter write` every second -> agents.prom -> the socket-activated
`agent-exporter serve` and node_exporter's textfile collector ->
Prometheus with the shipped prometheus.yml and alert rules -> Alertmanager with the shipped
alertmanager.yml -> a Slack webhook; and every query of the shipped Grafana dashboard run against
that Prometheus, with its variables filled in as Grafana fills them.

The copies of the shipped files change only what a test must: targets (free ports), intervals
(1 s instead of 10-15 s), `for:` (2 s instead of minutes), where secrets and the SMTP server are.

The writer and the server are the units `agent-exporter install` writes (InstalledExporter below):
the hardened writer timer and the server's socket on a free port.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from deploy_fixtures import (
    ALERTMANAGER_BIN,
    AlertmanagerServer,
    SlackSink,
    SmtpSink,
    alert_rules,
    alertmanager_for_test,
    dashboard,
    interpolate,
    panel_targets,
    selection,
)
from procs import Processes, free_port, need, wait_until

from devtools.fleet import DemoAgent, install_fleet
from devtools.harness import EXE, UserManager
from devtools.stack import PROMETHEUS_BIN, NodeExporter, PrometheusServer, prometheus_config, shortened_rules

pytestmark = pytest.mark.integration

ALPHA, BETA, GAMMA, CRASHY, IDLE = "agent-alpha", "agent-beta", "agent-gamma", "agent-crashy", "agent-idle"


class LimitedAgent(DemoAgent):
    """A demo agent with memory limits far above what it uses: the dashboard's Memory against limit."""

    def unit_text(self, python: str = sys.executable) -> str:
        return super().unit_text(python) + "MemoryHigh=192M\nMemoryMax=256M\n"


FLEET = (
    LimitedAgent(ALPHA, "primary", mb=8, busy=0.05),  # holds memory, uses a little CPU, has limits
    DemoAgent(BETA, "primary"),                     # the one the test stops
    DemoAgent(GAMMA, "support"),
    DemoAgent(CRASHY, "primary", kind="crashloop"),  # exits after 1 s, Restart=always
    DemoAgent(IDLE, "support", kind="stopped"),      # installed, never started
)
INTERVAL = "1s"
FOR = "2s"
# Grafana's own variables, for a 1 s scrape interval: $__rate_interval is at least 4 scrape intervals.
BUILTINS = {"__rate_interval": "10s", "__interval": "1s", "__range": "60s"}


class InstalledExporter:
    """The writer's timer (every second) and the server's socket, as `agent-exporter install` makes them."""

    def __init__(self, manager: UserManager, config: Path, textfile: Path) -> None:
        self.manager, self.config, self.textfile = manager, config, textfile
        self.address = ""

    def start(self) -> None:
        port = free_port()
        done = self.manager.run([EXE, "install", "--scope", "user", "--now", "--config", str(self.config),
                                 "--interval", "1", "--web.listen-address", f"127.0.0.1:{port}"], check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        wait_until(self.textfile.exists, 20, f"the timer's first write of {self.textfile}")
        self.address = f"127.0.0.1:{port}"

    def stop_writer(self) -> None:
        self.manager.systemctl("stop", "agent-exporter.timer")


def writer_config(path: Path, textfile_dir: Path, probe_url: str) -> Path:
    """The fleet's config; agent-gamma's health is also probed over HTTP (agent_probe_*, and the
    writer's unit opens its network to that address: install reads the config)."""
    lines = ["scope: user", f"textfile_dir: {textfile_dir}", "interval_seconds: 1", "agents:"]
    for a in FLEET:
        lines += [f"  - unit: {a.unit}", f"    type: {a.type}"]
        if a.name == GAMMA:
            lines.append(f"    probe: {{url: '{probe_url}', timeout: 500ms}}")
    path.write_text("\n".join(lines) + "\n")
    return path


class _Healthy(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def probed() -> Iterator[str]:
    """An agent's health endpoint on loopback, for the probe's families."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Healthy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/health"
    finally:
        server.shutdown()
        server.server_close()


def labels_of(results: Sequence[dict[str, Any]], label: str) -> list[str]:
    return sorted(r["metric"][label] for r in results)


def agents_firing(prom: PrometheusServer, alertname: str) -> set[str]:
    return {labels["agent"] for labels in prom.firing(alertname)}


def value(results: Sequence[dict[str, Any]]) -> float:
    (only,) = results
    return float(only["value"][1])


def test_deploy_end_to_end(manager: UserManager, procs: Processes, tmp_path: Path,
                           node_exporter_bin: str, probed: str) -> None:
    prometheus_bin = need(PROMETHEUS_BIN)
    alertmanager_bin = need(ALERTMANAGER_BIN)
    started = time.monotonic()

    # -- the host side: agents, writer, server, node_exporter ------------------------------
    install_fleet(manager, FLEET)
    wait_until(lambda: all(manager.show(a.unit, "ActiveState")["ActiveState"] == "active"
                           for a in FLEET if a.kind == "run"), 30, "the long-running agents to be active")
    (tmp_path / "textfile").mkdir()
    config = writer_config(tmp_path / "config.yml", tmp_path / "textfile", probed)
    exporter = InstalledExporter(manager, config, tmp_path / "textfile" / "agents.prom")
    exporter.start()
    node = NodeExporter(procs, tmp_path / "textfile").start()

    with SlackSink() as slack, SmtpSink() as smtp:
        # -- the monitoring side: Alertmanager and Prometheus with the shipped files ------------
        am_files = alertmanager_for_test(tmp_path, slack.url, smtp.address)
        am = AlertmanagerServer(procs, alertmanager_bin, am_files.config, tmp_path / "am-data").wait_ready()
        rules = shortened_rules(tmp_path, for_=FOR, interval=INTERVAL)
        prom_config = prometheus_config(tmp_path, {"agent-monitoring": exporter.address,
                                                     "node": f"127.0.0.1:{node.port}"}, am.address, rules,
                                          interval=INTERVAL)
        prom = PrometheusServer(procs, prometheus_bin, prom_config, tmp_path / "tsdb").wait_ready()

        # Both targets up.
        prom.wait_targets_up({"agent-monitoring": 1, "node": 1})
        server_instance = exporter.address

        # agents_total and agents_running_total as systemd has them.
        wait_until(lambda: prom.query('agents_total{job="agent-monitoring"}'), 10, "agents_total")
        assert value(prom.query('agents_total{job="agent-monitoring"}')) == len(FLEET)
        up = {r["metric"]["agent"]: float(r["value"][1]) for r in prom.query('agent_up{job="agent-monitoring"}')}
        assert set(up) == {a.name for a in FLEET}
        assert (up[ALPHA], up[BETA], up[GAMMA], up[IDLE]) == (1, 1, 1, 0)
        # the same scrape: the total is the sum of agent_up, whichever state the crash-looper was in
        assert value(prom.query('agents_running_total{job="agent-monitoring"} '
                                '- scalar(sum(agent_up{job="agent-monitoring"}))')) == 0
        assert value(prom.query('agents_running_total{job="agent-monitoring"}')) in (3, 4)
        # node_exporter's copy of the agent families is dropped; its own textfile series are kept
        assert prom.query('{job="node", __name__=~"agents?_.+|system_.+"}') == []
        mtime = prom.query('node_textfile_mtime_seconds{job="node"}')
        assert labels_of(mtime, "file") == [str(exporter.textfile)]

        # Every alert's expression, without its threshold, selects real series: the metric names,
        # labels and the file regex match what the writer, the server and node_exporter produce.
        # (Without a reason= or result= matcher too: the fleet has no late timer; the unit tests
        # check those values against the contract's sets, deploy_fixtures.STATE_SETS.)
        for rule in alert_rules():
            left = selection(rule["expr"])
            wait_until(lambda left=left: prom.query(left), 15, f"data for {rule['alert']}: {left}")

        # AgentDown: the never-started agent fires; the running ones do not.
        wait_until(lambda: IDLE in agents_firing(prom, "AgentDown"), 20, "AgentDown for agent-idle")
        assert not {ALPHA, BETA, GAMMA} & agents_firing(prom, "AgentDown")

        # Stopping an agent makes AgentDown fire for it.
        manager.systemctl("stop", f"{BETA}.service")
        # ... and a broken file beside agents.prom makes node_exporter report a scrape error.
        (tmp_path / "textfile" / "broken.prom").write_text("this is { not the exposition format\n")
        wait_until(lambda: BETA in agents_firing(prom, "AgentDown"), 20, "AgentDown for agent-beta")
        # The crash-looping agent: its restart count rises, AgentCrashLooping fires for it alone.
        wait_until(lambda: prom.firing("AgentCrashLooping"), 20, "AgentCrashLooping")
        assert agents_firing(prom, "AgentCrashLooping") == {CRASHY}
        wait_until(lambda: prom.firing("NodeTextfileScrapeError"), 20, "NodeTextfileScrapeError")

        firing_down = agents_firing(prom, "AgentDown")
        assert not {ALPHA, GAMMA} & firing_down, firing_down
        for quiet in ("MultipleAgentsDown", "AgentExporterTargetDown", "AgentExporterTextfileStale",
                      "AgentExporterServedFileStale", "NoAgentsDiscovered"):
            assert prom.firing(quiet) == [], quiet
        (down_alert,) = [a for a in prom.firing("AgentDown") if a["agent"] == BETA]
        assert down_alert["instance"] == server_instance and down_alert["severity"] == "warning"

        # Prometheus sends them to Alertmanager, whose shipped routes send warnings to the team's
        # Slack: the stopped agent's alert arrives there.
        def in_alertmanager() -> list[dict[str, Any]]:
            return [a for a in am.alerts() if a["labels"]["alertname"] == "AgentDown"
                    and a["labels"].get("agent") == BETA]

        (am_alert,) = wait_until(in_alertmanager, 20, "AgentDown for agent-beta in Alertmanager")  # type: ignore[misc]
        assert [r["name"] for r in am_alert["receivers"]] == ["team-slack"]

        def slack_mentions_beta() -> bool:
            return any(f"Agent {BETA} is down on {server_instance}" in a["text"]
                       for item in slack.received.snapshot() if item["path"] == "/slack-team-webhook-url"
                       for a in item["body"]["attachments"])

        wait_until(slack_mentions_beta, 20, "the AgentDown notification in Slack")

        # -- the dashboard: every query of every panel returns data --------------------------
        check_dashboard(prom, server_instance)

    exporter.stop_writer()
    elapsed = time.monotonic() - started
    assert elapsed < 120, f"the end-to-end test took {elapsed:.0f}s"


def resolve_variables(prom: PrometheusServer, chosen: dict[str, list[str] | None]) -> dict[str, list[str]]:
    """Each query variable's options as Grafana gets them (label values of the series its query
    matches, earlier variables interpolated), in dashboard order."""
    values: dict[str, list[str] | None] = {}
    options: dict[str, list[str]] = {}
    for var in dashboard()["templating"]["list"]:
        if var["type"] != "query":
            continue
        metric, label = var["query"].removeprefix("label_values(").removesuffix(")").rsplit(",", 1)
        match = interpolate(metric.strip(), values, BUILTINS)
        options[var["name"]] = sorted(prom.api(f"/api/v1/label/{label.strip()}/values", **{"match[]": match}))
        assert options[var["name"]], f"variable {var['name']} has no options ({var['query']})"
        pick = chosen[var["name"]]
        if pick is not None:
            assert set(pick) <= set(options[var["name"]]), (var["name"], pick, options[var["name"]])
        values[var["name"]] = pick
    return options


def check_dashboard(prom: PrometheusServer, server_instance: str) -> None:
    dash = dashboard()
    selections: list[dict[str, list[str] | None]] = [
        {"instance": None, "type": None, "agent": None},  # All, the default
        {"instance": [server_instance], "type": ["primary"], "agent": [ALPHA, CRASHY]},
    ]
    for chosen in selections:
        options = resolve_variables(prom, chosen)
        if chosen["instance"] is None:
            assert options == {"instance": [server_instance], "type": ["primary", "support"],
                               "agent": sorted(a.name for a in FLEET)}, options
        for panel, target in panel_targets(dash):
            expr = interpolate(target["expr"], chosen, BUILTINS)
            what = f"panel {panel['title']!r} query {target['refId']} with {chosen}: {expr}"
            if target.get("instant"):
                result = prom.query(expr)
                assert result, f"no data: {what}"
            else:
                result = prom.query_range(expr, seconds=30)
                assert result and any(s["values"] for s in result), f"no data: {what}"
            if chosen["agent"] is not None and "agent=~" in target["expr"]:
                agents = {r["metric"]["agent"] for r in result if "agent" in r["metric"]}
                assert agents <= set(chosen["agent"]), (what, agents)

