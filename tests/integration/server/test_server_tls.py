"""TLS and basic auth with certificates made by openssl in the test, checked with real curl."""

from __future__ import annotations

import socket
import statistics
import subprocess
import time
from pathlib import Path

import pytest
from procs import Processes
from server_fixtures import Certs, bcrypt_hash, curl, make_certs, need, start_server, status_of

pytestmark = pytest.mark.integration


@pytest.fixture
def certs(tmp_path: Path) -> Certs:
    return make_certs(tmp_path / "pki")


def test_tls_with_basic_auth(textfile: Path, certs: Certs, tmp_path: Path, procs: Processes) -> None:
    web = tmp_path / "web.yml"
    web.write_text(
        "tls_server_config:\n  cert_file: pki/server.crt\n  key_file: pki/server.key\n"
        "http_server_config:\n  headers:\n    Strict-Transport-Security: max-age=31536000\n"
        f"basic_auth_users:\n  prometheus: '{bcrypt_hash('s3cret')}'\n")
    base, _pid = start_server(procs, textfile, "--web.config.file", str(web), scheme="https")
    ca = ("--cacert", str(certs.ca))

    ok = curl(*ca, "-i", "-u", "prometheus:s3cret", f"{base}/metrics")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Strict-Transport-Security: max-age=31536000\r\n" in ok.stdout
    assert textfile.read_bytes() in ok.stdout
    assert status_of(*ca, "--compressed", "-u", "prometheus:s3cret", f"{base}/") == 200

    assert status_of(*ca, "-u", "prometheus:wrong", f"{base}/metrics") == 401
    assert status_of(*ca, "-u", "nobody:s3cret", f"{base}/metrics") == 401
    assert status_of(*ca, f"{base}/metrics") == 401
    assert status_of(*ca, f"{base}/nope") == 401  # nothing before authentication
    assert status_of(*ca, "-u", "prometheus:s3cret", f"{base}/nope") == 404
    unauthorized = curl(*ca, "-i", f"{base}/health").stdout
    assert b'WWW-Authenticate: Basic realm="agent-exporter"' in unauthorized

    # keep-alive over TLS: several requests on one connection
    many = curl(*ca, "-u", "prometheus:s3cret", "-w", "%{num_connects} ", "-o", "/dev/null",
                f"{base}/health", "-o", "/dev/null", f"{base}/metrics", "-o", "/dev/null", f"{base}/health")
    assert many.stdout.split() == [b"1", b"0", b"0"]

    # wrong or missing credentials answer in the same time whether or not the user exists
    def timed(user: str) -> float:
        t = time.monotonic()
        assert status_of(*ca, "-u", f"{user}:wrong", f"{base}/health") == 401
        return time.monotonic() - t

    known, unknown = [], []
    for _ in range(5):
        known.append(timed("prometheus"))
        unknown.append(timed("mallory"))
    k, u = statistics.median(known), statistics.median(unknown)
    assert abs(k - u) < max(0.3 * k, 0.02), (known, unknown)

    # plain HTTP to the TLS port is refused, never answered with metrics
    plain = curl("-i", "-u", "prometheus:s3cret", base.replace("https://", "http://") + "/metrics")
    assert plain.stdout.startswith(b"HTTP/1.0 400 Bad Request\r\n"), plain
    assert plain.stdout.endswith(b"\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
    # and so is a client that does not trust our certificate
    assert curl("-u", "prometheus:s3cret", f"{base}/metrics").returncode != 0


def test_idle_and_half_handshaken_connections_do_not_block_scrapes(textfile: Path, certs: Certs, tmp_path: Path,
                                                                  procs: Processes) -> None:
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {certs.server_cert}\n  key_file: {certs.server_key}\n")
    base, _pid = start_server(procs, textfile, "--web.config.file", str(web), "--web.read-timeout", "2",
                              scheme="https")
    port = int(base.rsplit(":", 1)[1])
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(50)]
    half = []
    for _ in range(20):  # a TLS record header promising a ClientHello that never comes
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"\x16\x03\x01\x02\x00")
        half.append(s)
    try:
        for _ in range(3):
            t = time.monotonic()
            assert status_of("--cacert", str(certs.ca), f"{base}/metrics") == 200
            assert time.monotonic() - t < 1.0
        for s in idle + half:
            s.settimeout(4)
            try:
                assert s.recv(1) == b""
            except ConnectionResetError:
                pass
    finally:
        for s in idle + half:
            s.close()


def test_client_certificates_and_tls_versions(textfile: Path, certs: Certs, tmp_path: Path,
                                              procs: Processes) -> None:
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {certs.server_cert}\n  key_file: {certs.server_key}\n"
                   f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {certs.ca}\n"
                   "  min_version: TLS13\n")
    base, _pid = start_server(procs, textfile, "--web.config.file", str(web), scheme="https")
    ca = ("--cacert", str(certs.ca))
    assert status_of(*ca, "--cert", str(certs.client_cert), "--key", str(certs.client_key), f"{base}/metrics") == 200
    assert curl(*ca, f"{base}/metrics").returncode != 0  # no client certificate
    # a self-signed client certificate that our CA did not sign
    subprocess.run([need("openssl"), "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "1", "-subj", "/CN=intruder", "-keyout", str(tmp_path / "i.key"),
                    "-out", str(tmp_path / "i.crt")], check=True, capture_output=True)
    assert curl(*ca, "--cert", str(tmp_path / "i.crt"), "--key", str(tmp_path / "i.key"),
                f"{base}/metrics").returncode != 0
    # TLS 1.2 is below min_version
    assert curl(*ca, "--cert", str(certs.client_cert), "--key", str(certs.client_key), "--tls-max", "1.2",
                f"{base}/metrics").returncode != 0
    assert status_of(*ca, "--cert", str(certs.client_cert), "--key", str(certs.client_key), f"{base}/health") == 200
