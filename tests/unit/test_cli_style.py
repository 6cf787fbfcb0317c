"""One CLI style across every command (issue 14, item 7), checked by walking the click command tree:
each option has help, says its variable as `[env: NAME]` and none of click's own brackets; and every
usage or validation error, whatever the command and the kind of option, is one line
`agent-exporter: error: …` with exit 2, nothing on stdout."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import click
import pytest
from cli_checks import EXE

from textfile_writer.cli import cli
from textfile_writer.clistyle import StyledOption
from textfile_writer.install.cli import install, uninstall
from textfile_writer.server.cli import serve

COMMANDS: dict[str, click.Command] = {**cli.commands, "serve": serve, "install": install, "uninstall": uninstall}
# String options whose value is checked by the program rather than by click, with a value it refuses.
VALIDATED = {"--scope": "bogus", "--timeout": "0", "--textfile-name": "agents.txt", "--web.listen-address": "9200"}
# The commands that may change the host when given good arguments: only parse errors are fed to them.
CHANGES_THE_HOST = {"install", "uninstall"}


def options(command: click.Command) -> list[StyledOption]:
    return [p for p in command.params if isinstance(p, click.Option) and p.name != "help"]


def bad_invocations() -> list[tuple[str, list[str], dict[str, str]]]:
    """(case id, argv, environment) for every kind of mistake each option of each command allows."""
    cases = [("no such command", ["no-such-command"], {}), ("top: unknown option", ["--bogus"], {})]
    for name, command in sorted(COMMANDS.items()):
        cases += [(f"{name}: unknown option", [name, "--no-such-option"], {}),
                  (f"{name}: extra argument", [name, "surplus"], {})]
        for opt in options(command):
            flag = max(opt.opts, key=len)
            if opt.is_flag:
                cases.append((f"{name} {flag}=1", [name, f"{flag}=1"], {}))
                continue
            cases.append((f"{name} {flag} without its value", [name, flag], {}))
            bad: list[str] = []
            if isinstance(opt.type, click.Choice):
                bad.append("bogus")
            elif isinstance(opt.type, click.IntRange | click.FloatRange):
                bad += ["not-a-number", str((opt.type.min or 0) - 1)]
            elif flag in VALIDATED and name not in CHANGES_THE_HOST:
                bad.append(VALIDATED[flag])
            for value in bad:
                cases.append((f"{name} {flag} {value}", [name, flag, value], {}))
                if opt.env and (opt.type.name != "text" or name not in CHANGES_THE_HOST):
                    cases.append((f"{name} {opt.env}={value}", [name], {opt.env: value}))
    cases.append(("install --user --system", ["install", "--user", "--system", "--dry-run"], {}))
    cases.append(("uninstall --scope user --system", ["uninstall", "--scope", "user", "--system"], {}))
    return cases


CASES = bad_invocations()


def test_every_command_and_option_kind_is_covered() -> None:
    """The walk found the commands, and options of each kind (a guard against walking nothing)."""
    assert set(COMMANDS) == {"write", "status", "check", "serve", "install", "uninstall"}
    ids = " | ".join(c[0] for c in CASES)
    for expected in ("serve --interval not-a-number", "serve AGENT_EXPORTER_INTERVAL=not-a-number",
                     "install --interval 0", "install --scope bogus", "status --format bogus",
                     "write --timeout 0", "serve --interval-seconds -1", "install --dry-run=1",
                     "check --system-check=1", "uninstall --unit-dir without its value"):
        assert expected in ids, expected


@pytest.mark.parametrize(("argv", "env"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_every_usage_error_is_one_line_and_exit_2(tmp_path: Path, argv: list[str], env: dict[str, str]) -> None:
    runtime = tmp_path / "no-manager"
    runtime.mkdir()
    full = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_EXPORTER_")}
    full.update(XDG_RUNTIME_DIR=str(runtime), AGENT_EXPORTER_STATE_DIR=str(tmp_path / "state"), **env)
    full.pop("DBUS_SESSION_BUS_ADDRESS", None)
    done = subprocess.run([*EXE, *argv], capture_output=True, text=True, env=full, timeout=60, check=False,
                          cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("agent-exporter: error: "), done.stderr
    assert "Usage:" not in done.stderr and "Error:" not in done.stderr
    if "(see '" in lines[0]:  # click's errors say where to read more: that command's help
        command = f"agent-exporter {argv[0]}" if argv[0] in COMMANDS else "agent-exporter"
        assert lines[0].endswith(f"(see '{command} --help')"), lines[0]
    assert list(tmp_path.iterdir()) == [runtime]  # nothing made


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_has_one_style(name: str) -> None:
    command = COMMANDS[name]
    assert command.help, name
    done = subprocess.run([*EXE, name, "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())  # click wraps lines
    for clicks in ("[env var:", "[default:", "x>=", "x>0", "<=x"):
        assert clicks not in text, (name, clicks)
    for opt in options(command):
        assert isinstance(opt, StyledOption), (name, opt.opts)
        if opt.hidden:  # a deprecated spelling: not offered
            assert f"{opt.opts[0]} " not in text.replace(f"{opt.opts[0]}-", ""), (name, opt.opts)
            continue
        assert opt.help, (name, opt.opts)
        assert opt.opts[0] in text
        if opt.env:
            assert opt.env.startswith("AGENT_EXPORTER_")
            assert f"[env: {opt.env}]" in text, (name, opt.opts)


DEBIAN_PYTHON = "/usr/bin/python3"  # the Debian package's interpreter, with Debian 12's click 8.1


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_and_usage_errors_work_with_debians_click(name: str) -> None:
    """The package runs on Debian's python3-click (8.1), the venv on PyPI's newer one: the house style
    must use only what both have. Each command's help, and a usage error, from this checkout."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    version = subprocess.run([DEBIAN_PYTHON, "-c", "import click; print(click.__version__)"], capture_output=True,
                             text=True, check=False, env=env)
    assert version.returncode == 0, f"{DEBIAN_PYTHON} has no click (python3-click: make test installs it)"
    base = [DEBIAN_PYTHON, "-m", "textfile_writer", name]
    helped = subprocess.run([*base, "--help"], capture_output=True, text=True, timeout=60, check=False, env=env)
    assert helped.returncode == 0 and "Usage:" in helped.stdout, (version.stdout, helped.stderr)
    bad = subprocess.run([*base, "--no-such-option"], capture_output=True, text=True, timeout=60, check=False, env=env)
    assert bad.returncode == 2, (version.stdout, bad.stderr)
    assert bad.stderr.startswith("agent-exporter: error:") and bad.stderr.count("\n") == 1, bad.stderr


def test_one_variable_per_concept() -> None:
    """Where two commands have an option of the same name, they read the same variable; no two names
    for one variable."""
    by_flag: dict[str, set[str | None]] = {}
    by_env: dict[str, set[str]] = {}
    for command in COMMANDS.values():
        for opt in options(command):
            if opt.hidden:
                continue
            by_flag.setdefault(opt.opts[0], set()).add(opt.env)
            if opt.env:
                by_env.setdefault(opt.env, set()).add(opt.opts[0])
    assert {f: e for f, e in by_flag.items() if len(e) > 1} == {}
    assert {e: f for e, f in by_env.items() if len(f) > 1} == {}
    for concept in ("--interval", "--config", "--web.listen-address", "--scope", "--textfile-dir", "--textfile-name"):
        assert by_flag[concept] == {"AGENT_EXPORTER_" + concept.lstrip("-").replace(".", "_").replace("-", "_").upper()}
