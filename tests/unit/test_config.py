"""config.py: YAML text in, a validated Config or a ConfigError naming file, line and key."""

from __future__ import annotations

import pytest

from textfile_writer.config import (
    DEFAULT_PATTERN,
    AgentSpec,
    Config,
    builtin_config,
    parse_config,
)
from textfile_writer.errors import ConfigError

FULL = """\
scope: user
textfile_dir: /var/lib/node-exporter/textfile
textfile_name: fleet.prom
interval_seconds: 15
disk_path: /srv
agents:
  - unit: agent-core_dev.service
    type: primary
    name: core
  - unit: agent-helper
  - pattern: "agent-*.service"
    type: support
"""


def test_full_config_is_parsed() -> None:
    cfg = parse_config(FULL, "fleet.yml")
    assert cfg == Config(
        scope="user", textfile_dir="/var/lib/node-exporter/textfile", textfile_name="fleet.prom",
        interval_seconds=15.0, disk_path="/srv", source="fleet.yml",
        agents=(
            AgentSpec(type="primary", unit="agent-core_dev.service", name="core"),
            AgentSpec(type="primary", unit="agent-helper.service"),
            AgentSpec(type="support", pattern="agent-*.service"),
        ),
    )
    assert cfg.textfile_path == "/var/lib/node-exporter/textfile/fleet.prom"


def test_builtin_default_watches_every_agent_service() -> None:
    cfg = builtin_config("system")
    assert cfg.scope == "system"
    assert cfg.agents == (AgentSpec(type="primary", pattern=DEFAULT_PATTERN),)
    assert cfg.textfile_path == "/var/lib/prometheus/node-exporter/agents.prom"
    assert cfg.interval_seconds == 10.0


def test_empty_file_means_every_default() -> None:
    cfg = parse_config("", "empty.yml", scope="user")
    assert cfg == Config(scope="user", source="empty.yml")


def test_pattern_without_suffix_gets_service() -> None:
    cfg = parse_config("agents:\n  - pattern: 'worker-*'\n", "c.yml", scope="user")
    assert cfg.agents == (AgentSpec(type="primary", pattern="worker-*.service"),)


def test_round_trip_through_cache_form() -> None:
    cfg = parse_config(FULL, "fleet.yml")
    assert Config.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("scope: user\nbogus: 1\n", "c.yml:2: bogus: unknown key"),
        ("scope: root\n", "c.yml:1: scope: must be 'user' or 'system', got 'root'"),
        ("interval_seconds: fast\n", "c.yml:1: interval_seconds: must be a number"),
        ("interval_seconds: 0\n", "c.yml:1: interval_seconds: must be a number"),
        ("interval_seconds: true\n", "c.yml:1: interval_seconds: must be a number"),
        ("textfile_dir: relative/dir\n", "c.yml:1: textfile_dir: must be an absolute path"),
        ("textfile_name: agents.txt\n", "c.yml:1: textfile_name: must end in .prom"),
        ("textfile_name: ../x.prom\n", "c.yml:1: textfile_name: must be a plain file name"),
        ("disk_path: [1, 2]\n", "c.yml:1: disk_path: must be a single value"),
        ("agents: agent-x\n", "c.yml:1: agents: must be a list"),
        ("agents:\n  - type: primary\n", "c.yml:2: agents[0]: needs exactly one of 'unit' or 'pattern'"),
        ("agents:\n  - unit: a.service\n    pattern: 'b*'\n",
         "c.yml:2: agents[0]: needs exactly one of 'unit' or 'pattern'"),
        ("agents:\n  - unit: a\n  - unit: a.service\n",
         "c.yml:3: agents[1].unit: a.service is already listed at agents[0]"),
        ("agents:\n  - unit: a\n    name: x\n  - unit: b\n    name: x\n",
         "c.yml:5: agents[1].name: agent name 'x' is already used by agents[0]"),
        ("agents:\n  - unit: 'bad name'\n", "c.yml:2: agents[0].unit: 'bad name.service' has characters"),
        ("agents:\n  - unit: agent.timer\n    type: t\n",
         "c.yml:2: agents[0].unit: 'agent.timer' is not a .service unit"),
        ("agents:\n  - pattern: 'a*'\n    name: n\n", "c.yml:3: agents[0].name: only an explicit 'unit'"),
        ("agents:\n  - unit: a\n    type: ''\n", "c.yml:3: agents[0].type: must be a non-empty string"),
        ("agents:\n  - unit: a\n    typo: x\n", "c.yml:3: agents[0].typo: unknown key"),
        ("- just\n- a list\n", "c.yml:1: must be a mapping"),
        ("scope: user\n  bad: indent\n", "c.yml:2: not valid YAML"),
        ("scope: user\nscope: system\n", "c.yml:2: scope: is given twice"),
    ],
)
def test_errors_name_file_line_and_key(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "c.yml", scope="user")
    message = str(info.value)
    assert message.startswith(expected), message
    assert "\n" not in message


def test_config_error_fields() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("agents:\n  - unit: a\n    typo: x\n", "/etc/agent-exporter.yml")
    err = info.value
    assert (err.source, err.line, err.key) == ("/etc/agent-exporter.yml", 3, "agents[0].typo")
    assert err.exit_code == 2


def test_escaped_unit_names_are_valid() -> None:
    cfg = parse_config("agents:\n  - unit: 'agent-we\\x20ird'\n", "c.yml", scope="user")
    assert cfg.agents[0].unit == "agent-we\\x20ird.service"
