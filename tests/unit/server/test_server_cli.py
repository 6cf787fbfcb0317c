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
    text = " ".join(done.stdout.split())  # as one line: click wraps the help
    for flag, env in (("--web.listen-address", "AGENT_EXPORTER_WEB_LISTEN_ADDRESS"),
                      ("--web.config.file", "AGENT_EXPORTER_WEB_CONFIG_FILE"),
                      ("--textfile-dir", "AGENT_EXPORTER_TEXTFILE_DIR"),
                      ("--textfile-name", "AGENT_EXPORTER_TEXTFILE_NAME"), ("--config", "AGENT_EXPORTER_CONFIG"),
                      ("--interval", "AGENT_EXPORTER_INTERVAL")):
        assert f" {flag} " in text and f"[env: {env}]" in text
    # the spellings before 0.2 work (below) but are not offered
    for old in ("--textfile ", "--interval-seconds", "AGENT_EXPORTER_TEXTFILE]", "INTERVAL_SECONDS"):
        assert old not in text


def test_errors_are_one_line(tmp_path: Path) -> None:
    # a bad value: exit 2, as the README says of every bad value
    assert_one_line_error(run("--web.listen-address", "9200", "--textfile-dir", str(tmp_path)), 2,
                          "expected HOST:PORT")
    web = tmp_path / "web.yml"
    web.write_text("basic_auth_users:\n  alice: secret\n")
    assert_one_line_error(run("--web.config.file", str(web), "--textfile-dir", str(tmp_path)), 2,
                          f"{web}:2: basic_auth_users.alice: must be a bcrypt hash")
    assert_one_line_error(run("--config", str(tmp_path / "nope.yml")), 2, "cannot read the file")
    bad = tmp_path / "config.yml"
    bad.write_text("interval_seconds: often\n")
    assert_one_line_error(run("--config", str(bad)), 2, f"{bad}:1: interval_seconds")
    assert_one_line_error(run("--textfile-name", "agents.txt"), 2, "--textfile-name: must end in .prom")
    assert_one_line_error(run("--interval", "0"), 2, "--interval: 0.0 is not in the range x>0")
    assert_one_line_error(run(env={"AGENT_EXPORTER_INTERVAL": "soon"}), 2, "AGENT_EXPORTER_INTERVAL: 'soon' is not")


def test_a_port_in_use_is_one_line_without_asyncio_words(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = run("--web.listen-address", f"127.0.0.1:{port}", "--textfile-dir", str(tmp_path))
    assert_one_line_error(done, 1, f"agent-exporter: error: cannot listen on 127.0.0.1:{port}: address already in use "
                                   "(another program has it: choose another with --web.listen-address)")
    assert "attempting" not in done.stderr and "('127.0.0.1'" not in done.stderr


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
    # --interval, --textfile-dir and --textfile-name win over the config
    port2 = free_port()
    procs.start(serve_argv("--config", str(config), "--interval", "100", "--textfile-name", "other.prom",
                           "--web.listen-address", f"127.0.0.1:{port2}"), "serve2")
    status, body = wait_until(lambda: http_get(f"http://127.0.0.1:{port2}/health"), 15, "the server")  # type: ignore[misc]
    assert status == 503
    assert json.loads(body) == {"status": "missing", "textfile": str(textdir / "other.prom"),
                                "error": f"textfile {textdir / 'other.prom'}: No such file or directory",
                                "stale_after_seconds": 300.0}
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    assert "agent-exporter: stopped" in procs.log("serve")


def health_of(procs: Processes, name: str, *args: str, env: dict[str, str] | None = None) -> dict[str, object]:
    port = free_port()
    procs.start(serve_argv("--web.listen-address", f"127.0.0.1:{port}", *args), name, env={**os.environ, **(env or {})})
    _status, body = wait_until(lambda: http_get(f"http://127.0.0.1:{port}/health"), 15, "the server")  # type: ignore[misc]
    return json.loads(body)  # type: ignore[no-any-return]


def test_the_spellings_before_0_2_still_work_with_a_warning(tmp_path: Path, procs: Processes) -> None:
    """--textfile PATH and --interval-seconds (and their variables) are deprecated, not gone; the
    command line still wins over the environment, whichever spelling each uses."""
    path = tmp_path / "old.prom"
    write_textfile(path, render(fleet()))
    health = health_of(procs, "flags", "--textfile", str(path), "--interval-seconds", "100")
    assert (health["textfile"], health["stale_after_seconds"]) == (str(path), 300.0)
    assert procs.log("flags").splitlines()[:2] == [
        "agent-exporter: warning: --textfile is deprecated: use --textfile-dir and --textfile-name",
        "agent-exporter: warning: --interval-seconds is deprecated: use --interval"]

    env = {"AGENT_EXPORTER_TEXTFILE": str(path), "AGENT_EXPORTER_INTERVAL_SECONDS": "50"}
    health = health_of(procs, "env", env=env)
    assert (health["textfile"], health["stale_after_seconds"]) == (str(path), 150.0)
    assert procs.log("env").splitlines()[:2] == [
        "agent-exporter: warning: AGENT_EXPORTER_TEXTFILE is deprecated: use AGENT_EXPORTER_TEXTFILE_DIR and "
        "AGENT_EXPORTER_TEXTFILE_NAME",
        "agent-exporter: warning: AGENT_EXPORTER_INTERVAL_SECONDS is deprecated: use AGENT_EXPORTER_INTERVAL"]

    # the old spelling on the command line over the new one in the environment, and the other way round
    health = health_of(procs, "mixed", "--interval-seconds", "20", "--textfile-dir", str(tmp_path),
                       "--textfile-name", "old.prom",
                       env={"AGENT_EXPORTER_INTERVAL": "7", "AGENT_EXPORTER_TEXTFILE": str(tmp_path / "no.prom")})
    assert (health["textfile"], health["stale_after_seconds"]) == (str(path), 60.0)
    health = health_of(procs, "new", "--interval", "3", env={"AGENT_EXPORTER_INTERVAL_SECONDS": "20"})
    assert health["stale_after_seconds"] == 9.0
