"""The monitoring side around the writer, for `make demo` and for the tests, in one place:

- processes started on free loopback ports and stopped by PID (Processes, free_port, wait_until,
  http_get);
- node_exporter reading a textfile directory (NodeExporter);
- the shipped deploy/prometheus files rewritten for a short run: each job's targets replaced by
  given addresses, scrapes and rule evaluations every few seconds, the alert rules' `for:`
  shortened (prometheus_config, shortened_rules); nothing else changes: jobs, relabelling, rule
  expressions, labels and annotations are the shipped ones;
- a real Prometheus on those files, and its HTTP API (PrometheusServer, api_get).

devtools.demo runs them for people to look at; tests/ (deploy_fixtures, harness, procs) import them
from here.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import yaml

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
PROMETHEUS_DIR = DEPLOY / "prometheus"
PROMETHEUS_YML = PROMETHEUS_DIR / "prometheus.yml"
ALERTS_YML = PROMETHEUS_DIR / "prometheus-alerts.yml"
PROMETHEUS_BIN = "prometheus"  # Debian's package, on PATH
NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"  # Debian's package


class StackError(RuntimeError):
    """A program of the stack did not start, or answered what it should not have."""


class ProgramExited(StackError):
    """A program of the stack exited while it should be running."""


# ---------------------------------------------------------------------------------------------
# Ports, polling, processes


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (picked by the kernel)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], object], timeout: float, what: str, step: float = 0.05) -> object:
    """Poll predicate until it returns something truthy; raise TimeoutError naming `what` after timeout
    seconds. An exception from predicate counts as "not yet", except ProgramExited (waiting longer
    cannot help), which is raised at once."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except ProgramExited:
            raise
        except Exception as exc:
            last_exc = exc
        else:
            if value:
                return value
        time.sleep(step)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last error: {last_exc!r})")


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """(status, body) of a GET; an HTTP error status is an answer, not an exception."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - our own loopback URLs
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


class Processes:
    """Starts processes, each in a session of its own with its output in `log_dir`/<name>.log, and
    stops every one of them by PID (stop_all)."""

    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        self._procs: list[tuple[subprocess.Popen[bytes], str]] = []

    def start(self, argv: Sequence[str], name: str, env: dict[str, str] | None = None,
              cwd: Path | None = None) -> subprocess.Popen[bytes]:
        log = self._log_dir / f"{name}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                list(argv), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, cwd=cwd, start_new_session=True,
            )
        self._procs.append((proc, name))
        return proc

    def log(self, name: str) -> str:
        path = self._log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def running(self) -> list[tuple[int, str]]:
        """(pid, name) of each process started here that has not exited."""
        return [(proc.pid, name) for proc, name in self._procs if proc.poll() is None]

    def stop_all(self) -> list[tuple[int, str]]:
        """Stop every process, the last started first; (pid, name) of those that were still running."""
        stopped = self.running()
        for proc, _name in reversed(self._procs):
            stop_pid(proc.pid, proc)
        self._procs.clear()
        return stopped


def stop_pid(pid: int, proc: subprocess.Popen[bytes] | None = None, grace: float = 5.0) -> None:
    """SIGTERM the process (and its session's group), then SIGKILL after `grace` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if proc is not None:
                if proc.poll() is not None:
                    return
            else:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return
            time.sleep(0.05)


# ---------------------------------------------------------------------------------------------
# node_exporter


def wait_answering(proc: subprocess.Popen[bytes], url: str, program: str, log: Callable[[], str],
                   timeout: float) -> None:
    """Until url answers 200. ProgramExited at once if the program dies; StackError, with the end of
    its log, if it does not answer within timeout seconds."""
    def ready() -> bool:
        if proc.poll() is not None:
            raise ProgramExited(f"{program} exited {proc.returncode}: {log()[-3000:]}")
        return http_get(url, timeout=2)[0] == 200

    try:
        wait_until(ready, timeout, f"{program} on {url}")
    except TimeoutError as exc:
        raise StackError(f"{exc}\n{log()[-3000:]}") from None


class NodeExporter:
    """node_exporter on a free loopback port, reading `textfile_dir` with its textfile collector.

    Only that collector by default (what the tests compare); host_collectors=True keeps
    node_exporter's default collectors too (CPU, memory, filesystems..., as a real host runs it).
    """

    def __init__(self, procs: Processes, textfile_dir: Path, binary: str = NODE_EXPORTER,
                 host_collectors: bool = False) -> None:
        self.procs = procs
        self.textfile_dir = textfile_dir
        self.binary = binary
        self.host_collectors = host_collectors
        self.port = 0
        self.name = ""
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}/metrics"

    def start(self, timeout: float = 20) -> NodeExporter:
        self.port = free_port()
        self.name = f"node_exporter-{self.port}"
        collectors = [] if self.host_collectors else ["--collector.disable-defaults"]
        self.proc = self.procs.start([
            self.binary, f"--web.listen-address={self.address}", *collectors,
            "--collector.textfile", f"--collector.textfile.directory={self.textfile_dir}",
        ], name=self.name)
        wait_answering(self.proc, self.url, "node_exporter", self.log, timeout)
        return self

    def log(self) -> str:
        return self.procs.log(self.name)

    def scrape(self) -> str:
        status, body = http_get(self.url)
        if status != 200:
            raise StackError(f"node_exporter answered {status}: {body[:500]!r}")
        return body.decode("utf-8")


# ---------------------------------------------------------------------------------------------
# The shipped Prometheus files, rewritten for a short run


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def shortened_rules(directory: Path, for_: str = "2s", interval: str = "1s") -> Path:
    """directory/prometheus-alerts.yml: the shipped rules with every `for:` set to `for_`, evaluated
    every `interval`."""
    doc = load_yaml(ALERTS_YML)
    for group in doc["groups"]:
        group["interval"] = interval
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = for_
    path = directory / "prometheus-alerts.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def prometheus_config(directory: Path, targets: Mapping[str, str], alertmanager: str | None,
                      rules: Path, source: Path = PROMETHEUS_YML, interval: str = "1s") -> Path:
    """directory/prometheus.yml: the shipped configuration (`source`) with each job's targets
    replaced by targets[job] (host:port; every job must have one), scrapes and evaluations every
    `interval`, the rule file `rules`, and alerts sent to `alertmanager` (host:port) or nowhere."""
    doc = load_yaml(source)
    doc["global"] = {**doc.get("global", {}), "scrape_interval": interval, "evaluation_interval": interval}
    jobs = {j["job_name"]: j for j in doc["scrape_configs"]}
    if set(jobs) != set(targets):
        raise StackError(f"the shipped jobs are {sorted(jobs)}, targets are given for {sorted(targets)}")
    for name, job in jobs.items():
        job["scrape_interval"] = interval
        job["scrape_timeout"] = interval
        job.pop("file_sd_configs", None)
        job["static_configs"] = [{"targets": [targets[name]]}]
    if alertmanager is None:
        doc.pop("alerting", None)
    else:
        doc["alerting"]["alertmanagers"] = [{"static_configs": [{"targets": [alertmanager]}]}]
    doc["rule_files"] = [str(rules)]
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


# ---------------------------------------------------------------------------------------------
# Prometheus and its HTTP API


def api_get(base: str, path: str, **params: str) -> Any:
    """GET base+path?params; the `data` of a Prometheus-style {"status": "success"} answer, else the
    whole JSON document. StackError for any status but 200."""
    query = urllib.parse.urlencode(params)
    status, body = http_get(f"{base}{path}?{query}" if query else f"{base}{path}")
    if status != 200:
        raise StackError(f"GET {path} {params}: {status} {body[:500]!r}")
    doc = json.loads(body)
    if isinstance(doc, dict) and doc.get("status") == "success":
        return doc["data"]
    return doc


class LoopbackProgram:
    """A program of the Prometheus family on a free loopback port, started by `procs` (so stopped
    by PID), ready once its /-/ready answers 200."""

    def __init__(self, procs: Processes, name: str, argv: Callable[[str], Sequence[str]]) -> None:
        """argv(address) is the command line, given the 127.0.0.1:<port> to listen on."""
        self.procs = procs
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.base = f"http://{self.address}"
        self.name = f"{name}-{self.port}"
        self.proc = procs.start(list(argv(self.address)), self.name)

    def wait_ready(self, timeout: float = 60) -> Self:
        wait_answering(self.proc, f"{self.base}/-/ready", self.name.rsplit("-", 1)[0], self.log, timeout)
        return self

    def log(self) -> str:
        return self.procs.log(self.name)


class PrometheusServer(LoopbackProgram):
    """Prometheus on a free loopback port with `config`, its TSDB in `data`, started by `procs`."""

    def __init__(self, procs: Processes, binary: str, config: Path, data: Path, *extra: str) -> None:
        super().__init__(procs, "prometheus", lambda address: [
            binary, f"--config.file={config}", f"--storage.tsdb.path={data}", f"--web.listen-address={address}",
            "--log.level=warn", *extra])
        self._ui: str | None = None

    def page(self, name: str, query: str = "") -> str:
        """The URL of a page of the web UI ("graph", "alerts", "targets"): /<name> where the React UI
        is built in (upstream's builds), /classic/<name> where only the classic one is (Debian's
        package answers 404 for /alerts)."""
        if self._ui is None:
            self._ui = "" if http_get(f"{self.base}/alerts", timeout=5)[0] == 200 else "/classic"
        return f"{self.base}{self._ui}/{name}" + (f"?{query}" if query else "")

    def api(self, path: str, **params: str) -> Any:
        return api_get(self.base, path, **params)

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result (a vector: [{"metric": {...}, "value": [time, "value"]}, ...])."""
        return self.api("/api/v1/query", query=expr)["result"]  # type: ignore[no-any-return]

    def query_range(self, expr: str, seconds: float, step: float = 1.0) -> list[dict[str, Any]]:
        end = time.time()
        return self.api("/api/v1/query_range", query=expr, start=f"{end - seconds:.3f}",  # type: ignore[no-any-return]
                        end=f"{end:.3f}", step=f"{step:g}")["result"]

    def targets(self) -> dict[str, list[dict[str, Any]]]:
        """job -> its active targets."""
        out: dict[str, list[dict[str, Any]]] = {}
        for t in self.api("/api/v1/targets", state="active")["activeTargets"]:
            out.setdefault(t["labels"]["job"], []).append(t)
        return out

    def wait_targets_up(self, jobs: Mapping[str, int], timeout: float = 30) -> None:
        """Until each job has exactly that many targets, all up."""
        def up() -> bool:
            found = self.targets()
            return all(len(found.get(j, [])) == n and all(t["health"] == "up" for t in found[j])
                       for j, n in jobs.items())

        try:
            wait_until(up, timeout, f"targets {dict(jobs)} up", step=0.2)
        except TimeoutError as exc:
            raise StackError(f"{exc}\ntargets: {self.targets()}\n{self.log()[-3000:]}") from None

    def alerts(self) -> list[dict[str, Any]]:
        """The rules manager's active alerts, pending and firing: [{"labels", "state", ...}]."""
        return self.api("/api/v1/alerts")["alerts"]  # type: ignore[no-any-return]

    def firing(self, alertname: str) -> list[dict[str, str]]:
        """Labels of the firing alerts of that name, as the rules manager has them now."""
        return [a["labels"] for a in self.alerts()
                if a["labels"]["alertname"] == alertname and a["state"] == "firing"]
