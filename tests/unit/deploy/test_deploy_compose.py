"""deploy/docker-compose.yml: docker cannot run here, so it is checked as YAML: every file it mounts
exists, and every path the mounted configurations refer to is inside a mount."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import pytest
from deploy_fixtures import (
    ALERTMANAGER_YML,
    COMPOSE_YML,
    DEPLOY,
    PROMETHEUS_FLEET_YML,
    SECRETS_IN_CONTAINER,
)

from devtools.stack import PROMETHEUS_YML, load_yaml


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE_YML)  # type: ignore[no-any-return]


def binds(service: dict[str, Any]) -> dict[str, str]:
    """container path -> host path (relative to deploy/) of the service's bind mounts."""
    out = {}
    for v in service.get("volumes", []):
        source, target, *_ = v.split(":")
        if source.startswith("./"):
            out[target] = source
    return out


def host_path(service: dict[str, Any], container_path: str) -> str | None:
    """The host file behind a container path, through the service's bind mounts."""
    p = PurePosixPath(container_path)
    for target, source in binds(service).items():
        if p == PurePosixPath(target) or PurePosixPath(target) in p.parents:
            return str(DEPLOY / source / p.relative_to(target))
    return None


def secret_files(node: Any) -> list[str]:
    """Every value of a *_file key in the configuration."""
    if isinstance(node, dict):
        return [x for k, v in node.items()
                for x in ([v] if k.endswith("_file") and isinstance(v, str) else secret_files(v))]
    if isinstance(node, list):
        return [x for v in node for x in secret_files(v)]
    return []


def test_services_and_their_bind_mounts_exist(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"prometheus", "alertmanager", "grafana"}
    for name, service in compose["services"].items():
        assert service["image"].split(":")[1] not in ("", "latest"), name  # pinned
        assert service.get("network_mode") == "host", name  # reaches agent-exporter on the host's 127.0.0.1
        for target, source in binds(service).items():
            assert (DEPLOY / source).exists(), f"{name}: {source} (mounted at {target}) does not exist"
        for v in service.get("volumes", []):
            if not v.startswith("./"):
                assert v.split(":")[0] in compose["volumes"], (name, v)


def test_prometheus_finds_its_config_rules_and_targets(compose: dict[str, Any]) -> None:
    service = compose["services"]["prometheus"]
    flag = next(a for a in service["command"] if a.startswith("--config.file="))
    template = flag.removeprefix("--config.file=")
    assert template == "/etc/prometheus/${PROMETHEUS_CONFIG:-prometheus.yml}"
    for name, source in (("prometheus.yml", PROMETHEUS_YML), ("prometheus-fleet.yml", PROMETHEUS_FLEET_YML)):
        inside = f"/etc/prometheus/{name}"
        assert host_path(service, inside) == str(source)
        doc = load_yaml(source)
        for rule_file in doc["rule_files"]:
            path = host_path(service, str(PurePosixPath(inside).parent / rule_file))
            assert path and (DEPLOY / path).exists(), rule_file
        for job in doc["scrape_configs"]:
            for sd in job.get("file_sd_configs", []):
                for pattern in sd["files"]:
                    directory = host_path(service, str(PurePosixPath(inside).parent / pattern).rsplit("/", 1)[0])
                    assert directory and list((DEPLOY / directory).glob(pattern.rsplit("/", 1)[1])), pattern
    assert "--web.enable-lifecycle" in service["command"]  # deploy_agent_monitoring.sh reloads through it
    assert any(a.startswith("--web.listen-address=127.0.0.1:") for a in service["command"])


def test_alertmanager_finds_its_config_and_secrets(compose: dict[str, Any]) -> None:
    service = compose["services"]["alertmanager"]
    flag = next(a for a in service["command"] if a.startswith("--config.file="))
    assert host_path(service, flag.removeprefix("--config.file=")) == str(ALERTMANAGER_YML)
    secrets = secret_files(load_yaml(ALERTMANAGER_YML))
    assert secrets and all(s.startswith(SECRETS_IN_CONTAINER) for s in secrets)
    for secret in secrets:
        path = host_path(service, secret)
        assert path is not None and PurePosixPath(path).name == PurePosixPath(secret).name
        assert (DEPLOY / path).is_file(), secret
    assert any(a.startswith("--web.listen-address=127.0.0.1:") for a in service["command"])


def test_grafana_finds_provisioning_and_dashboards(compose: dict[str, Any]) -> None:
    service = compose["services"]["grafana"]
    assert host_path(service, "/etc/grafana/provisioning/datasources/prometheus.yml") == str(
        DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
    home = service["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    path = host_path(service, home)
    assert path and (DEPLOY / path).is_file(), home
    assert service["environment"]["GF_SERVER_HTTP_ADDR"] == "127.0.0.1"


def test_prometheus_sends_alerts_where_alertmanager_listens(compose: dict[str, Any]) -> None:
    am = compose["services"]["alertmanager"]
    listen = next(a for a in am["command"] if a.startswith("--web.listen-address=")).split("=", 1)[1]
    for config in (PROMETHEUS_YML, PROMETHEUS_FLEET_YML):
        (am_config,) = load_yaml(config)["alerting"]["alertmanagers"]
        assert am_config["static_configs"] == [{"targets": [listen]}]
    prom = compose["services"]["prometheus"]
    prom_listen = next(a for a in prom["command"] if a.startswith("--web.listen-address=")).split("=", 1)[1]
    datasource = load_yaml(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
    assert datasource["datasources"][0]["url"] == f"http://{prom_listen}"
