"""probe.py against real servers on loopback ports picked free at run time: success, a wrong status,
a refused connection, answers that are no HTTP or too large, and agents that hang or drip past the
budget, which must not hold the call beyond it. Every server is stopped when its test ends."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from textfile_writer.config import Probe
from textfile_writer.probe import MAX_HEAD, ProbeResult, run_probes

# A shared, busy machine: how late past its budget a call may return and still count as bounded.
SLACK = 0.25

Handler = Callable[[socket.socket, threading.Event], None]


class Server:
    """A loopback listener whose thread hands each connection to `handler`, one at a time."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.stop = threading.Event()
        self.requests: list[bytes] = []
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.listener.settimeout(0.05)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, name=f"probe-test-{self.port}", daemon=True)

    def serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(0.05)
                self.handler(conn, self.stop)

    def probe(self, path: str = "/health", timeout: float = 2.0, expect_status: int = 200) -> Probe:
        return Probe(url=f"http://127.0.0.1:{self.port}{path}", host=f"127.0.0.1:{self.port}", address="127.0.0.1",
                     port=self.port, path=path, timeout_seconds=timeout, expect_status=expect_status)


@contextmanager
def serving(handler: Handler) -> Iterator[Server]:
    server = Server(handler)
    server.thread.start()
    try:
        yield server
    finally:
        server.stop.set()
        server.thread.join(timeout=5)
        server.listener.close()
        assert not server.thread.is_alive(), "a test server did not stop"


def read_request(conn: socket.socket, stop: threading.Event, into: list[bytes] | None = None) -> None:
    data = b""
    while b"\r\n\r\n" not in data and not stop.is_set():
        try:
            chunk = conn.recv(4096)
        except TimeoutError:
            continue
        if not chunk:
            break
        data += chunk
    if into is not None:
        into.append(data)


def answer(head: bytes, requests: list[bytes] | None = None) -> Handler:
    def handle(conn: socket.socket, stop: threading.Event) -> None:
        read_request(conn, stop, requests)
        conn.sendall(head)
    return handle


def hang(conn: socket.socket, stop: threading.Event) -> None:
    """Accepts and never answers."""
    read_request(conn, stop)
    stop.wait()


def drip(conn: socket.socket, stop: threading.Event) -> None:
    """A status line at once, then a header a byte every 50 ms that never ends."""
    read_request(conn, stop)
    conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    while not stop.wait(0.05):
        try:
            conn.sendall(b"a")
        except OSError:
            return


def timed(targets: list[tuple[str, Probe]], budget: float) -> tuple[dict[str, ProbeResult], float]:
    start = time.monotonic()
    results = run_probes(targets, budget)
    return results, time.monotonic() - start


def test_success_and_the_request_sent() -> None:
    requests: list[bytes] = []
    with serving(answer(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", requests)) as server:
        results, elapsed = timed([("a", server.probe("/health?deep=1"))], 5)
    result = results["a"]
    assert result == ProbeResult(True, result.duration_seconds, 200, None)
    assert 0 < result.duration_seconds <= elapsed
    lines = requests[0].decode().split("\r\n")
    assert lines[0] == "GET /health?deep=1 HTTP/1.1"
    assert f"Host: 127.0.0.1:{server.port}" in lines and "Connection: close" in lines
    assert requests[0].endswith(b"\r\n\r\n")


def test_another_expected_status() -> None:
    with serving(answer(b"HTTP/1.0 204 No Content\r\n\r\n")) as server:
        assert run_probes([("a", server.probe(expect_status=204))], 5)["a"].success


def test_wrong_status_is_a_failure_with_the_status() -> None:
    with serving(answer(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n\r\n")) as server:
        result = run_probes([("a", server.probe())], 5)["a"]
    assert (result.success, result.http_status, result.error) == (False, 503, "status 503, expected 200")


def test_connection_refused() -> None:
    # Bound but not listening: the port stays ours, and a connection to it is refused.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as bound:
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        probe = Probe(url=f"http://127.0.0.1:{port}/", host=f"127.0.0.1:{port}", address="127.0.0.1", port=port,
                      path="/", timeout_seconds=2, expect_status=200)
        results, elapsed = timed([("a", probe)], 5)
    assert results["a"][:1] + results["a"][2:] == (False, None, "connection refused")
    assert elapsed < 1


def test_a_hung_agent_costs_at_most_the_budget() -> None:
    budget = 0.6
    with serving(hang) as server:
        results, elapsed = timed([("hung", server.probe(timeout=30))], budget)
    assert budget - 0.01 <= elapsed <= budget + SLACK, elapsed
    assert results["hung"][:1] + results["hung"][2:] == (False, None, "timeout")
    assert budget - 0.01 <= results["hung"].duration_seconds <= budget + SLACK


def test_the_probes_own_timeout_comes_first() -> None:
    with serving(hang) as server:
        results, elapsed = timed([("hung", server.probe(timeout=0.3))], 5)
    assert 0.29 <= elapsed <= 0.3 + SLACK, elapsed
    assert results["hung"].error == "timeout"


def test_a_slow_drip_is_a_timeout() -> None:
    budget = 0.6
    with serving(drip) as server:
        results, elapsed = timed([("drip", server.probe(timeout=30))], budget)
    assert elapsed <= budget + SLACK, elapsed
    assert results["drip"][:1] + results["drip"][2:] == (False, None, "timeout")


def test_probes_run_concurrently() -> None:
    """Four hung agents with a 0.4 s timeout each and one healthy one: 0.4 s in all, not 1.6 s."""
    with ExitStack() as stack:
        hung = [stack.enter_context(serving(hang)) for _ in range(4)]
        ok = stack.enter_context(serving(answer(b"HTTP/1.1 200 OK\r\n\r\n")))
        targets = [(f"hung{i}", s.probe(timeout=0.4)) for i, s in enumerate(hung)] + [("ok", ok.probe())]
        results, elapsed = timed(targets, 5)
    assert elapsed <= 0.4 + SLACK, elapsed
    assert results["ok"].success
    assert {results[f"hung{i}"].error for i in range(4)} == {"timeout"}
    assert results["ok"].duration_seconds < 0.4


def test_oversized_headers_are_cut_off() -> None:
    head = b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (4 * MAX_HEAD) + b"\r\n\r\n"

    def handle(conn: socket.socket, stop: threading.Event) -> None:
        read_request(conn, stop)
        try:
            conn.sendall(head)
        except OSError:
            pass  # the prober closes after MAX_HEAD bytes
    with serving(handle) as server:
        result = run_probes([("a", server.probe())], 5)["a"]
    assert (result.success, result.http_status, result.error) == (
        False, 200, f"response headers longer than {MAX_HEAD} bytes")


@pytest.mark.parametrize(("head", "error", "status"), [
    (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "not an HTTP response", None),
    (b"HTTP/1.1 2000 OK\r\n\r\n", "not an HTTP response", None),
    (b"HTTP/1.1 200 OK\r\nX-Cut: 1", "connection closed before the end of the headers", 200),
    (b"", "connection closed before the end of the headers", None),
])
def test_answers_that_are_not_a_complete_http_head(head: bytes, error: str, status: int | None) -> None:
    with serving(answer(head)) as server:
        result = run_probes([("a", server.probe())], 5)["a"]
    assert (result.success, result.http_status, result.error) == (False, status, error)


def test_a_bare_lf_head_is_accepted() -> None:
    with serving(answer(b"HTTP/1.1 200 OK\nServer: tiny\n\n")) as server:
        assert run_probes([("a", server.probe())], 5)["a"].success


def test_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as listener:
        try:
            listener.bind(("::1", 0))
        except OSError:
            pytest.skip("no ::1 on this host")
        listener.listen(1)
        port = listener.getsockname()[1]
        probe = Probe(url=f"http://[::1]:{port}/", host=f"[::1]:{port}", address="::1", port=port, path="/",
                      timeout_seconds=1, expect_status=200)
        done: list[dict[str, ProbeResult]] = []
        prober = threading.Thread(target=lambda: done.append(run_probes([("a", probe)], 2)))
        prober.start()
        listener.settimeout(2)
        try:
            conn, _ = listener.accept()
            with conn:
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 200 OK\r\n\r\n")
        finally:
            prober.join(timeout=5)
    assert not prober.is_alive() and done[0]["a"].success


def test_zero_budget_and_no_targets() -> None:
    assert run_probes([], 1) == {}
    with serving(hang) as server:
        results, elapsed = timed([("a", server.probe())], 0)
    assert results["a"].error == "timeout" and elapsed < SLACK


def test_nothing_probe_related_is_imported_by_the_writer() -> None:
    """probe.py is imported by its caller only when some agent has a probe: the writer's modules,
    and a configuration without probes parsed, cached and read back, load neither it nor any socket
    or HTTP module."""
    package = Path(__file__).resolve().parents[2] / "textfile_writer"
    modules = sorted(f"textfile_writer.{p.stem}" for p in package.glob("*.py")
                     if p.stem not in {"__main__", "probe", "cli", "clistyle"})  # click: never on the write path
    assert "textfile_writer.config" in modules and "textfile_writer.writer" in modules
    code = (
        f"import sys\nsys.path.append({yaml_dir()!r})\nimport {', '.join(modules)}\n"
        "from textfile_writer.config import Config, parse_config\n"
        "c = parse_config('agents:\\n  - unit: a\\n    labels: {team: x}\\n    expect: running\\n', 'c.yml', 'user')\n"
        "assert Config.from_dict(c.to_dict()) == c and 'yaml' in sys.modules\n"
        "print(sorted(m for m in sys.modules if m in {'textfile_writer.probe', 'socket', '_socket', 'ssl'}"
        " or m.split('.')[0] in {'http', 'urllib', 'selectors', 'threading'}))")
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=False,
                         cwd=package.parent)  # the checkout: -S leaves site-packages out
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


def yaml_dir() -> str:
    """Where PyYAML is installed: the one third-party package the config's validation imports."""
    import yaml

    return str(Path(yaml.__file__).resolve().parents[1])


def test_the_prober_itself_stays_cheap_to_import() -> None:
    """Its import cost is the reason for _socket and poll: socket (enum, selectors), threads and
    http.client cost 3 to 40 times as much."""
    code = ("import sys\nimport textfile_writer.probe\n"
            "print(sorted(m for m in sys.modules if m in {'socket', 'selectors', 'threading', 'ssl', 'enum'}"
            " or m.split('.')[0] in {'http', 'urllib', 'email'}))")
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=False,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout
