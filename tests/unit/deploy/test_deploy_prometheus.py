"""deploy/prometheus/: the scrape configurations pass promtool and say what the product needs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from deploy_fixtures import PROMETHEUS_FLEET_YML, alert_rules, exported_families
from procs import need

from devtools.stack import ALERTS_YML, PROMETHEUS_DIR, PROMETHEUS_YML, load_yaml, prometheus_config, shortened_rules

CONFIGS = [PROMETHEUS_YML, PROMETHEUS_FLEET_YML]


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([need("promtool"), *args], capture_output=True, text=True, timeout=60, cwd=cwd,
                          check=False)


def jobs(path: Path) -> dict[str, dict[str, object]]:
    return {j["job_name"]: j for j in load_yaml(path)["scrape_configs"]}


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_promtool_check_config_passes(config: Path) -> None:
    done = promtool("check", "config", str(config))
    assert done.returncode == 0, done.stdout + done.stderr
    # it followed rule_files to the shipped rules
    assert f"{len(alert_rules())} rules found" in done.stdout + done.stderr, done.stdout


def test_promtool_check_config_is_a_real_check(tmp_path: Path) -> None:
    # The same check rejects a broken copy: a scrape timeout longer than the interval.
    broken = tmp_path / "prometheus.yml"
    shutil.copy(ALERTS_YML, tmp_path / ALERTS_YML.name)
    broken.write_text(PROMETHEUS_YML.read_text().replace("scrape_timeout: 5s", "scrape_timeout: 15s"))
    done = promtool("check", "config", str(broken))
    assert done.returncode != 0
    assert "scrape timeout greater than scrape interval" in done.stdout + done.stderr


def test_agent_monitoring_job_is_the_reference_one() -> None:
    job = jobs(PROMETHEUS_YML)["agent-monitoring"]
    assert job["scrape_interval"] == "10s"
    assert job["scrape_timeout"] == "5s"
    assert job["static_configs"] == [{"targets": ["127.0.0.1:9200"]}]
    assert load_yaml(PROMETHEUS_YML)["rule_files"] == ["prometheus-alerts.yml"]


def test_node_job_drops_exactly_the_writer_families() -> None:
    """The node job keeps node_exporter's own series (node_textfile_*) and drops every agent-exporter
    family, which already comes through agent-monitoring: each agent series exists once."""
    import re

    for config in CONFIGS:
        node = jobs(config)["node"]
        (relabel,) = node["metric_relabel_configs"]  # type: ignore[misc]
        assert relabel["source_labels"] == ["__name__"] and relabel["action"] == "drop"
        regex = re.compile(relabel["regex"])  # Prometheus anchors relabel regexes: fullmatch
        served = exported_families() - {"agent_exporter_textfile_age_seconds"}  # the server's, not in the file
        assert {f for f in served if not regex.fullmatch(f)} == set()
        for kept in ("node_textfile_mtime_seconds", "node_textfile_scrape_error", "node_load1",
                     "node_memory_MemAvailable_bytes", "up"):
            assert not regex.fullmatch(kept), kept


def test_fleet_variant_reads_its_targets_from_files() -> None:
    fleet = jobs(PROMETHEUS_FLEET_YML)
    plain = jobs(PROMETHEUS_YML)
    assert set(fleet) == set(plain) == {"agent-monitoring", "node"}
    for name, job in fleet.items():
        assert "static_configs" not in job
        (sd,) = job["file_sd_configs"]  # type: ignore[misc]
        (pattern,) = sd["files"]
        files = sorted(PROMETHEUS_DIR.glob(pattern))
        assert files, f"no example target file for {name}: {pattern}"
        for f in files:
            groups = load_yaml(f)
            assert all(g["targets"] for g in groups), f
        # everything but where the targets come from is the same as in prometheus.yml
        same = {k: v for k, v in job.items() if k != "file_sd_configs"}
        assert same == {k: v for k, v in plain[name].items() if k != "static_configs"}, name


def test_example_target_files_are_valid_file_sd(tmp_path: Path) -> None:
    # promtool check config reads the file_sd files a configuration names; a broken one fails it.
    shutil.copytree(PROMETHEUS_DIR, tmp_path / "p")
    broken = tmp_path / "p" / "targets" / "node" / "hosts.yml"
    broken.write_text("- targets: 127.0.0.1:9100\n")  # a string, not a list
    done = promtool("check", "config", str(tmp_path / "p" / PROMETHEUS_FLEET_YML.name))
    assert done.returncode != 0, done.stdout
    done = promtool("check", "config", str(PROMETHEUS_FLEET_YML))
    assert done.returncode == 0, done.stdout + done.stderr


def test_test_copies_pass_promtool(tmp_path: Path) -> None:
    """The copies the integration tests run (free ports, 1 s intervals, short `for`) stay valid."""
    rules = shortened_rules(tmp_path)
    config = prometheus_config(tmp_path, {"agent-monitoring": "127.0.0.1:1", "node": "127.0.0.1:2"},
                                 "127.0.0.1:3", rules)
    done = promtool("check", "config", str(config))
    assert done.returncode == 0, done.stdout + done.stderr
    fleet = prometheus_config(tmp_path, {"agent-monitoring": "127.0.0.1:1", "node": "127.0.0.1:2"},
                                None, rules, source=PROMETHEUS_FLEET_YML)
    done = promtool("check", "config", str(fleet))
    assert done.returncode == 0, done.stdout + done.stderr
