"""`agent-exporter serve` as a real process, against real HTTP clients: curl and Python's.

Exact bytes, gzip, HEAD, refusals, traversal attempts, limits, a missing and a stale file, slow
clients by the hundred, signals, and systemd socket activation.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from procs import Processes, free_port, http_get, wait_until
from server_fixtures import bcrypt_hash, curl, need, start_server, status_of

from devtools.textfiles import fleet, render, serve_argv, write_textfile

pytestmark = pytest.mark.integration

AGE_LINE = re.compile(rb"\nagent_exporter_textfile_age_seconds (\d+\.\d{3})\n\Z")


def raw_request(port: int, data: bytes) -> bytes:
    """Send bytes exactly as given; return everything the server answers before it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def proc_status(pid: int) -> dict[str, str]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_metrics_exact_bytes_gzip_and_head(textfile: Path, procs: Processes) -> None:
    base, _pid = start_server(procs, textfile)
    data = textfile.read_bytes()
    plain = curl(f"{base}/metrics")
    assert plain.returncode == 0
    assert plain.stdout.startswith(data)
    tail = plain.stdout[len(data):]
    assert tail.startswith(b"# HELP agent_exporter_textfile_age_seconds ")
    assert b"\n# TYPE agent_exporter_textfile_age_seconds gauge\n" in tail
    assert AGE_LINE.search(tail)

    headers = curl("-D", "-", "-o", "/dev/null", "-H", "Accept-Encoding: gzip", f"{base}/metrics").stdout.decode()
    assert "Content-Encoding: gzip" in headers
    assert "Content-Type: text/plain; version=0.0.4; charset=utf-8" in headers
    raw_gz = curl("-H", "Accept-Encoding: gzip", f"{base}/metrics").stdout
    unzipped = gzip.decompress(raw_gz)
    assert unzipped.startswith(data) and AGE_LINE.search(unzipped)
    assert curl("--compressed", f"{base}/metrics").stdout.startswith(data)

    head = curl("-I", f"{base}/metrics")
    assert head.returncode == 0 and head.stdout.startswith(b"HTTP/1.1 200 OK\r\n")
    length = int(re.search(rb"Content-Length: (\d+)", head.stdout).group(1))  # type: ignore[union-attr]
    assert length == len(plain.stdout)  # the age has the same width both times

    status, body = http_get(f"{base}/metrics")
    assert status == 200 and body.startswith(data)


def test_the_file_is_followed_when_the_writer_replaces_it(textfile: Path, procs: Processes) -> None:
    base, _pid = start_server(procs, textfile)
    assert b'agent="agent-gateway"' in curl(f"{base}/metrics").stdout
    new = render(fleet()[:3])
    write_textfile(textfile, new)
    out = curl(f"{base}/metrics").stdout
    assert out.startswith(new) and b"agent-gateway" not in out
    page = curl(f"{base}/").stdout
    assert b"agent-core_dev" in page and b"agent-gateway" not in page


def test_refusals_and_traversal_attempts(textfile: Path, procs: Processes) -> None:
    base, _pid = start_server(procs, textfile)
    port = int(base.rsplit(":", 1)[1])
    secret = textfile.parent.parent / "secret.txt"
    secret.write_text("root:x:0:0:do-not-serve\n")
    for target in ("/../secret.txt", "/textfile/../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E%2Fsecret.txt",
                   "/..%2fsecret.txt", "//etc/passwd", "/metrics/../../etc/passwd", "/./metrics", "/metrics/",
                   "/agents.prom", "/textfile/agents.prom", "/%00", "/metrics%00", "/index.html", "/favicon.ico"):
        answer = raw_request(port, f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        assert answer.startswith(b"HTTP/1.1 404 Not Found\r\n"), (target, answer[:80])
        assert b"root:" not in answer and b"do-not-serve" not in answer
    assert status_of("--path-as-is", f"{base}/../../../../etc/passwd") == 404
    for data in (b"GET /metrics\r\nX-Injected: 1 HTTP/1.1\r\n\r\n", b"GET /met\rrics HTTP/1.1\r\n\r\n",
                 b"GET /metrics HTTP/1.1\r\nX: a\rSet-Cookie: b\r\n\r\n", b"GET /metrics HTTP/1.1\nHost: x\n\n",
                 b"GET /metrics HTTP/1.1\r\nHost: x\r\n continued\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00\r\n\r\n"):
        answer = raw_request(port, data)
        assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n"), (data, answer[:80])
    assert status_of("-X", "POST", "-d", "x=1", f"{base}/metrics") == 405
    assert status_of("-X", "PUT", f"{base}/") == 405
    assert status_of("-X", "DELETE", f"{base}/health") == 405
    assert status_of("-X", "BREW", f"{base}/metrics") == 501
    assert status_of("-H", "X-Big: " + "a" * 20000, f"{base}/metrics") == 431
    assert status_of(f"{base}/metrics?" + "a" * 9000) == 414
    assert status_of(f"{base}/metrics?" + "a" * 7000) == 200  # long but inside the limit
    assert raw_request(port, b"GET /metrics HTTP/1.1\r\n" + b"X: y\r\n" * 101 + b"\r\n").startswith(
        b"HTTP/1.1 431 ")
    assert status_of(f"{base}/health") == 200  # and the server is still fine


def test_missing_then_present_then_stale(tmp_path: Path, procs: Processes) -> None:
    path = tmp_path / "agents.prom"
    base, _pid = start_server(procs, path, "--interval", "10")
    missing = curl("-i", f"{base}/metrics").stdout
    assert missing.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    body = missing.split(b"\r\n\r\n", 1)[1]
    assert body == f"textfile {path}: No such file or directory\n".encode()
    status, health = http_get(f"{base}/health")
    assert status == 503 and json.loads(health)["status"] == "missing"

    write_textfile(path, render(fleet()))
    assert status_of(f"{base}/metrics") == 200
    status, health = http_get(f"{base}/health")
    assert status == 200 and json.loads(health)["status"] == "ok"

    old = time.time() - 45
    write_textfile(path, render(fleet(), timestamp=old), mtime=old)
    status, health = http_get(f"{base}/health")
    doc = json.loads(health)
    assert status == 503 and doc["status"] == "stale" and doc["age_seconds"] >= 45
    age = float(AGE_LINE.search(curl(f"{base}/metrics").stdout).group(1))  # type: ignore[union-attr]
    assert 45 <= age < 60
    assert b"The textfile is stale" in curl(f"{base}/").stdout


def test_hundreds_of_slow_clients_do_not_stall_a_scrape(textfile: Path, procs: Processes) -> None:
    base, pid = start_server(procs, textfile, "--web.read-timeout", "2")
    port = int(base.rsplit(":", 1)[1])
    time.sleep(0.2)
    fds_before, threads_before = open_fds(pid), int(proc_status(pid)["Threads"])
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(300)]
    trickle = [socket.create_connection(("127.0.0.1", port)) for _ in range(100)]
    stop = threading.Event()

    def drip() -> None:
        request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
        i = 0
        while not stop.is_set() and i < len(request):
            for s in trickle:
                try:
                    s.send(request[i:i + 1])
                except OSError:
                    pass
            i += 1
            stop.wait(0.1)

    dripper = threading.Thread(target=drip)
    dripper.start()
    try:
        time.sleep(0.3)
        assert open_fds(pid) >= fds_before + 400
        for _ in range(5):
            t = time.monotonic()
            done = curl("-o", "/dev/null", "-w", "%{http_code}", f"{base}/metrics")
            assert done.stdout == b"200" and time.monotonic() - t < 1.0
        status = proc_status(pid)
        assert int(status["Threads"]) == threads_before  # connections never take threads
        assert int(status["VmRSS"].split()[0]) < 30 * 1024
        # the read timeout (2 s from connect) closes every one of them
        deadline = time.monotonic() + 4
        for s in idle + trickle:
            s.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                while s.recv(4096):
                    pass
            except ConnectionResetError:
                pass
            except TimeoutError:
                pytest.fail("a slow connection was still open 4 s after a 2 s read timeout")
    finally:
        stop.set()
        dripper.join()
        for s in idle + trickle:
            s.close()
    wait_until(lambda: open_fds(pid) <= fds_before, 3, "the server to close the slow connections")
    assert status_of(f"{base}/metrics") == 200


def test_sigterm_stops_cleanly_and_sighup_reloads_the_web_config(textfile: Path, tmp_path: Path,
                                                                 procs: Processes) -> None:
    web = tmp_path / "web.yml"
    web.write_text("http_server_config:\n  headers:\n    X-Frame-Options: deny\n")
    base, pid = start_server(procs, textfile, "--web.config.file", str(web))
    assert b"X-Frame-Options: deny" in curl("-i", f"{base}/health").stdout

    web.write_text(f"basic_auth_users:\n  prometheus: '{bcrypt_hash('s3cret')}'\n")
    os.kill(pid, signal.SIGHUP)
    wait_until(lambda: status_of(f"{base}/metrics") == 401, 5, "basic auth after SIGHUP")
    assert status_of("-u", "prometheus:s3cret", f"{base}/metrics") == 200

    web.write_text("basic_auth_users:\n  prometheus: plaintext\n")  # refused: the old one stays
    os.kill(pid, signal.SIGHUP)
    wait_until(lambda: "not reloaded" in procs.log("serve"), 5, "the reload error in the log")
    assert status_of("-u", "prometheus:s3cret", f"{base}/metrics") == 200
    assert status_of(f"{base}/metrics") == 401

    t = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    proc = procs._procs[-1][0]
    assert proc.wait(5) == 0
    assert time.monotonic() - t < 2
    assert procs.log("serve").rstrip().endswith("agent-exporter: stopped")


@pytest.fixture
def activated(textfile: Path, procs: Processes) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    tool = need("systemd-socket-activate")
    port = free_port()
    # --web.listen-address names a port that is taken: under activation it must not be used.
    with socket.create_server(("127.0.0.1", 0)) as taken:
        busy = taken.getsockname()[1]
        argv = [tool, "-l", f"127.0.0.1:{port}", "-E", "PYTHONPATH=" + os.environ.get("PYTHONPATH", ""),
                *serve_argv("--textfile-dir", str(textfile.parent), "--textfile-name", textfile.name,
                            "--web.listen-address", f"127.0.0.1:{busy}")]
        proc = procs.start(argv, "activate")
        wait_until(lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() or True, 10,
                   "systemd-socket-activate to listen")
        yield port, proc


def test_systemd_socket_activation(activated: tuple[int, subprocess.Popen[bytes]], procs: Processes) -> None:
    port, proc = activated
    status, body = wait_until(lambda: http_get(f"http://127.0.0.1:{port}/health"), 15, "the activated server")  # type: ignore[misc]
    assert status == 200 and json.loads(body)["status"] == "ok"
    assert status_of(f"http://127.0.0.1:{port}/metrics") == 200
    log = procs.log("activate")
    assert f"serving on http://127.0.0.1:{port}" in log, log
    assert proc.poll() is None
