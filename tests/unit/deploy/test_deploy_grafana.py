"""deploy/grafana/: the dashboard's structure (uid, import input, panels, variables, layout), its
queries (valid PromQL, only metrics that exist) and the provisioning files that load it.

Grafana itself is not available here; the queries are run against a real Prometheus by
tests/integration/test_deploy_e2e.py."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_fixtures import (
    DASHBOARD_JSON,
    GRAFANA_PROVISIONING,
    STATE_SETS,
    dashboard,
    interpolate,
    known_families,
    load_yaml,
    panel_targets,
    state_matchers,
)
from deploy_fixtures import metric_names as names_in
from procs import need

from devtools.harness import DIAGNOSTICS

DS_REF = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
BUILTINS = {"__rate_interval": "1m", "__interval": "15s", "__range": "6h"}
# The reference setup's seven panels, and those the product adds: title -> panel type(s).
REQUIRED = {
    "Running agents": {"stat"},
    "Stopped agents": {"stat"},
    "System memory usage": {"stat"},
    "System load (1m)": {"stat"},
    "Agent status over time": {"timeseries", "state-timeline"},
    "Agent memory usage": {"timeseries"},
    "Agent details": {"table"},
    "Restarts": {"timeseries", "barchart"},
    "CPU per agent": {"timeseries"},
    "Agent health": {"table"},
    "Memory against limit": {"timeseries"},
    "Starts": {"timeseries", "barchart"},
    "OOM kills": {"timeseries", "barchart"},
}


@pytest.fixture(scope="module")
def dash() -> dict[str, Any]:
    return dashboard()


def panels(dash: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["title"]: p for p in dash["panels"]}


def test_identity_time_and_import_input(dash: dict[str, Any]) -> None:
    assert dash["uid"] == "agent-monitoring"
    assert dash["id"] is None  # an id would clash with whatever the target Grafana has
    assert dash["time"] == {"from": "now-6h", "to": "now"}
    assert dash["__inputs"] == [{"name": "DS_PROMETHEUS", "label": "Prometheus",
                                 "description": "The Prometheus that scrapes agent-exporter",
                                 "type": "datasource", "pluginId": "prometheus", "pluginName": "Prometheus"}]
    required = {(r["type"], r["id"]) for r in dash["__requires"]}
    used = {("panel", p["type"]) for p in dash["panels"]}
    assert used | {("datasource", "prometheus"), ("grafana", "grafana")} == required
    assert isinstance(dash["schemaVersion"], int) and dash["schemaVersion"] >= 36


def test_every_reference_panel_and_the_additions(dash: dict[str, Any]) -> None:
    by_title = panels(dash)
    for title, kinds in REQUIRED.items():
        assert title in by_title, f"missing panel {title!r}"
        assert by_title[title]["type"] in kinds, title


def test_details_table_has_status_cpu_memory_uptime_restarts(dash: dict[str, Any]) -> None:
    table = panels(dash)["Agent details"]
    exprs = {t["refId"]: t["expr"] for t in table["targets"]}
    for metric in ("agent_up", "agent_cpu_percent", "agent_memory_kb", "agent_uptime_seconds", "agent_restart_count"):
        assert any(metric in e for e in exprs.values()), metric
    assert all(t["instant"] and t["format"] == "table" for t in table["targets"])
    organize = next(t for t in table["transformations"] if t["id"] == "organize")["options"]
    renamed = organize["renameByName"]
    assert {renamed[f"Value #{ref}"] for ref in exprs} == {"Status", "CPU", "Memory", "Uptime", "Restarts"}
    overridden = {o["matcher"]["options"] for o in table["fieldConfig"]["overrides"]}
    assert overridden == {"Status", "CPU", "Memory", "Uptime", "Restarts"}


def test_memory_panel_is_stacked_bytes(dash: dict[str, Any]) -> None:
    memory = panels(dash)["Agent memory usage"]
    assert memory["fieldConfig"]["defaults"]["custom"]["stacking"]["mode"] == "normal"
    assert memory["fieldConfig"]["defaults"]["unit"] == "bytes"
    assert all("* 1024" in t["expr"] for t in memory["targets"])  # KiB -> bytes


def test_health_table_has_the_reason_and_the_info_join(dash: dict[str, Any]) -> None:
    table = panels(dash)["Agent health"]
    exprs = {t["refId"]: t["expr"] for t in table["targets"]}
    assert all(t["instant"] and t["format"] == "table" for t in table["targets"])
    (healthy,) = [ref for ref, e in exprs.items() if e.startswith("agent_healthy{")]
    (reason,) = [ref for ref, e in exprs.items() if e.startswith("agent_unhealthy_reason{")]
    # config labels are on agent_info only: the info-metric join, one-to-one per host and agent
    assert "* on(instance, job, agent) group_left(team) agent_info{" in exprs[healthy]
    organize = next(t for t in table["transformations"] if t["id"] == "organize")["options"]
    assert organize["renameByName"][f"Value #{healthy}"] == "Health"
    assert organize["renameByName"]["reason"] == "Reason" and organize["renameByName"]["team"] == "Team"
    assert organize["excludeByName"][f"Value #{reason}"] is True  # always 1: the label is the content
    health = next(o for o in table["fieldConfig"]["overrides"] if o["matcher"]["options"] == "Health")
    (mapping,) = next(p["value"] for p in health["properties"] if p["id"] == "mappings")
    assert {k: v["text"] for k, v in mapping["options"].items()} == {"0": "Unhealthy", "1": "Healthy"}


def test_memory_against_limit_compares_bytes_with_both_limits(dash: dict[str, Any]) -> None:
    memory = panels(dash)["Memory against limit"]
    assert memory["fieldConfig"]["defaults"]["unit"] == "bytes"
    exprs = [t["expr"] for t in memory["targets"]]
    used = [e for e in exprs if e.startswith("agent_memory_kb{")]
    assert len(used) == 1 and "* 1024" in used[0]  # KiB -> bytes, like the limits
    assert {names_in(e).pop() for e in exprs if e not in used} == {"agent_memory_max_bytes",
                                                                   "agent_memory_high_bytes"}
    legends = {t["legendFormat"] for t in memory["targets"]}
    for suffix in ("MemoryMax", "MemoryHigh"):  # the dashed-line overrides match these names
        assert any(legend.endswith(f" {suffix}") for legend in legends)
        assert any(o["matcher"] == {"id": "byRegexp", "options": f"/ {suffix}$/"}
                   for o in memory["fieldConfig"]["overrides"])


def test_starts_and_oom_kills_are_increases_of_the_counters(dash: dict[str, Any]) -> None:
    by_title = panels(dash)
    for title, counter in (("Starts", "agent_starts_total"), ("OOM kills", "agent_oom_kills_total")):
        (target,) = by_title[title]["targets"]
        assert target["expr"].startswith(f"increase({counter}{{") and "[$__rate_interval])" in target["expr"]


def test_every_query_uses_the_input_datasource(dash: dict[str, Any]) -> None:
    for panel in dash["panels"]:
        assert panel["datasource"] == DS_REF, panel["title"]
        for t in panel["targets"]:
            assert t["datasource"] == DS_REF, (panel["title"], t["refId"])
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            assert var["datasource"] == DS_REF, var["name"]


def test_datasource_variable_lets_provisioning_resolve_the_input(dash: dict[str, Any]) -> None:
    """Provisioned dashboards get no import step, so ${DS_PROMETHEUS} must also be a variable."""
    (ds,) = [v for v in dash["templating"]["list"] if v["type"] == "datasource"]
    assert (ds["name"], ds["query"]) == ("DS_PROMETHEUS", "prometheus")


def test_template_variables_chain_instance_type_agent(dash: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in dash["templating"]["list"] if v["type"] == "query"}
    assert list(variables) == ["instance", "type", "agent"]
    assert variables["instance"]["query"] == "label_values(agents_total, instance)"
    assert variables["type"]["query"] == 'label_values(agent_up{instance=~"$instance"}, type)'
    assert variables["agent"]["query"] == 'label_values(agent_up{instance=~"$instance", type=~"$type"}, agent)'
    for v in variables.values():
        assert v["multi"] and v["includeAll"] and v["allValue"] == ".*", v["name"]
        assert v["definition"] == v["query"]
        assert v["refresh"] in (1, 2)


def test_every_agent_query_honours_the_variables(dash: dict[str, Any]) -> None:
    per_agent = {"agent_up", "agent_memory_kb", "agent_cpu_percent", "agent_uptime_seconds", "agent_restart_count",
                 "agent_info", *DIAGNOSTICS}
    for panel, t in panel_targets(dash):
        expr = t["expr"]
        assert 'instance=~"$instance"' in expr, (panel["title"], expr)
        if names_in(expr) & per_agent:
            assert 'type=~"$type"' in expr and 'agent=~"$agent"' in expr, (panel["title"], expr)


def test_every_metric_the_queries_use_exists(dash: dict[str, Any]) -> None:
    known = known_families()
    for panel, t in panel_targets(dash):
        used = names_in(t["expr"])
        assert used, (panel["title"], t["expr"])
        assert used - known == set(), (panel["title"], used - known)
        for label, value in state_matchers(t["expr"]):
            assert value in STATE_SETS[label], (panel["title"], t["expr"])
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            assert names_in(var["query"]) - known == set(), var["name"]


def test_every_query_is_valid_promql(tmp_path: Path, dash: dict[str, Any]) -> None:
    """Interpolated as Grafana would, each query must parse: promtool checks it as a recording rule."""
    variables = {"instance": None, "type": ["primary", "support"], "agent": ["agent-core_dev"]}
    rules = [{"record": f"panel_{p['id']}_{t['refId']}", "expr": interpolate(t["expr"], variables, BUILTINS)}
             for p, t in panel_targets(dash)]
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = subprocess.run([need("promtool"), "check", "rules", str(path)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    # ... and the check is real: a broken query fails it
    path.write_text(yaml.safe_dump({"groups": [{"name": "d", "rules": [{"record": "x", "expr": "sum(agent_up"}]}]}))
    done = subprocess.run([need("promtool"), "check", "rules", str(path)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode != 0


def test_layout_ids_and_references(dash: dict[str, Any]) -> None:
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for p in dash["panels"]:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, f"{p['title']} overlaps another panel"
        cells |= mine
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
        assert p.get("description"), p["title"]
    text = DASHBOARD_JSON.read_text()
    # every $variable the dashboard uses is defined (or Grafana's own)
    defined = {v["name"] for v in dash["templating"]["list"]} | set(BUILTINS)
    used = set(re.findall(r"\$\{?(\w+)", text)) - {"labels", "value", "__all"}
    assert used <= defined, used - defined


def test_provisioning_loads_the_dashboard_without_clicks() -> None:
    (ds_file,) = (GRAFANA_PROVISIONING / "datasources").glob("*.yml")
    ds_doc = load_yaml(ds_file)
    assert ds_doc["apiVersion"] == 1
    (ds,) = ds_doc["datasources"]
    assert ds["type"] == "prometheus" and ds["isDefault"] is True
    assert ds["url"] == "http://127.0.0.1:9090"
    assert ds["jsonData"]["timeInterval"] == "10s"  # the agent-monitoring job's scrape interval

    (dash_file,) = (GRAFANA_PROVISIONING / "dashboards").glob("*.yml")
    doc = load_yaml(dash_file)
    assert doc["apiVersion"] == 1
    (provider,) = doc["providers"]
    assert provider["type"] == "file"
    # docker-compose.yml mounts deploy/grafana/dashboards exactly there
    compose = load_yaml(DASHBOARD_JSON.parents[2] / "docker-compose.yml")
    mounts = dict(v.split(":")[:2][::-1] for v in compose["services"]["grafana"]["volumes"] if v.startswith("./"))
    assert mounts[provider["options"]["path"]] == "./grafana/dashboards"
    assert (DASHBOARD_JSON.parents[2] / mounts[provider["options"]["path"]] / DASHBOARD_JSON.name).is_file()
