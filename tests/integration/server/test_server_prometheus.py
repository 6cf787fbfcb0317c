"""Real Prometheus (Debian's) scrapes the server directly: over plain HTTP, and over TLS with basic auth."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path

import pytest
from procs import Processes, free_port, http_get, wait_until
from server_fixtures import bcrypt_hash, make_certs, need, start_server

from devtools.textfiles import fleet, render, write_textfile

pytestmark = pytest.mark.integration


def api(base: str, path: str, **params: str) -> dict[str, object]:
    status, body = http_get(f"{base}{path}?{urllib.parse.urlencode(params)}")
    assert status == 200, body
    doc = json.loads(body)
    assert doc["status"] == "success", doc
    return doc["data"]  # type: ignore[no-any-return]


def test_prometheus_scrapes_the_server(tmp_path: Path, procs: Processes) -> None:
    prometheus = need("prometheus")
    textfile = tmp_path / "agents.prom"
    write_textfile(textfile, render(fleet()))
    plain_base, _ = start_server(procs, textfile, name="serve-plain")

    certs = make_certs(tmp_path / "pki")
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {certs.server_cert}\n  key_file: {certs.server_key}\n"
                   f"basic_auth_users:\n  prometheus: '{bcrypt_hash('s3cret')}'\n")
    tls_base, _ = start_server(procs, textfile, "--web.config.file", str(web), name="serve-tls", scheme="https")

    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: agents
    static_configs:
      - targets: ["{plain_base.split('://')[1]}"]
  - job_name: agents-tls
    scheme: https
    tls_config:
      ca_file: {certs.ca}
    basic_auth:
      username: prometheus
      password: s3cret
    static_configs:
      - targets: ["{tls_base.split('://')[1]}"]
""")
    procs.start([prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"], "prometheus")
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: http_get(f"{base}/-/ready")[0] == 200, 60, "Prometheus to be ready")

    def targets_up() -> bool:
        active = api(base, "/api/v1/targets")["activeTargets"]  # type: ignore[index]
        health = {t["labels"]["job"]: (t["health"], t["lastError"]) for t in active}  # type: ignore[union-attr]
        return health.get("agents", ("",))[0] == "up" and health.get("agents-tls", ("",))[0] == "up"

    try:
        wait_until(targets_up, 30, "both targets to be up")
    except TimeoutError:
        raise AssertionError(f"targets: {api(base, '/api/v1/targets')}\n{procs.log('prometheus')}") from None

    def query(expr: str) -> list[dict[str, object]]:
        return api(base, "/api/v1/query", query=expr)["result"]  # type: ignore[index,return-value]

    for job in ("agents", "agents-tls"):
        result = wait_until(lambda job=job: query(f'agent_memory_kb{{job="{job}",agent="agent-gateway"}}'), 15,
                            f"agent_memory_kb from {job}")
        assert result[0]["value"][1] == "1536000"  # type: ignore[index]
        assert result[0]["metric"]["type"] == "support"  # type: ignore[index]
        up = query(f'up{{job="{job}"}}')
        assert up[0]["value"][1] == "1"  # type: ignore[index]
    running = query('agents_running_total{job="agents"}')
    assert running[0]["value"][1] == "14"  # type: ignore[index]
    age = query('agent_exporter_textfile_age_seconds{job="agents"}')
    assert 0 <= float(age[0]["value"][1]) < 60  # type: ignore[index]
