"""deploy/alertmanager/: amtool accepts the configuration, every shipped alert is routed by its
severity, secrets come from files only, and the placeholders for them exist."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from deploy_fixtures import ALERTMANAGER_YML, SECRETS_IN_CONTAINER, alert_rules, load_yaml
from procs import need

SECRETS_DIR = ALERTMANAGER_YML.parent / "secrets"
RECEIVER_FOR = {"critical": "oncall-critical", "warning": "team-slack", None: "team-email"}


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([need("amtool"), *args], capture_output=True, text=True, timeout=60, check=False)


def route(config: Path, **labels: str) -> str:
    done = amtool("config", "routes", "test", f"--config.file={config}", *(f"{k}={v}" for k, v in labels.items()))
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_amtool_check_config_passes() -> None:
    done = amtool("check-config", str(ALERTMANAGER_YML))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
    assert "2 inhibit rules" in done.stdout and "3 receivers" in done.stdout


def test_amtool_check_config_is_a_real_check(tmp_path: Path) -> None:
    broken = tmp_path / "alertmanager.yml"
    broken.write_text(ALERTMANAGER_YML.read_text().replace("receiver: team-slack", "receiver: nobody"))
    done = amtool("check-config", str(broken))
    assert done.returncode != 0
    assert 'undefined receiver "nobody"' in done.stdout + done.stderr


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_every_alert_goes_to_the_receiver_of_its_severity(rule: dict[str, Any]) -> None:
    severity = rule["labels"]["severity"]
    got = route(ALERTMANAGER_YML, alertname=rule["alert"], severity=severity, instance="host-a:9200")
    assert got == RECEIVER_FOR[severity]


def test_an_alert_without_severity_still_reaches_someone() -> None:
    assert route(ALERTMANAGER_YML, alertname="Other", instance="host-a:9200") == RECEIVER_FOR[None]


def test_receivers_are_slack_and_email() -> None:
    receivers = {r["name"]: r for r in load_yaml(ALERTMANAGER_YML)["receivers"]}
    assert set(receivers) == set(RECEIVER_FOR.values())
    assert "slack_configs" in receivers["oncall-critical"] and "email_configs" in receivers["oncall-critical"]
    assert "slack_configs" in receivers["team-slack"]
    assert "email_configs" in receivers["team-email"]
    for r in receivers.values():
        for kind in ("slack_configs", "email_configs"):
            for c in r.get(kind, []):
                assert c["send_resolved"] is True, r["name"]


def test_grouping_and_inhibition() -> None:
    doc = load_yaml(ALERTMANAGER_YML)
    assert doc["route"]["group_by"] == ["alertname", "instance"]
    many, unhealthy = doc["inhibit_rules"]
    assert many == {"source_matchers": ['alertname="MultipleAgentsDown"'],
                    "target_matchers": ['alertname="AgentDown"'], "equal": ["instance"]}
    names = {r["alert"] for r in alert_rules()}
    assert {"MultipleAgentsDown", "AgentDown"} <= names
    # The catch-all AgentUnhealthy gives way to any per-agent alert of the same agent and host.
    assert unhealthy["target_matchers"] == ['alertname="AgentUnhealthy"']
    assert unhealthy["equal"] == ["instance", "agent"]
    (source,) = unhealthy["source_matchers"]
    prefix = 'alertname=~"'
    assert source.startswith(prefix) and source.endswith('"')
    sources = set(source.removeprefix(prefix).removesuffix('"').split("|"))
    # the alerts of agent_unhealthy_reason's reasons, all but "failed" (HighMemoryUsage is not one)
    assert sources == {"AgentDown", "AgentCrashLooping", "AgentOOMKilled", "AgentStartLimitHit", "AgentTimerLate",
                       "AgentProbeFailing"}
    assert sources <= names


def _walk(node: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(node, dict):
        return [kv for k, v in node.items() for kv in [(f"{path}.{k}", v), *_walk(v, f"{path}.{k}")]]
    if isinstance(node, list):
        return [kv for i, v in enumerate(node) for kv in _walk(v, f"{path}[{i}]")]
    return []


def test_secrets_are_read_from_files_only() -> None:
    doc = load_yaml(ALERTMANAGER_YML)
    keys = _walk(doc)
    inline = [p for p, _ in keys if p.rsplit(".", 1)[-1] in
              ("api_url", "slack_api_url", "auth_password", "smtp_auth_password", "auth_secret", "smtp_auth_secret")]
    assert inline == []
    files = {p: v for p, v in keys if p.endswith(("api_url_file", "auth_password_file"))}
    assert any(p.endswith("slack_configs[0].api_url_file") for p in files)
    assert any(p.endswith("email_configs[0].auth_password_file") for p in files)
    for p, value in files.items():
        assert value.startswith(SECRETS_IN_CONTAINER), p
        placeholder = SECRETS_DIR / value.removeprefix(SECRETS_IN_CONTAINER)
        assert placeholder.is_file(), f"{p}: no placeholder {placeholder}"
        assert placeholder.read_text().startswith("REPLACE-ME"), placeholder
