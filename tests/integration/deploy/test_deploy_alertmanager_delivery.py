"""The shipped Alertmanager configuration in a real Alertmanager: alerts are routed by severity to
Slack and e-mail, the webhook URLs and the SMTP password are read from their files, AgentDown is
inhibited by MultipleAgentsDown on the same instance only, AgentUnhealthy by a per-agent alert of
the same agent and instance only, and resolved alerts are sent too.

The notifications arrive at a local Slack webhook and a local SMTP server (deploy_fixtures); the
copy of the configuration changes only the secret files' place, the SMTP server's address and the
group waits."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from deploy_fixtures import ALERTMANAGER_BIN, AlertmanagerServer, SlackSink, SmtpSink, alertmanager_for_test
from procs import Processes, need, wait_until

pytestmark = pytest.mark.integration


def alert(name: str, severity: str, instance: str, ends_in: float = 300, **labels: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "labels": {"alertname": name, "severity": severity, "instance": instance, "job": "agent-monitoring",
                   **labels},
        "annotations": {"summary": f"{name} on {instance} {labels.get('agent', '')}".strip(),
                        "description": "test alert"},
        "startsAt": (now - timedelta(minutes=6)).isoformat(),
        "endsAt": (now + timedelta(seconds=ends_in)).isoformat(),
        "generatorURL": "http://127.0.0.1/graph",
    }


def slack_messages(slack: SlackSink, path: str) -> list[str]:
    """title + text of every Slack message posted to that webhook path."""
    out = []
    for item in slack.received.snapshot():
        if item["path"] == path:
            for attachment in item["body"]["attachments"]:
                out.append(f"{attachment['title']}\n{attachment['text']}")
    return out


def test_routing_inhibition_and_secret_files(tmp_path: Path, procs: Processes) -> None:
    binary = need(ALERTMANAGER_BIN)
    with SlackSink() as slack, SmtpSink() as smtp:
        files = alertmanager_for_test(tmp_path, slack.url, smtp.address, smtp_password="pw-from-the-file")
        am = AlertmanagerServer(procs, binary, files.config, tmp_path / "am-data").wait_ready()

        down_a = alert("AgentDown", "warning", "host-a:9200", agent="agent-x", type="primary")
        down_b = alert("AgentDown", "warning", "host-b:9200", agent="agent-y", type="primary")
        many_a = alert("MultipleAgentsDown", "critical", "host-a:9200")

        def by_instance(name: str) -> dict[str, dict[str, Any]]:
            return {a["labels"]["instance"]: a for a in am.alerts() if a["labels"]["alertname"] == name}

        # Alertmanager decides inhibition when it flushes a group (group_wait, 1 s here, 30 s shipped),
        # from the inhibiting alerts it holds by then. Prometheus sends MultipleAgentsDown and the
        # AgentDowns at once and the 30 s wait covers the race; with 1 s the source goes first.
        am.post([many_a])
        wait_until(lambda: "host-a:9200" in by_instance("MultipleAgentsDown"), 20, "MultipleAgentsDown held",
                   step=0.1)
        time.sleep(0.5)
        am.post([down_a, down_b])

        def settled() -> bool:
            down = by_instance("AgentDown")
            return (down.get("host-a:9200", {}).get("status", {}).get("state") == "suppressed"
                    and down.get("host-b:9200", {}).get("status", {}).get("state") == "active")

        wait_until(settled, 20, "AgentDown on host-a to be inhibited and on host-b active", step=0.2)
        down = by_instance("AgentDown")
        assert down["host-a:9200"]["status"]["inhibitedBy"], down["host-a:9200"]
        assert down["host-b:9200"]["status"]["inhibitedBy"] == []
        assert [r["name"] for r in down["host-b:9200"]["receivers"]] == ["team-slack"]
        assert [r["name"] for r in by_instance("MultipleAgentsDown")["host-a:9200"]["receivers"]] == ["oncall-critical"]

        # Warning: the team's Slack webhook (URL read from its file), for host-b only.
        team = "/slack-team-webhook-url"
        wait_until(lambda: slack_messages(slack, team), 20, "the warning in the team's Slack")
        # Critical: on-call Slack and on-call e-mail, with the SMTP password read from its file.
        oncall = "/slack-oncall-webhook-url"
        wait_until(lambda: slack_messages(slack, oncall), 20, "the critical alert in on-call Slack")
        wait_until(lambda: smtp.received.snapshot(), 20, "the critical alert by e-mail")

        (message,) = slack_messages(slack, oncall)
        assert message.startswith("[FIRING:1] MultipleAgentsDown on host-a:9200"), message
        mails = smtp.received.snapshot()
        assert all(m["auth"] == ("alertmanager@example.com", "pw-from-the-file") for m in mails)
        assert [m["to"] for m in mails] == [["<oncall@example.com>"]]
        assert "Subject: [FIRING] MultipleAgentsDown on host-a:9200 (1 firing)" in mails[0]["data"]

        # group_wait and group_interval are 1 s: anything about host-a's AgentDown would be here by now.
        time.sleep(3)
        messages = slack_messages(slack, team)
        assert messages and all("host-b:9200" in m and "host-a" not in m for m in messages), messages
        assert messages[0].startswith("[FIRING:1] AgentDown on host-b:9200"), messages[0]
        assert "AgentDown on host-b:9200 agent-y" in messages[0]  # the alert's summary annotation

        # Resolved: send_resolved is on, so the team hears that host-b's agent is back.
        am.post([alert("AgentDown", "warning", "host-b:9200", ends_in=-1, agent="agent-y", type="primary")])
        resolved = "[RESOLVED] AgentDown on host-b:9200"
        wait_until(lambda: any(m.startswith(resolved) for m in slack_messages(slack, team)), 20,
                   "the resolved notification")
    assert "error" not in am.log().lower(), am.log()[-3000:]


def test_a_per_agent_alert_inhibits_agent_unhealthy_of_that_agent_only(tmp_path: Path, procs: Processes) -> None:
    binary = need(ALERTMANAGER_BIN)
    with SlackSink() as slack, SmtpSink() as smtp:
        files = alertmanager_for_test(tmp_path, slack.url, smtp.address)
        am = AlertmanagerServer(procs, binary, files.config, tmp_path / "am-data").wait_ready()
        # as in the test above: the inhibiting alert first, so that it is held when the group flushes
        am.post([alert("AgentOOMKilled", "warning", "host-a:9200", agent="agent-x", type="primary")])
        wait_until(lambda: any(a["labels"]["alertname"] == "AgentOOMKilled" for a in am.alerts()), 20,
                   "AgentOOMKilled held", step=0.1)
        time.sleep(0.5)
        am.post([alert("AgentUnhealthy", "warning", "host-a:9200", agent="agent-x", type="primary"),
                 alert("AgentUnhealthy", "warning", "host-a:9200", agent="agent-y", type="primary"),
                 alert("AgentUnhealthy", "warning", "host-b:9200", agent="agent-x", type="primary")])

        def unhealthy() -> dict[tuple[str, str], str]:
            return {(a["labels"]["instance"], a["labels"]["agent"]): a["status"]["state"] for a in am.alerts()
                    if a["labels"]["alertname"] == "AgentUnhealthy"}

        expected = {("host-a:9200", "agent-x"): "suppressed", ("host-a:9200", "agent-y"): "active",
                    ("host-b:9200", "agent-x"): "active"}
        wait_until(lambda: unhealthy() == expected, 20, f"AgentUnhealthy states {expected}", step=0.2)

        # The team's Slack hears of the other two, never of agent-x on host-a.
        team = "/slack-team-webhook-url"
        wait_until(lambda: sum("AgentUnhealthy" in m for m in slack_messages(slack, team)) >= 2, 20,
                   "the two AgentUnhealthy notifications")
        time.sleep(3)  # group_interval is 1 s: a notification of the inhibited one would be here by now
        messages = [m for m in slack_messages(slack, team) if "AgentUnhealthy" in m]
        assert all("AgentUnhealthy on host-a:9200 agent-x" not in m for m in messages), messages
        assert any("AgentUnhealthy on host-a:9200 agent-y" in m for m in messages), messages
        assert any("AgentUnhealthy on host-b:9200 agent-x" in m for m in messages), messages
    assert "error" not in am.log().lower(), am.log()[-3000:]
