"""`agent-exporter serve` as users start it: options, environment, the config file, one-line errors."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from pathlib import Path

from procs import Processes, free_port, http_get, wait_until

from devtools.textfiles import fleet, render, serve_argv, write_textfile


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(serve_argv(*args), capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, **(env or {})})


def assert_one_line_error(done: subprocess.CompletedProcess[str], code: int, contains: str) -> None:
    assert done.returncode == code, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("agent-exporter: error: "), lines[0]
    assert contains in lines[0], lines[0]


def test_help_names_every_option_and_its_environment_variable() -> None:
    done = run("--help")
    assert done.returncode == 0
    for flag, env in (("--web.listen-address", "AGENT_EXPORTER_WEB_LISTEN_ADDRESS"),
                      ("--web.config.file", "AGENT_EXPORTER_WEB_CONFIG_FILE"),
                      ("--textfile", "AGENT_EXPORTER_TEXTFILE"), ("--config", "AGENT_EXPORTER_CONFIG"),
                      ("--interval-seconds", "AGENT_EXPORTER_INTERVAL_SECONDS")):
        assert flag in done.stdout and env in done.stdout


def test_errors_are_one_line(tmp_path: Path) -> None:
    # a bad value: exit 2, as the README says of every bad value
    assert_one_line_error(run("--web.listen-address", "9200", "--textfile", "x"), 2, "expected HOST:PORT")
    web = tmp_path / "web.yml"
    web.write_text("basic_auth_users:\n  alice: secret\n")
    assert_one_line_error(run("--web.config.file", str(web), "--textfile", "x"), 2,
                          f"{web}:2: basic_auth_users.alice: must be a bcrypt hash")
    assert_one_line_error(run("--config", str(tmp_path / "nope.yml")), 2, "cannot read the file")
    bad = tmp_path / "config.yml"
    bad.write_text("interval_seconds: often\n")
    assert_one_line_error(run("--config", str(bad)), 2, f"{bad}:1: interval_seconds")
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert_one_line_error(run("--web.listen-address", f"127.0.0.1:{port}", "--textfile", "x"), 1,
                              "Address already in use")


def test_the_config_gives_the_path_and_the_interval(tmp_path: Path, procs: Processes) -> None:
    textdir = tmp_path / "textfile"
    textdir.mkdir()
    write_textfile(textdir / "custom.prom", render(fleet()))
    config = tmp_path / "config.yml"
    config.write_text(f"textfile_dir: {textdir}\ntextfile_name: custom.prom\ninterval_seconds: 2\n")
    port = free_port()
    env = {**os.environ, "AGENT_EXPORTER_WEB_LISTEN_ADDRESS": f"127.0.0.1:{port}",
           "AGENT_EXPORTER_CONFIG": str(config)}
    proc = procs.start(serve_argv(), "serve", env=env)
    status, body = wait_until(lambda: http_get(f"http://127.0.0.1:{port}/health"), 15, "the server")  # type: ignore[misc]
    health = json.loads(body)
    assert status == 200 and health["textfile"] == str(textdir / "custom.prom")
    assert health["stale_after_seconds"] == 6.0
    # --interval-seconds and --textfile win over the config
    port2 = free_port()
    procs.start(serve_argv("--config", str(config), "--interval-seconds", "100", "--textfile",
                           str(textdir / "other.prom"), "--web.listen-address", f"127.0.0.1:{port2}"), "serve2")
    status, body = wait_until(lambda: http_get(f"http://127.0.0.1:{port2}/health"), 15, "the server")  # type: ignore[misc]
    assert status == 503
    assert json.loads(body) == {"status": "missing", "textfile": str(textdir / "other.prom"),
                                "error": f"textfile {textdir / 'other.prom'}: No such file or directory",
                                "stale_after_seconds": 300.0}
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    assert "agent-exporter: stopped" in procs.log("serve")
