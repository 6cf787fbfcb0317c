"""Helpers for the `agent-exporter serve` tests: realistic textfiles, starting the server, certificates.

The textfiles follow DESIGN.md's metric contract (HELP and TYPE for every family, agent and type
labels, escaping), written here so the server's tests do not depend on the writer.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from procs import IN_CI, Processes, free_port, http_get, need, wait_until

STATES = ("active", "reloading", "inactive", "failed", "activating", "deactivating")


@dataclass(frozen=True)
class Agent:
    name: str
    type: str = "primary"
    state: str = "active"
    memory_kb: float | None = 204800.0
    cpu_percent: float | None = 1.5
    uptime_seconds: float = 3600.0
    restarts: int = 0
    tasks: int = 4


def fleet() -> list[Agent]:
    """13 primary agents and 3 support ones, as in the reference setup, with some variety."""
    names = ["core", "planner", "memory", "search", "browser", "coder", "reviewer", "scheduler",
             "notifier", "indexer", "crawler", "summarizer", "translator"]
    agents = [Agent(f"agent-{n}_dev", "primary", memory_kb=100000.0 + 4096 * i, cpu_percent=0.25 * i,
                    uptime_seconds=3600.0 * i + 59, restarts=i % 3)
              for i, n in enumerate(names)]
    agents[4] = Agent("agent-browser_dev", "primary", state="failed", memory_kb=0.0, cpu_percent=0.0,
                      uptime_seconds=0.0, restarts=7, tasks=0)
    agents += [Agent("agent-gateway", "support", memory_kb=1536000.0, cpu_percent=12.3,
                     uptime_seconds=90061.0, restarts=1),
               Agent("agent-watchdog", "support", memory_kb=8192.0, cpu_percent=0.1, uptime_seconds=61.0),
               Agent("agent-backup", "support", state="inactive", memory_kb=0.0, cpu_percent=None,
                     uptime_seconds=0.0, restarts=0, tasks=0)]
    return agents


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def render(agents: Sequence[Agent], timestamp: float | None = None) -> bytes:
    ts = time.time() if timestamp is None else timestamp
    out: list[str] = []

    def fam(name: str, kind: str, help_text: str, samples: list[tuple[dict[str, str], float | None]]) -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            if value is None:
                continue
            lab = ",".join(f'{k}="{_esc(v)}"' for k, v in labels.items())
            out.append(f"{name}{{{lab}}} {_num(value)}" if lab else f"{name} {_num(value)}")

    def per(get):  # type: ignore[no-untyped-def]
        return [({"agent": a.name, "type": a.type}, get(a)) for a in agents]

    up = lambda a: 1 if a.state in ("active", "reloading") else 0  # noqa: E731
    fam("agent_up", "gauge", "1 when the agent's unit is active or reloading, else 0.", per(up))
    fam("agent_memory_kb", "gauge", "Memory of the agent's whole cgroup in KiB.", per(lambda a: a.memory_kb))
    fam("agent_cpu_percent", "gauge", "CPU used since the previous run, % of one core.",
        per(lambda a: a.cpu_percent))
    fam("agent_uptime_seconds", "gauge", "Seconds since the unit last became active.",
        per(lambda a: a.uptime_seconds))
    fam("agent_restart_count", "counter", "systemd's NRestarts.", per(lambda a: a.restarts))
    fam("agents_running_total", "gauge", "Agents with agent_up 1.", [({}, sum(up(a) for a in agents))])
    fam("agents_total", "gauge", "Agents configured and discovered.", [({}, len(agents))])
    fam("system_memory_used_kb", "gauge", "Host memory in use in KiB.", [({}, 6123456)])
    fam("system_memory_total_kb", "gauge", "Host memory in KiB.", [({}, 16318976)])
    fam("system_disk_used_kb", "gauge", "Used space in KiB.", [({}, 41234567)])
    fam("system_disk_total_kb", "gauge", "Size in KiB.", [({}, 102400000)])
    fam("system_load_average", "gauge", "Host load average over the period.",
        [({"period": p}, v) for p, v in (("1m", 0.42), ("5m", 0.37), ("15m", 0.3))])
    fam("agent_state", "gauge", "1 for the unit's current ActiveState, 0 for the others.",
        [({"agent": a.name, "type": a.type, "state": s}, int(a.state == s)) for a in agents for s in STATES])
    fam("agent_tasks", "gauge", "Tasks in the agent's cgroup.", per(lambda a: a.tasks))
    fam("agent_info", "gauge", "The systemd unit behind each agent; always 1.",
        [({"agent": a.name, "type": a.type, "unit": a.name + ".service", "scope": "system"}, 1) for a in agents])
    fam("agent_exporter_last_success_timestamp_seconds", "gauge", "Unix time this file was produced.",
        [({}, round(ts, 3))])
    fam("agent_exporter_run_duration_seconds", "gauge", "How long the run took.", [({}, 0.041)])
    fam("agent_exporter_collect_errors", "gauge", "Problems met in this run.", [({}, 0)])
    fam("agent_exporter_build_info", "gauge", "agent-exporter's version; always 1.", [({"version": "0.1.0"}, 1)])
    return ("\n".join(out) + "\n").encode()


def write_textfile(path: Path, data: bytes, mtime: float | None = None) -> None:
    """Atomically, as the writer does: a temporary file in the same directory, then rename."""
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_bytes(data)
    if mtime is not None:
        os.utime(tmp, (mtime, mtime))
    os.replace(tmp, path)


def serve_argv(*args: str) -> list[str]:
    """The real command line: `agent-exporter serve`."""
    return [sys.executable, "-m", "textfile_writer", "serve", *args]


def start_server(procs: Processes, textfile: Path, *args: str, name: str = "serve",
                 scheme: str = "http", env: dict[str, str] | None = None,
                 ready_path: str = "/health") -> tuple[str, int]:
    """Start `agent-exporter serve` on a free loopback port; returns (base URL, pid) once it answers."""
    port = free_port()
    argv = serve_argv("--web.listen-address", f"127.0.0.1:{port}", "--textfile", str(textfile), *args)
    proc = procs.start(argv, name, env={**os.environ, **(env or {})})
    base = f"{scheme}://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}: {procs.log(name)}")
        import socket

        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True

    wait_until(up, 15, f"the server on port {port}")
    return base, proc.pid


@dataclass(frozen=True)
class Certs:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_certs(directory: Path) -> Certs:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate, with openssl."""
    openssl = need("openssl")
    d = directory
    d.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, cwd=d)

    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
        "-subj", "/CN=agent-exporter test CA", "-keyout", "ca.key", "-out", "ca.crt")
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for who in ("server", "client"):
        run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj",
            f"/CN={who}", "-keyout", f"{who}.key", "-out", f"{who}.csr")
        run("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", f"{who}.ext", "-out", f"{who}.crt")
    return Certs(d / "ca.crt", d / "server.crt", d / "server.key", d / "client.crt", d / "client.key")


def bcrypt_hash(password: str, rounds: int = 10) -> str:
    import bcrypt

    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()


__all__ = ["IN_CI", "Agent", "Certs", "bcrypt_hash", "fleet", "free_port", "http_get", "make_certs", "need",
           "render", "serve_argv", "start_server", "wait_until", "write_textfile"]
