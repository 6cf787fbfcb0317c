"""config.py: YAML text in, a validated Config or a ConfigError naming file, line and key."""

from __future__ import annotations

import pytest

from textfile_writer.config import (
    DEFAULT_PATTERN,
    AgentSpec,
    Config,
    Probe,
    builtin_config,
    parse_config,
)
from textfile_writer.errors import ConfigError
from textfile_writer.infolabels import RESERVED

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


# ---------------------------------------------------------------------------------------------
# expect, labels and probe (issue 12)

EXTRAS = """\
agents:
  - unit: agent-pay
    expect: running
    labels: {tier: 1, team: payments, on_call: yes, ratio: 1.50, since: 2024-01-31, owner: "Ann \\"A\\" B"}
    probe: {url: "http://127.0.0.1:8080/health?deep=1", timeout: 500ms, expect_status: 204}
  - unit: agent-batch
    expect: oneshot
  - pattern: "agent-*"
    expect: timer
    labels:
      team: ops
    probe:
      url: http://localhost/
"""


def test_expect_labels_and_probe_are_parsed() -> None:
    pay, batch, pattern = parse_config(EXTRAS, "c.yml", scope="user").agents
    assert pay == AgentSpec(
        type="primary", unit="agent-pay.service", expect="running",
        labels=(("on_call", "yes"), ("owner", 'Ann "A" B'), ("ratio", "1.50"), ("since", "2024-01-31"),
                ("team", "payments"), ("tier", "1")),
        probe=Probe(url="http://127.0.0.1:8080/health?deep=1", host="127.0.0.1:8080", address="127.0.0.1",
                    port=8080, path="/health?deep=1", timeout_seconds=0.5, expect_status=204))
    assert batch == AgentSpec(type="primary", unit="agent-batch.service", expect="oneshot")
    assert pattern == AgentSpec(
        type="primary", pattern="agent-*.service", expect="timer", labels=(("team", "ops"),),
        probe=Probe(url="http://localhost/", host="localhost", address="127.0.0.1", port=80, path="/",
                    timeout_seconds=2.0, expect_status=200))


def test_new_fields_round_trip_through_the_cache_form() -> None:
    cfg = parse_config(EXTRAS, "c.yml", scope="user")
    assert Config.from_dict(cfg.to_dict()) == cfg
    assert isinstance(Config.from_dict(cfg.to_dict()).agents[0].probe, Probe)
    import marshal

    assert Config.from_dict(marshal.loads(marshal.dumps(cfg.to_dict()))) == cfg
    assert cfg.probes == (cfg.agents[0].probe, cfg.agents[2].probe)


def test_a_config_without_the_new_keys_caches_as_before() -> None:
    """The cache form keeps only the keys an entry has: the same dict as before the keys existed."""
    assert parse_config(FULL, "fleet.yml").to_dict()["agents"] == [
        {"unit": "agent-core_dev.service", "type": "primary", "name": "core"},
        {"unit": "agent-helper.service", "type": "primary"},
        {"pattern": "agent-*.service", "type": "support"},
    ]
    assert builtin_config("user").probes == ()


@pytest.mark.parametrize(("timeout", "seconds"), [("2s", 2.0), ("500ms", 0.5), ("1.5s", 1.5), ("30", 30.0),
                                                  ("0.25", 0.25), ("'3'", 3.0), ("10ms", 0.01)])
def test_probe_timeouts(timeout: str, seconds: float) -> None:
    cfg = parse_config(f"agents:\n  - unit: a\n    probe: {{url: 'http://127.0.0.1/', timeout: {timeout}}}\n",
                       "c.yml", scope="user")
    assert cfg.agents[0].probe is not None and cfg.agents[0].probe.timeout_seconds == seconds


@pytest.mark.parametrize(("url", "host", "address", "port", "path"), [
    ("http://127.0.0.1", "127.0.0.1", "127.0.0.1", 80, "/"),
    ("http://127.0.0.1:9/x/y", "127.0.0.1:9", "127.0.0.1", 9, "/x/y"),
    ("http://127.0.0.1:8080?q=1", "127.0.0.1:8080", "127.0.0.1", 8080, "/?q=1"),
    ("HTTP://LocalHost:8080/h", "LocalHost:8080", "127.0.0.1", 8080, "/h"),
    ("http://[::1]:8080/h", "[::1]:8080", "::1", 8080, "/h"),
    ("http://[0:0:0:0:0:0:0:1]/", "[0:0:0:0:0:0:0:1]", "::1", 80, "/"),
    ("http://10.1.2.3:65535/a%20b;c=d", "10.1.2.3:65535", "10.1.2.3", 65535, "/a%20b;c=d"),
])
def test_probe_urls(url: str, host: str, address: str, port: int, path: str) -> None:
    probe = parse_config(f"agents:\n  - unit: a\n    probe: {{url: '{url}'}}\n", "c.yml", scope="user").agents[0].probe
    assert probe is not None and (probe.url, probe.host, probe.address, probe.port, probe.path) == (
        url, host, address, port, path)


def test_sixteen_labels_are_allowed() -> None:
    labels = ", ".join(f"l{i:02d}: v" for i in range(16))
    cfg = parse_config(f"agents:\n  - unit: a\n    labels: {{{labels}}}\n", "c.yml", scope="user")
    assert [name for name, _ in cfg.agents[0].labels] == [f"l{i:02d}" for i in range(16)]


def _entry(extra: str) -> str:
    return "agents:\n  - unit: a\n" + "".join(f"    {line}\n" for line in extra.splitlines())


@pytest.mark.parametrize(("extra", "expected"), [
    # expect
    ("expect: sometimes", "c.yml:3: agents[0].expect: must be one of running, oneshot, timer, stopped, got "
                          "'sometimes'"),
    ("expect: [running]", "c.yml:3: agents[0].expect: must be a single value"),
    ("expect: 1", "c.yml:3: agents[0].expect: must be a non-empty string, got 1"),
    # labels
    ("labels: team", "c.yml:3: agents[0].labels: must be a mapping"),
    ("labels: {team: [a, b]}", "c.yml:3: agents[0].labels.team: must be a single value"),
    ("labels: {team: {a: b}}", "c.yml:3: agents[0].labels.team: must be a single value"),
    ("labels: {team: null}", "c.yml:3: agents[0].labels.team: must be a string or a number, got null"),
    ("labels: {team: }", "c.yml:3: agents[0].labels.team: must be a string or a number, got null"),
    ("labels: {team: ''}", "c.yml:3: agents[0].labels.team: is empty"),
    ("labels: {team: !!binary aGk=}", "c.yml:3: agents[0].labels.team: must be a string or a number, got binary"),
    ('labels: {team: "a\\0b"}', "c.yml:3: agents[0].labels.team: holds a NUL character"),
    ('labels: {team: "\\ud800"}', "c.yml:3: agents[0].labels.team: is not valid UTF-8"),
    (f"labels: {{team: {'x' * 1025}}}", "c.yml:3: agents[0].labels.team: is longer than 1024 characters"),
    ("labels: {1team: x}", "c.yml:3: agents[0].labels: label name '1team' is not a Prometheus label name"),
    ("labels: {team-name: x}", "c.yml:3: agents[0].labels: label name 'team-name' is not a Prometheus label name"),
    ("labels: {tëam: x}", "c.yml:3: agents[0].labels: label name 'tëam' is not a Prometheus label name"),
    ("labels: {'': x}", "c.yml:3: agents[0].labels: label name '' is not a Prometheus label name"),
    ("labels: {__name__: x}", "c.yml:3: agents[0].labels: label name '__name__' starts with __"),
    ("labels: {agent: x}", "c.yml:3: agents[0].labels: label name 'agent' is one the exporter or Prometheus sets"),
    ("labels: {le: x}", "c.yml:3: agents[0].labels: label name 'le' is one the exporter or Prometheus sets"),
    (f"labels: {{{'a' * 129}: x}}", "c.yml:3: agents[0].labels: label name 'aaaa"),
    ("labels: {team: a, team: b}", "c.yml:3: agents[0].labels.team: is given twice"),
    ("labels: {" + ", ".join(f"l{i}: v" for i in range(17)) + "}",
     "c.yml:3: agents[0].labels: has 17 labels; at most 16 are allowed"),
    ("labels:\n  team: a\n  7: b", "c.yml:5: agents[0].labels: label name '7' is not a Prometheus label name"),
    # probe
    ("probe: http://127.0.0.1/", "c.yml:3: agents[0].probe: must be a mapping"),
    ("probe: {timeout: 2s}", "c.yml:3: agents[0].probe: needs a url"),
    ("probe: {url: http://127.0.0.1/, tiemout: 2s}", "c.yml:3: agents[0].probe.tiemout: unknown key (expected one "
                                                    "of: url, timeout, expect_status)"),
    ("probe: {url: ''}", "c.yml:3: agents[0].probe.url: must be a non-empty string"),
    ("probe: {url: 'https://127.0.0.1/'}", "c.yml:3: agents[0].probe.url: must start with http:// (probes speak "
                                           "plain HTTP"),
    ("probe: {url: 'ftp://127.0.0.1/'}", "c.yml:3: agents[0].probe.url: must start with http://"),
    ("probe: {url: '127.0.0.1:80/'}", "c.yml:3: agents[0].probe.url: must start with http://"),
    ("probe: {url: 'http://example.com/'}", "c.yml:3: agents[0].probe.url: the host must be an IP address or "
                                            "localhost (the writer resolves no names), got 'example.com'"),
    ("probe: {url: 'http://user:pw@127.0.0.1/'}", "c.yml:3: agents[0].probe.url: must not hold user:password@"),
    ("probe: {url: 'http://127.0.0.1/a b'}", "c.yml:3: agents[0].probe.url: must not hold spaces"),
    ('probe: {url: "http://127.0.0.1/\\r\\nX: y"}', "c.yml:3: agents[0].probe.url: must not hold spaces, control"),
    ("probe: {url: 'http://127.0.0.1/é'}", "c.yml:3: agents[0].probe.url: must not hold spaces, control or "
                                           "non-ASCII"),
    ("probe: {url: 'http://127.0.0.1/a#b'}", "c.yml:3: agents[0].probe.url: must not have a #fragment"),
    ("probe: {url: 'http://127.0.0.1/a\"b'}", "c.yml:3: agents[0].probe.url: has characters in its path"),
    ("probe: {url: 'http://127.0.0.1:0/'}", "c.yml:3: agents[0].probe.url: the port must be a number from 1"),
    ("probe: {url: 'http://127.0.0.1:65536/'}", "c.yml:3: agents[0].probe.url: the port must be a number from 1"),
    ("probe: {url: 'http://127.0.0.1:/'}", "c.yml:3: agents[0].probe.url: the port must be a number from 1"),
    ("probe: {url: 'http://127.0.0.1:\uff18\uff10/'}", "c.yml:3: agents[0].probe.url: must not hold spaces"),
    ("probe: {url: 'http://127.0.0.1:+80/'}", "c.yml:3: agents[0].probe.url: the port must be a number from 1"),
    ("probe: {url: 'http://:80/'}", "c.yml:3: agents[0].probe.url: has no host"),
    ("probe: {url: 'http://::1/'}", "c.yml:3: agents[0].probe.url: write an IPv6 address in brackets"),
    ("probe: {url: 'http://[::1/'}", "c.yml:3: agents[0].probe.url: has a '[' without its ']'"),
    ("probe: {url: 'http://[127.0.0.1]/'}", "c.yml:3: agents[0].probe.url: only an IPv6 address goes in brackets"),
    ("probe: {url: 'http://[fe80::1%25eth0]/'}", "c.yml:3: agents[0].probe.url: an IPv6 zone"),
    ("probe: {url: 'http://0.0.0.0/'}", "c.yml:3: agents[0].probe.url: 0.0.0.0 is not an address an agent can"),
    ("probe: {url: 'http://224.0.0.1/'}", "c.yml:3: agents[0].probe.url: 224.0.0.1 is not an address"),
    ("probe: {url: 'http://127.000.0.1/'}", "c.yml:3: agents[0].probe.url: the host must be an IP address"),
    ("probe: {url: 'http://127.0.0.1/" + "a" * 2048 + "'}", "c.yml:3: agents[0].probe.url: is longer than 2048"),
    ("probe: {url: 'http://127.0.0.1/', timeout: 0}", "c.yml:3: agents[0].probe.timeout: must be a duration above 0"),
    ("probe: {url: 'http://127.0.0.1/', timeout: 31s}", "c.yml:3: agents[0].probe.timeout: must be a duration above"
                                                       " 0 and at most 30s, like 2s, 500ms or a number of seconds, "
                                                       "got '31s'"),
    ("probe: {url: 'http://127.0.0.1/', timeout: 2m}", "c.yml:3: agents[0].probe.timeout: must be a duration"),
    ("probe: {url: 'http://127.0.0.1/', timeout: -1}", "c.yml:3: agents[0].probe.timeout: must be a duration"),
    ("probe: {url: 'http://127.0.0.1/', timeout: .inf}", "c.yml:3: agents[0].probe.timeout: must be a duration"),
    ("probe: {url: 'http://127.0.0.1/', timeout: nan}", "c.yml:3: agents[0].probe.timeout: must be a duration"),
    ("probe: {url: 'http://127.0.0.1/', timeout: 1e1s}", "c.yml:3: agents[0].probe.timeout: must be a duration"),
    ("probe: {url: 'http://127.0.0.1/', timeout: true}", "c.yml:3: agents[0].probe.timeout: must be a duration"),
    ("probe: {url: 'http://127.0.0.1/', timeout: s}", "c.yml:3: agents[0].probe.timeout: must be a duration"),
    ("probe: {url: 'http://127.0.0.1/', timeout: .s}", "c.yml:3: agents[0].probe.timeout: must be a duration"),
    ("probe: {url: 'http://127.0.0.1/', expect_status: 99}", "c.yml:3: agents[0].probe.expect_status: must be an "
                                                             "HTTP status code from 100 to 599, got 99"),
    ("probe: {url: 'http://127.0.0.1/', expect_status: 600}", "c.yml:3: agents[0].probe.expect_status: must be an"),
    ("probe: {url: 'http://127.0.0.1/', expect_status: '200'}", "c.yml:3: agents[0].probe.expect_status: must be"),
    ("probe: {url: 'http://127.0.0.1/', expect_status: 200.0}", "c.yml:3: agents[0].probe.expect_status: must be"),
    ("probe: {url: 'http://127.0.0.1/', expect_status: true}", "c.yml:3: agents[0].probe.expect_status: must be"),
    ("probe:\n  url: http://127.0.0.1/\n  expect_status: 700", "c.yml:5: agents[0].probe.expect_status: must be"),
])
def test_expect_labels_and_probe_errors(extra: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_entry(extra), "c.yml", scope="user")
    message = str(info.value)
    assert message.startswith(expected), message
    assert "\n" not in message and len(message) < 1000


def test_the_new_keys_on_a_pattern_entry_are_checked_too() -> None:
    with pytest.raises(ConfigError, match=r"^c.yml:3: agents\[0\].labels: label name 'unit' is one"):
        parse_config("agents:\n  - pattern: 'agent-*'\n    labels: {unit: x}\n", "c.yml", scope="user")


def test_every_label_the_exporter_sets_is_reserved() -> None:
    assert {"agent", "type", "unit", "scope", "state", "result", "reason", "expected", "timer", "user", "le",
            "quantile"} <= RESERVED
