"""deploy/prometheus/prometheus-alerts.yml: promtool accepts it, its unit tests pass, every alert is
tested firing and not firing (and a mutated rule makes them fail), and every alert says what to do."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_fixtures import (
    ALERTS_YML,
    RULE_TESTS,
    STATE_SETS,
    alert_rules,
    known_families,
    load_yaml,
    selection,
    state_matchers,
)
from deploy_fixtures import metric_names as names_in
from procs import need

REFERENCE = {  # the reference setup's alerts: names, severities and thresholds users already know
    "AgentDown": ("agent_up == 0", "5m", "warning"),
    "HighMemoryUsage": ("agent_memory_kb * 1024 > 1073741824", "10m", "warning"),  # 1048576 KiB, in bytes
    "MultipleAgentsDown": ("(agents_total - agents_running_total) > 5", "5m", "critical"),
}
EXPECTED = {*REFERENCE, "AgentCrashLooping", "NoAgentsDiscovered", "AgentExporterTargetDown",
            "AgentExporterTextfileStale", "AgentExporterServedFileStale", "AgentExporterServedFileFromFuture",
            "AgentExporterCollectErrors",
            "NodeTextfileScrapeError", "HostMemoryNearlyFull", "HostDiskNearlyFull",
            "AgentUnhealthy", "AgentOOMKilled", "AgentStartLimitHit", "AgentTimerLate", "AgentProbeFailing"}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([need("promtool"), *args], capture_output=True, text=True, timeout=120, check=False)


def test_promtool_check_rules_passes() -> None:
    done = promtool("check", "rules", str(ALERTS_YML))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(EXPECTED)} rules found" in done.stdout


def test_promtool_unit_tests_pass() -> None:
    assert len(RULE_TESTS) >= 3
    done = promtool("test", "rules", *map(str, RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") == len(RULE_TESTS), done.stdout


def test_the_alerts_are_the_expected_ones() -> None:
    rules = {r["alert"]: r for r in alert_rules()}
    assert set(rules) == EXPECTED
    for name, (expr, for_, severity) in REFERENCE.items():
        assert (rules[name]["expr"], rules[name]["for"], rules[name]["labels"]["severity"]) == (expr, for_, severity)


def test_crash_loop_alert_uses_the_restart_counter() -> None:
    (rule,) = [r for r in alert_rules() if r["alert"] == "AgentCrashLooping"]
    assert "agent_restart_count[" in rule["expr"]
    assert rule["expr"].split("(", 1)[0] in ("increase", "changes")


def test_stale_alerts_cover_both_paths() -> None:
    exprs = {r["alert"]: r["expr"] for r in alert_rules()}
    assert "node_textfile_mtime_seconds" in exprs["AgentExporterTextfileStale"]
    assert "agent_exporter_textfile_age_seconds" in exprs["AgentExporterServedFileStale"]


def test_every_alert_has_severity_and_says_what_to_do() -> None:
    for rule in alert_rules():
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        annotations = rule["annotations"]
        assert set(annotations) >= {"summary", "description"}, rule["alert"]
        assert "{{ $labels.instance }}" in annotations["summary"] + annotations["description"], rule["alert"]
        # a runbook: at least one command to run, in backquotes
        assert annotations["description"].count("`") >= 2, rule["alert"]


def test_health_alerts_use_the_writers_diagnostics() -> None:
    rules = {r["alert"]: r for r in alert_rules()}
    # On the verdict, so that a reason that changes does not restart `for`; the reason is in the text.
    assert names_in(rules["AgentUnhealthy"]["expr"]) == {"agent_healthy"}
    description = rules["AgentUnhealthy"]["annotations"]["description"]
    assert "agent_unhealthy_reason{" in description and ".Labels.reason" in description
    assert rules["AgentOOMKilled"]["expr"].startswith("increase(agent_oom_kills_total[")
    assert state_matchers(rules["AgentStartLimitHit"]["expr"]) == [("result", "start-limit-hit")]
    assert state_matchers(rules["AgentTimerLate"]["expr"]) == [("reason", "timer-late")]
    assert names_in(rules["AgentProbeFailing"]["expr"]) == {"agent_probe_success"}


def test_every_metric_the_rules_use_exists() -> None:
    known = known_families()
    for rule in alert_rules():
        queries = re.findall(r'printf "([^"]*)"', " ".join(rule["annotations"].values()))  # the templates' queries
        used = names_in(" ".join([rule["expr"], *queries]))
        assert used - known == set(), (rule["alert"], used - known)


def test_every_state_the_rules_name_is_one_the_writer_reports() -> None:
    for rule in alert_rules():
        for label, value in state_matchers(rule["expr"] + " ".join(rule["annotations"].values())):
            assert value in STATE_SETS[label], (rule["alert"], label, value)
    for path in RULE_TESTS:
        for test in load_yaml(path)["tests"]:
            for series in test.get("input_series", []):
                for label, value in state_matchers(series["series"]):
                    assert value in STATE_SETS[label], (path.name, series["series"])


def test_nothing_sums_across_instances() -> None:
    # "Per instance": no aggregation that drops the instance label.
    for rule in alert_rules():
        expr = rule["expr"]
        for agg in ("sum(", "sum by", "count(", "avg(", "max(", "min("):
            assert agg not in expr, (rule["alert"], expr)


def _tested(kind: str) -> set[str]:
    """Alert names with an alert_rule_test expecting them to fire ("firing") or not ("quiet")."""
    out = set()
    for path in RULE_TESTS:
        for test in load_yaml(path)["tests"]:
            for case in test.get("alert_rule_test", []):
                if bool(case.get("exp_alerts")) == (kind == "firing"):
                    out.add(case["alertname"])
    return out


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    names = {r["alert"] for r in alert_rules()}
    assert names - _tested("firing") == set()
    assert names - _tested("quiet") == set()


def _mutated_rules(tmp_path: Path, alert: str, expr: str) -> list[Path]:
    doc: dict[str, Any] = load_yaml(ALERTS_YML)
    for group in doc["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == alert:
                rule["expr"] = expr
    (tmp_path / "prometheus-alerts.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    tests_dir = tmp_path / "tests"
    tests_dir.mkdir(exist_ok=True)
    copies = []
    for path in RULE_TESTS:
        copy = tests_dir / path.name
        copy.write_text(path.read_text())
        copies.append(copy)
    return copies


@pytest.mark.parametrize("alert", sorted(EXPECTED))
@pytest.mark.parametrize("mutation", ["never", "always"])
def test_the_unit_tests_catch_a_broken_rule(tmp_path: Path, alert: str, mutation: str) -> None:
    """A rule that never fires, or fires for everything it selects, fails the unit tests: they
    check each alert both ways, for real."""
    (rule,) = [r for r in alert_rules() if r["alert"] == alert]
    # "always": the expression without its threshold (and without a reason= or result= matcher,
    # which is the threshold of a family that is always 1), so every selected series alerts
    expr = "vector(1) == 0" if mutation == "never" else f"({selection(rule['expr'])}) >= -Inf"
    copies = _mutated_rules(tmp_path, alert, expr)
    done = promtool("test", "rules", *map(str, copies))
    out = done.stdout + done.stderr
    assert done.returncode != 0, f"{alert} mutated to {expr!r} still passes:\n{out}"
    assert f"alertname: {alert}," in out, out
