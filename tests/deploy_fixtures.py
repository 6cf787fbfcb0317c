"""Helpers for the tests of deploy/: the shipped files, a copy of alertmanager.yml made fit for a
test, Grafana's variable interpolation, two small notification sinks (a Slack webhook and an SMTP
server) that Alertmanager delivers to, and Alertmanager itself.

Prometheus, node_exporter and the copies of the Prometheus files (targets on free loopback ports,
seconds instead of minutes) are devtools.stack's: `make demo` runs them too.

The copies change only what a test must (addresses, secret file paths, timings); routes, receivers,
rule expressions, annotations and dashboard queries are the shipped ones.
"""

from __future__ import annotations

import base64
import json
import re
import socketserver
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

import yaml

from devtools.stack import (
    ALERTS_YML,
    DEPLOY,
    PROMETHEUS_DIR,
    LoopbackProgram,
    Processes,
    api_get,
    load_yaml,
)
from textfile_writer import health

PROMETHEUS_FLEET_YML = PROMETHEUS_DIR / "prometheus-fleet.yml"
RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
ALERTMANAGER_YML = DEPLOY / "alertmanager" / "alertmanager.yml"
DASHBOARD_JSON = DEPLOY / "grafana" / "dashboards" / "agent-monitoring.json"
GRAFANA_PROVISIONING = DEPLOY / "grafana" / "provisioning"
COMPOSE_YML = DEPLOY / "docker-compose.yml"
DEPLOY_SCRIPT = DEPLOY / "deploy_agent_monitoring.sh"
ALERTMANAGER_BIN = "prometheus-alertmanager"
CONFIG_EDITOR = DEPLOY / "prometheus_config.py"

# Metrics the rules and the dashboard may use besides the writer's own families.
NODE_EXPORTER_FAMILIES = frozenset({"node_textfile_mtime_seconds", "node_textfile_scrape_error"})
_METRIC_TOKEN = re.compile(r"\b(?:agents?|system)_[a-z0-9_]+\b|\bnode_[a-z0-9_]+\b")

# The values of the contract's state-set labels: agent_unhealthy_reason{reason} and agent_last_result{result}.
STATE_SETS = {"reason": frozenset(health.REASONS), "result": health.RESULTS | {health.OTHER_RESULT}}
_STATE_MATCHER = re.compile(r'\b(reason|result)\s*=\s*"([^"]*)"')


# Debian 12's /etc/prometheus/prometheus.yml as the prometheus package installs it (abridged comments).
DEBIAN_DEFAULT = """\
# Sample config for Prometheus.

global:
  scrape_interval:     15s # Set the scrape interval to every 15 seconds. Default is every 1 minute.
  evaluation_interval: 15s # Evaluate rules every 15 seconds. The default is every 1 minute.

  external_labels:
      monitor: 'example'

# Alertmanager configuration
alerting:
  alertmanagers:
  - static_configs:
    - targets: ['localhost:9093']

# Load rules once and periodically evaluate them according to the global 'evaluation_interval'.
rule_files:
  # - "first_rules.yml"
  # - "second_rules.yml"

scrape_configs:
  # The job name is added as a label `job=<job_name>` to any timeseries scraped from this config.
  - job_name: 'prometheus'

    # Override the global default and scrape targets from this job every 5 seconds.
    scrape_interval: 5s
    scrape_timeout: 5s

    static_configs:
      - targets: ['localhost:9090']

  - job_name: node
    # If prometheus-node-exporter is installed, grab stats about the local
    # machine by default.
    static_configs:
      - targets: ['localhost:9100']
"""


def alert_rules() -> list[dict[str, Any]]:
    return [r for g in load_yaml(ALERTS_YML)["groups"] for r in g["rules"] if "alert" in r]


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD_JSON.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def panel_targets(dash: Mapping[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(panel, target) for every query of every panel, rows' nested panels included."""
    for panel in dash["panels"]:
        for p in [panel, *panel.get("panels", [])]:
            for t in p.get("targets", []):
                yield p, t


def exported_families() -> set[str]:
    """Every family the writer renders, and the one the server adds: taken from the code itself."""
    from textfile_writer.metrics import render
    from textfile_writer.model import AgentSample, HostSample, Snapshot
    from textfile_writer.server.filecache import AGE_FAMILY

    agent = AgentSample(name="a", type="primary", unit="a.service", scope="user", state="active",
                        load_state="loaded", memory_bytes=1024, cpu_seconds=1.0, cpu_percent=1.0,
                        uptime_seconds=1.0, start_time_seconds=1.0, restarts=0, tasks=1)
    host = HostSample(memory_total_bytes=2048, memory_used_bytes=1024, disk_total_bytes=2048,
                      disk_used_bytes=1024, load=(0.1, 0.1, 0.1))
    text = render(Snapshot(agents=(agent,), host=host, timestamp=1.0, duration_seconds=0.1,
                           collect_errors=0, version="0"))
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")} | {AGE_FAMILY}


def known_families() -> set[str]:
    """Every family a rule or a dashboard query may use."""
    return exported_families() | NODE_EXPORTER_FAMILIES


def metric_names(expr: str) -> set[str]:
    """The agent-exporter and node_exporter metric names an expression uses (not labels, not functions)."""
    return set(_METRIC_TOKEN.findall(expr))


def state_matchers(expr: str) -> list[tuple[str, str]]:
    """(label, value) of each reason="..." or result="..." matcher in an expression."""
    return _STATE_MATCHER.findall(expr)


def selection(expr: str) -> str:
    """What an alert expression of the form `<selection> <op> <threshold>` looks at: the expression
    without its threshold, and without any reason= or result= matcher. Those families are always 1
    and exist only in the state they name, so without the matcher they select every state: the
    rule's whole population."""
    left = expr.rsplit(" ", 2)[0]
    left = re.sub(r"\s*,\s*" + _STATE_MATCHER.pattern, "", left)  # after another matcher
    left = re.sub(_STATE_MATCHER.pattern + r"\s*,?\s*", "", left)  # first or alone
    return left.replace("{}", "")


# ---------------------------------------------------------------------------------------------
# A copy of alertmanager.yml for a test


SECRETS_IN_CONTAINER = "/etc/alertmanager/secrets/"


@dataclass(frozen=True)
class AlertmanagerFiles:
    config: Path
    secrets: dict[str, str]  # file name -> content


def alertmanager_for_test(directory: Path, slack_url: str, smtp_address: str,
                          smtp_password: str = "pw-read-from-a-file") -> AlertmanagerFiles:
    """The shipped alertmanager.yml with its secret files in `directory` (the Slack webhook URLs point
    at slack_url/<file name>), its SMTP server at smtp_address without STARTTLS, and group waits of
    a second. Routes, inhibition, receivers and their templates stay as shipped."""
    doc = load_yaml(ALERTMANAGER_YML)
    secrets_dir = directory / "secrets"
    secrets_dir.mkdir()
    secrets: dict[str, str] = {}

    def relocate(node: Any) -> Any:
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                if k.endswith("_file") and isinstance(v, str) and v.startswith(SECRETS_IN_CONTAINER):
                    name = v.removeprefix(SECRETS_IN_CONTAINER)
                    # A URL file as `echo URL > file` writes it (Alertmanager trims it); the password
                    # file as docs/deploy.md says to write it: Alertmanager 0.25 sends a newline in it.
                    content = smtp_password if "password" in k else f"{slack_url}/{name}\n"
                    secrets[name] = content
                    (secrets_dir / name).write_text(content)
                    v = str(secrets_dir / name)
                out[k] = relocate(v)
            return out
        if isinstance(node, list):
            return [relocate(x) for x in node]
        return node

    doc = relocate(doc)
    doc["global"]["smtp_smarthost"] = smtp_address
    doc["global"]["smtp_require_tls"] = False
    doc["route"]["group_wait"] = "1s"
    doc["route"]["group_interval"] = "1s"
    path = directory / "alertmanager.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return AlertmanagerFiles(path, secrets)


# ---------------------------------------------------------------------------------------------
# Grafana's interpolation of dashboard variables into Prometheus queries

_REGEX_SPECIAL = re.compile(r"[$^*{}\[\]'+?.()|]")
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
ALL: None = None


def regex_escape(value: str) -> str:
    """Grafana's prometheusSpecialRegexEscape: a value inside a PromQL string used as a regex."""
    return _REGEX_SPECIAL.sub(lambda m: "\\\\" + m.group(0), value.replace("\\", "\\\\\\\\"))


def interpolate(expr: str, variables: Mapping[str, Sequence[str] | None], builtins: Mapping[str, str],
                all_values: Mapping[str, str] | None = None) -> str:
    """expr with $var, ${var} and [[var]] replaced as Grafana does for a multi-value variable with
    "All": ALL (None) becomes the variable's allValue, one value its escaped self, several
    (a|b). Grafana's own variables ($__rate_interval, ...) come from `builtins`. An unknown
    variable raises: a typo in a dashboard must not pass as a literal."""
    def value(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        if name in builtins:
            return builtins[name]
        if name not in variables:
            raise KeyError(f"unknown variable ${name} in {expr!r}")
        chosen = variables[name]
        if chosen is ALL:
            return (all_values or {}).get(name, ".*")
        if len(chosen) == 1:
            return regex_escape(chosen[0])
        return "(" + "|".join(regex_escape(v) for v in chosen) + ")"

    return _VARIABLE.sub(value, expr)


# ---------------------------------------------------------------------------------------------
# Notification sinks: where Alertmanager's Slack and e-mail notifications arrive in a test


@dataclass
class Received:
    lock: threading.Lock = field(default_factory=threading.Lock)
    items: list[dict[str, Any]] = field(default_factory=list)

    def add(self, item: dict[str, Any]) -> None:
        with self.lock:
            self.items.append(item)

    def snapshot(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.items)


class _BackgroundServer:
    """A socketserver on a free loopback port, served from a thread while the `with` block runs."""

    server: socketserver.BaseServer

    def serve(self, server: socketserver.BaseServer) -> None:
        self.server = server
        self.thread = threading.Thread(target=server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


class SlackSink(_BackgroundServer):
    """An HTTP server on a free loopback port that records each POST: {"path", "body" (JSON)}."""

    def __init__(self) -> None:
        self.received = Received()
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                received.add({"path": self.path, "body": json.loads(body)})
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.serve(ThreadingHTTPServer(("127.0.0.1", 0), Handler))

    @property
    def url(self) -> str:
        return f"http://{self.address}"


class SmtpSink(_BackgroundServer):
    """A minimal SMTP server on a free loopback port that records each message:
    {"auth": (user, password) from AUTH PLAIN, "from", "to": [...], "data": the message text}."""

    def __init__(self) -> None:
        self.received = Received()
        received = self.received

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line: str) -> None:
                self.wfile.write(line.encode() + b"\r\n")

            def handle(self) -> None:
                msg: dict[str, Any] = {"to": []}
                self.reply("220 sink ESMTP")
                while True:
                    raw = self.rfile.readline()
                    if not raw:
                        return
                    line = raw.decode(errors="replace").rstrip("\r\n")
                    verb = line.split(" ", 1)[0].upper()
                    if verb == "EHLO":
                        self.reply("250-sink")
                        self.reply("250-AUTH PLAIN")
                        self.reply("250 8BITMIME")
                    elif verb == "HELO":
                        self.reply("250 sink")
                    elif verb == "AUTH":
                        parts = line.split()
                        token = parts[2] if len(parts) > 2 else ""
                        if not token:
                            self.reply("334 ")
                            token = self.rfile.readline().decode().strip()
                        _, user, password = base64.b64decode(token).decode().split("\0")
                        msg["auth"] = (user, password)
                        self.reply("235 2.7.0 Authentication successful")
                    elif verb == "MAIL":
                        msg["from"] = line.split(":", 1)[1].strip()
                        self.reply("250 OK")
                    elif verb == "RCPT":
                        msg["to"].append(line.split(":", 1)[1].strip())
                        self.reply("250 OK")
                    elif verb == "DATA":
                        self.reply("354 go ahead")
                        data = []
                        while (chunk := self.rfile.readline()) not in (b".\r\n", b".\n", b""):
                            data.append(chunk.decode(errors="replace"))
                        msg["data"] = "".join(data)
                        received.add(msg)
                        msg = {"to": []}
                        self.reply("250 OK")
                    elif verb in ("RSET", "NOOP"):
                        self.reply("250 OK")
                    elif verb == "QUIT":
                        self.reply("221 bye")
                        return
                    else:
                        self.reply("502 not implemented")

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.serve(Server(("127.0.0.1", 0), Handler))


# ---------------------------------------------------------------------------------------------
# Alertmanager, started by a test on a free loopback port and stopped by `procs`


class AlertmanagerServer(LoopbackProgram):
    def __init__(self, procs: Processes, binary: str, config: Path, data: Path) -> None:
        # --cluster.listen-address= : no gossip port (it would be 0.0.0.0:9094, fixed)
        super().__init__(procs, "alertmanager", lambda address: [
            binary, f"--config.file={config}", f"--storage.path={data}", f"--web.listen-address={address}",
            "--cluster.listen-address=", "--log.level=warn"])

    def alerts(self, **params: str) -> list[dict[str, Any]]:
        return api_get(self.base, "/api/v2/alerts", **params)  # type: ignore[no-any-return]

    def post(self, alerts: Sequence[Mapping[str, Any]]) -> None:
        import urllib.request

        request = urllib.request.Request(f"{self.base}/api/v2/alerts", data=json.dumps(list(alerts)).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=10) as resp:
            if resp.status != 200:
                raise AssertionError(f"POST /api/v2/alerts: {resp.status}")
