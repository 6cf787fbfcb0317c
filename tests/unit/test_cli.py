"""The agent-exporter command as users run it: exit codes, one-line errors, the old file kept."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_checks import EXE, assert_one_line_error, assert_untouched


def run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    runtime = tmp_path / "no-manager"
    runtime.mkdir(exist_ok=True)
    full_env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "AGENT_EXPORTER_STATE_DIR": str(tmp_path / "state"),
                **env}
    full_env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    return subprocess.run([*EXE, *args], capture_output=True, text=True, env=full_env, timeout=60, check=False)


def assert_untouched_alone(textdir: Path) -> None:
    assert_untouched(textdir)
    assert sorted(p.name for p in textdir.iterdir() if p.name != ".agents.prom.lock") == ["agents.prom"]


def test_bad_config_exits_2_with_file_line_key(tmp_path: Path, textdir: Path) -> None:
    cfg = tmp_path / "c.yml"
    cfg.write_text(f"textfile_dir: {textdir}\nagents:\n  - unit: a\n    tpye: x\n")
    done = run(["write", "--config", str(cfg)], tmp_path)
    assert_one_line_error(done, 2, starts=f"{cfg}:4: agents[0].tpye: unknown key")
    assert_untouched_alone(textdir)


def test_unreachable_systemd_fails_cleanly_and_keeps_the_file(tmp_path: Path, textdir: Path) -> None:
    done = run(["write", "--scope", "user", "--textfile-dir", str(textdir)], tmp_path)
    assert_one_line_error(done, 1, starts="systemctl list-units failed: Failed to connect to bus")
    assert_untouched_alone(textdir)


def test_missing_textfile_dir(tmp_path: Path) -> None:
    done = run(["write", "--scope", "user", "--textfile-dir", str(tmp_path / "absent")], tmp_path)
    assert_one_line_error(done, 1, starts=f"textfile directory {tmp_path / 'absent'} does not exist")


def test_the_fast_write_path_imports_neither_click_nor_yaml(tmp_path: Path, textdir: Path) -> None:
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path), "AGENT_EXPORTER_STATE_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "textfile_writer", "write", "--scope", "user",
                           "--textfile-dir", str(textdir)], capture_output=True, text=True, timeout=60, check=False,
                          env=env)
    imported = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "textfile_writer.writer" in imported
    assert not {m for m in imported if m.split(".")[0] in ("click", "yaml")}
    # run as __main__ by runpy, never imported again under its own name (no second copy)
    assert not {"textfile_writer.__main__", "textfile_writer.cli"} & imported


def test_usage_errors_go_through_click(tmp_path: Path) -> None:
    done = run(["write", "--bogus"], tmp_path)
    assert done.returncode == 2
    assert "No such option '--bogus'" in done.stderr


def test_help_names_the_environment_variables(tmp_path: Path) -> None:
    done = run(["write", "--help"], tmp_path)
    assert done.returncode == 0
    for env in ("AGENT_EXPORTER_CONFIG", "AGENT_EXPORTER_TEXTFILE_DIR", "AGENT_EXPORTER_STATE_DIR"):
        assert env in done.stdout
    top = run(["--help"], tmp_path)
    for command in ("write", "status", "check"):
        assert command in top.stdout


def test_check_reports_what_it_found(tmp_path: Path, textdir: Path) -> None:
    cfg = tmp_path / "c.yml"
    cfg.write_text(f"scope: user\ntextfile_dir: {textdir}\nagents:\n  - unit: a\n  - pattern: 'agent-*'\n")
    done = run(["check", "--config", str(cfg)], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"config: {cfg}: OK",
        f"  scope user, every 10s -> {textdir}/agents.prom",
        "  1 explicit agent, 1 pattern (agent-*.service), disk /",
    ]


def test_check_warns_about_an_empty_agent_list(tmp_path: Path, textdir: Path) -> None:
    cfg = tmp_path / "c.yml"
    cfg.write_text(f"scope: user\ntextfile_dir: {textdir}\nagents: []\n")
    done = run(["check", "--config", str(cfg)], tmp_path)
    assert done.returncode == 0, done.stderr  # valid, but worth a word
    assert "  0 explicit agents, 0 patterns (none), disk /" in done.stdout.splitlines()
    assert done.stderr.startswith("agent-exporter: warning: no agents: `agents:` is empty")
    assert len(done.stderr.splitlines()) == 1


def test_system_check_fails_without_systemd(tmp_path: Path, textdir: Path) -> None:
    done = run(["check", "--system-check", "--scope", "user", "--textfile-dir", str(textdir)], tmp_path)
    assert done.returncode == 1
    assert "agent-exporter: error: systemctl list-units failed: Failed to connect to bus" in done.stderr


def test_status_fails_cleanly_without_systemd(tmp_path: Path) -> None:
    done = run(["status", "--scope", "user", "--format", "json"], tmp_path)
    assert_one_line_error(done, 1, starts="systemctl list-units failed: Failed to connect to bus")


@pytest.mark.parametrize("args", [["write", "--bogus"], ["nope"], ["status", "--format", "xml"],
                                  ["serve", "--web.listen-address"], ["install", "--interval", "0"],
                                  ["uninstall", "--user", "--system", "extra"]])
def test_every_usage_error_is_one_line_with_exit_2(tmp_path: Path, args: list[str]) -> None:
    done = run(args, tmp_path)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith("agent-exporter: error: "), done.stderr
    assert "--help" in done.stderr  # where to look next
