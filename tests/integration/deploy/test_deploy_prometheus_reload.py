"""deploy_agent_monitoring.sh against a real Prometheus: it adds the job and the rules to a copy of
Debian's default configuration, reloads Prometheus through its API, and the new target is scraped
and the rules loaded; a second run changes nothing and does not reload.

And prometheus-fleet.yml in a real Prometheus: hosts are a list in a file, and adding one to the
file adds a target without touching the configuration or reloading."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml
from deploy_fixtures import (
    DEBIAN_DEFAULT,
    DEPLOY_SCRIPT,
    PROMETHEUS_FLEET_YML,
    alert_rules,
)
from procs import Processes, free_port, need, wait_until
from server_fixtures import start_server

from devtools.stack import PROMETHEUS_BIN, PROMETHEUS_DIR, PrometheusServer, load_yaml, shortened_rules
from devtools.textfiles import fleet, render, write_textfile

pytestmark = pytest.mark.integration


def test_script_adds_the_job_and_reloads_prometheus(tmp_path: Path, procs: Processes) -> None:
    prometheus = need(PROMETHEUS_BIN)
    textfile = tmp_path / "agents.prom"
    write_textfile(textfile, render(fleet()))
    server, _ = start_server(procs, textfile, "--interval", "3600")
    listen = server.removeprefix("http://")

    etc = tmp_path / "etc-prometheus"
    etc.mkdir()
    config = etc / "prometheus.yml"
    # Debian's default configuration, its fixed localhost targets moved to a port where nothing
    # listens (they are simply down).
    closed = f"127.0.0.1:{free_port()}"
    config.write_text(DEBIAN_DEFAULT.replace("localhost:9090", closed).replace("localhost:9100", closed))
    prom = PrometheusServer(procs, prometheus, config, tmp_path / "tsdb", "--web.enable-lifecycle").wait_ready()
    assert "agent-monitoring" not in prom.targets()

    env = {**os.environ}
    done = subprocess.run(["bash", str(DEPLOY_SCRIPT), "--skip-install", "--prometheus-config", str(config),
                           "--prometheus-url", prom.base, "--listen-address", listen, "--wait", "40"],
                          capture_output=True, text=True, timeout=120, env=env, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Target agent-monitoring {listen} is up." in done.stdout, done.stdout + done.stderr
    assert prom.api("/api/v1/status/runtimeinfo")["reloadConfigSuccess"] is True

    # Prometheus runs the new configuration: the job is scraped, the shipped rules are loaded.
    (target,) = prom.targets()["agent-monitoring"]
    assert target["health"] == "up" and target["scrapeInterval"] == "10s" and target["scrapeTimeout"] == "5s"
    loaded = {r["name"] for g in prom.api("/api/v1/rules")["groups"] for r in g["rules"]}
    assert loaded == {r["alert"] for r in alert_rules()}
    running = prom.query(f'agents_running_total{{job="agent-monitoring",instance="{listen}"}}')
    assert running and running[0]["value"][1] == "14"  # server_fixtures.fleet(): 14 of 16 running

    # Again: nothing to do, no reload (Prometheus's reload counter does not move).
    loaded_at = prom.api("/api/v1/status/runtimeinfo")["lastConfigTime"]
    again = subprocess.run(["bash", str(DEPLOY_SCRIPT), "--skip-install", "--prometheus-config", str(config),
                            "--prometheus-url", prom.base, "--listen-address", listen],
                           capture_output=True, text=True, timeout=120, env=env, check=False)
    assert again.returncode == 0, again.stderr
    assert "Nothing changed: no reload needed." in again.stdout
    assert prom.api("/api/v1/status/runtimeinfo")["lastConfigTime"] == loaded_at


def test_fleet_config_takes_hosts_from_target_files(tmp_path: Path, procs: Processes) -> None:
    prometheus = need(PROMETHEUS_BIN)
    textfile = tmp_path / "agents.prom"
    write_textfile(textfile, render(fleet()))
    hosts = [start_server(procs, textfile, "--interval", "3600", name=f"serve-{i}")[0].removeprefix("http://")
             for i in range(3)]

    # The shipped fleet configuration and target files, in a directory of their own; only the
    # intervals are shortened (file_sd's own refresh included) and the rules are the test's copy.
    etc = tmp_path / "etc"
    (etc / "targets" / "agent-monitoring").mkdir(parents=True)
    (etc / "targets" / "node").mkdir(parents=True)
    doc = load_yaml(PROMETHEUS_FLEET_YML)
    doc["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    for job in doc["scrape_configs"]:
        job["scrape_interval"] = job["scrape_timeout"] = "1s"
        for sd in job["file_sd_configs"]:
            sd["refresh_interval"] = "1s"
    doc.pop("alerting")
    doc["rule_files"] = [str(shortened_rules(tmp_path))]
    config = etc / "prometheus.yml"
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    shipped = load_yaml(PROMETHEUS_DIR / "targets" / "agent-monitoring" / "hosts.yml")
    targets_file = etc / "targets" / "agent-monitoring" / "hosts.yml"
    targets_file.write_text(yaml.safe_dump([{**shipped[0], "targets": hosts[:2]}]))
    (etc / "targets" / "node" / "hosts.yml").write_text("[]\n")

    prom = PrometheusServer(procs, prometheus, config, tmp_path / "tsdb").wait_ready()
    prom.wait_targets_up({"agent-monitoring": 2})
    labels = {t["labels"]["instance"]: t["labels"] for t in prom.targets()["agent-monitoring"]}
    assert set(labels) == set(hosts[:2])
    assert all(lab["env"] == shipped[0]["labels"]["env"] for lab in labels.values())  # the file's labels

    # A third host: one more line in the file, no reload.
    loaded_at = prom.api("/api/v1/status/runtimeinfo")["lastConfigTime"]
    targets_file.write_text(yaml.safe_dump([{**shipped[0], "targets": hosts}]))
    prom.wait_targets_up({"agent-monitoring": 3})
    assert prom.api("/api/v1/status/runtimeinfo")["lastConfigTime"] == loaded_at
    # Per instance: each host's MultipleAgentsDown input is its own.
    wait_until(lambda: len(prom.query("agents_total - agents_running_total")) == 3, 15, "three hosts' agents")
    assert {r["value"][1] for r in prom.query("agents_total - agents_running_total")} == {"2"}
