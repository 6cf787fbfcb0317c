"""options.py: one option table, parsed the same by click and by the write fast path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from textfile_writer.cli import cli
from textfile_writer.defaults import default_state_dir
from textfile_writer.errors import ConfigError
from textfile_writer.options import COMMON, parse_fast, resolve


def click_values(args: list[str]) -> dict[str, object]:
    ctx = cli.commands["write"].make_context("write", list(args))
    return dict(ctx.params)


@pytest.mark.parametrize("args", [
    [],
    ["--config", "/etc/agent-exporter.yml"],
    ["--config=/etc/a.yml", "--scope", "system", "-v"],
    ["--textfile-dir", "/tmp/x", "--textfile-name=x.prom", "--state-dir", "/s", "--timeout", "2.5"],
    ["--verbose", "--scope=user"],
    ["--full-refresh", "--scope=user"],
    ["-v", "--full-refresh"],
])
def test_fast_path_reads_what_click_reads(args: list[str]) -> None:
    fast = parse_fast(args)
    assert fast is not None
    slow = click_values(args)
    switches = ("verbose", "full_refresh")
    assert {k: v for k, v in fast.items() if k not in switches} == {
        k: v for k, v in slow.items() if v is not None and k not in switches}
    for switch in switches:
        assert bool(fast[switch]) == bool(slow[switch]), switch


@pytest.mark.parametrize(("args", "env", "expected"), [
    ([], {}, False), (["--full-refresh"], {}, True), ([], {"AGENT_EXPORTER_FULL_REFRESH": "1"}, True),
    ([], {"AGENT_EXPORTER_FULL_REFRESH": "no"}, False),
    (["--full-refresh"], {"AGENT_EXPORTER_FULL_REFRESH": "0"}, True),
])
def test_full_refresh_from_flag_or_environment(args: list[str], env: dict[str, str], expected: bool,
                                               tmp_path: Path) -> None:
    values = parse_fast([*args, "--state-dir", str(tmp_path)])
    assert values is not None
    assert resolve(values, environ=env).full_refresh is expected


def test_full_refresh_environment_must_be_a_boolean(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"AGENT_EXPORTER_FULL_REFRESH.*must be 1 or 0"):
        resolve({"state_dir": str(tmp_path)}, environ={"AGENT_EXPORTER_FULL_REFRESH": "maybe"})


@pytest.mark.parametrize("args", [
    ["--help"], ["-h"], ["--bogus"], ["--config"], ["positional"], ["--config", "a", "--config", "b"],
])
def test_fast_path_leaves_the_unusual_to_click(args: list[str]) -> None:
    assert parse_fast(args) is None


def test_every_option_has_an_environment_variable() -> None:
    assert [o.env for o in COMMON] == [
        "AGENT_EXPORTER_CONFIG", "AGENT_EXPORTER_SCOPE", "AGENT_EXPORTER_TEXTFILE_DIR",
        "AGENT_EXPORTER_TEXTFILE_NAME", "AGENT_EXPORTER_STATE_DIR", "AGENT_EXPORTER_TIMEOUT"]


def test_command_line_over_environment_over_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yml"
    cfg.write_text("scope: system\ntextfile_dir: /from/file\ntextfile_name: file.prom\n")
    env = {"AGENT_EXPORTER_CONFIG": str(cfg), "AGENT_EXPORTER_TEXTFILE_DIR": "/from/env",
           "AGENT_EXPORTER_STATE_DIR": str(tmp_path / "state")}
    s = resolve({"scope": "user", "verbose": None}, env)
    assert s.config.scope == "user"  # command line
    assert s.config.textfile_dir == "/from/env"  # environment over file
    assert s.config.textfile_name == "file.prom"  # file over default
    assert s.state_dir == str(tmp_path / "state")
    assert s.timeout == 5.0 and s.verbose is False


@pytest.mark.parametrize(("values", "message"), [
    ({"scope": "root"}, "--scope: must be 'user' or 'system'"),
    ({"timeout": "soon"}, "--timeout: must be a number of seconds"),
    ({"timeout": "0"}, "--timeout: must be a number of seconds"),
    ({"textfile_name": "x.txt"}, "--textfile-name: must end in .prom"),
    ({"config": "/nonexistent/agent-exporter.yml"},
     "/nonexistent/agent-exporter.yml: cannot read the file: No such file or directory"),
])
def test_bad_values_are_config_errors(values: dict[str, str], message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        resolve(values, {"AGENT_EXPORTER_STATE_DIR": str(tmp_path)})
    assert str(info.value).startswith(message)


def test_state_dir_defaults() -> None:
    assert default_state_dir({"STATE_DIRECTORY": "/var/lib/agent-exporter:/other"}) == "/var/lib/agent-exporter"
    expected = "/var/lib/agent-exporter" if os.geteuid() == 0 else "/home/u/.state/agent-exporter"
    assert default_state_dir({"XDG_STATE_HOME": "/home/u/.state"}) == expected
