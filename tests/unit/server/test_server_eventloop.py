"""The connection loop in-process on a loopback port: keep-alive, limits, timeouts, the worker pool, stop."""

from __future__ import annotations

import base64
import http.client
import os
import re
import socket
import threading
import time
from pathlib import Path

import pytest
from server_fixtures import GatedApp, bcrypt_hash, closed_by_peer, running

from textfile_writer.errors import AgentExporterError, ServeError, UsageError
from textfile_writer.server.eventloop import (
    Server,
    ServerOptions,
    activated_sockets,
    bind,
    describe,
    parse_listen_address,
)
from textfile_writer.server.filecache import TextfileCache
from textfile_writer.server.http11 import Request, Response
from textfile_writer.server.routes import App
from textfile_writer.server.webconfig import BasicAuth, WebConfig, WebRuntime


def read_response(f: socket.SocketIO | object) -> tuple[int, dict[str, str], bytes]:
    fp = f  # a buffered binary file from sock.makefile("rb")
    status_line = fp.readline()  # type: ignore[attr-defined]
    if not status_line:
        raise EOFError("connection closed before a response")
    status = int(status_line.split()[1])
    headers = {}
    while True:
        line = fp.readline().rstrip(b"\r\n")  # type: ignore[attr-defined]
        if not line:
            break
        k, _, v = line.decode().partition(":")
        headers[k.strip().lower()] = v.strip()
    body = fp.read(int(headers.get("content-length", "0")))  # type: ignore[attr-defined]
    return status, headers, body


def raw(port: int, data: bytes, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        return read_response(s.makefile("rb"))


def test_keep_alive_serves_many_requests_on_one_connection(textfile: Path) -> None:
    app = App(TextfileCache(str(textfile)), 10, WebRuntime())
    with running(app) as (_server, port):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/metrics")
        r = conn.getresponse()
        first_sock = conn.sock
        assert r.status == 200 and r.read().startswith(textfile.read_bytes())
        for path, status in (("/health", 200), ("/nope", 404), ("/metrics", 200), ("/", 200)):
            conn.request("GET", path)
            r = conn.getresponse()
            r.read()
            assert r.status == status
            assert conn.sock is first_sock
        conn.request("HEAD", "/metrics")
        r = conn.getresponse()
        assert r.status == 200 and r.read() == b"" and int(r.headers["Content-Length"]) > len(textfile.read_bytes())
        conn.close()


def test_pipelined_requests_are_answered_in_order(textfile: Path) -> None:
    app = App(TextfileCache(str(textfile)), 10, WebRuntime())
    with running(app) as (_server, port), socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /metrics HTTP/1.1\r\n\r\n"
                  b"GET /nope HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nConnection: close\r\n\r\n")
        f = s.makefile("rb")
        statuses = [read_response(f)[0] for _ in range(4)]
        assert statuses == [200, 200, 404, 200]
        assert f.read() == b""  # Connection: close honoured


def test_http10_closes_unless_asked_to_keep_alive(textfile: Path) -> None:
    app = App(TextfileCache(str(textfile)), 10, WebRuntime())
    with running(app) as (_server, port), socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /health HTTP/1.0\r\n\r\n")
        f = s.makefile("rb")
        status, headers, _ = read_response(f)
        assert status == 200 and headers["connection"] == "close" and f.read() == b""
    with running(app) as (_server, port), socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /health HTTP/1.0\r\n\r\n")
        f = s.makefile("rb")
        assert read_response(f)[1]["connection"] == "keep-alive"
        assert read_response(f)[0] == 200


@pytest.mark.parametrize(("data", "status"), [
    (b"GET /metrics HTTP/1.1\r\nBad Header: x\r\n\r\n", 400),
    (b"GET /metrics\r\n\r\n", 400),
    (b"GET /metrics HTTP/1.1\r\nX: a\r\n\r\n".replace(b"X: a", b"X: a\rb"), 400),
    (b"GET /metrics HTTP/1.1\n\n", 400),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414),
    (b"GET /" + b"a" * 9000, 414),  # never finished, and already too long
    (b"GET /metrics HTTP/1.1\r\n" + b"X-Filler: " + b"a" * 17000 + b"\r\n\r\n", 431),
    (b"GET /metrics HTTP/1.1\r\n" + b"".join(b"X-%d: a\r\n" % i for i in range(101)) + b"\r\n", 431),
    (b"GET /metrics HTTP/2.0\r\n\r\n", 505),
])
def test_bad_requests_are_refused_and_the_connection_closed(textfile: Path, data: bytes, status: int) -> None:
    app = App(TextfileCache(str(textfile)), 10, WebRuntime())
    with running(app) as (_server, port), socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        f = s.makefile("rb")
        got, headers, body = read_response(f)
        assert (got, headers.get("connection")) == (status, "close")
        assert body.count(b"\n") == 1
        assert f.read() == b""


def test_idle_and_trickling_clients_are_dropped_without_blocking_others(textfile: Path) -> None:
    app = App(TextfileCache(str(textfile)), 10, WebRuntime())
    with running(app, ServerOptions(read_timeout=0.6)) as (_server, port):
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(50)]
        trickle = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
        started = time.monotonic()
        for _ in range(3):
            for s in trickle:
                s.send(b"G")
            t = time.monotonic()
            assert raw(port, b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n")[0] == 200
            assert time.monotonic() - t < 0.5
            time.sleep(0.1)
        for s in idle + trickle:
            assert closed_by_peer(s, 2.0), "a connection was kept open past the read timeout"
            s.close()
        assert time.monotonic() - started < 3.0


def test_keep_alive_connections_are_closed_when_idle(textfile: Path) -> None:
    app = App(TextfileCache(str(textfile)), 10, WebRuntime())
    with running(app, ServerOptions(read_timeout=0.5)) as (_server, port), \
            socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET /health HTTP/1.1\r\n\r\n")
        assert read_response(s.makefile("rb"))[0] == 200
        assert not closed_by_peer(s, 0.2)
        assert closed_by_peer(s, 1.5)


def test_a_full_queue_answers_503_and_the_loop_stays_responsive(textfile: Path) -> None:
    app = GatedApp(textfile)
    with running(app, ServerOptions(workers=1, queue_size=1)) as (_server, port):
        held = []
        for _ in range(2):  # one on the worker, then one in the queue
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET / HTTP/1.1\r\n\r\n")
            held.append(s)
            if len(held) == 1:
                assert app.entered.acquire(timeout=5)
        time.sleep(0.2)
        status, headers, _ = raw(port, b"GET / HTTP/1.1\r\n\r\n")
        assert status == 503 and headers["retry-after"] == "1"
        # cached answers do not need a worker at all
        app.gate.set()
        for s in held:
            assert read_response(s.makefile("rb"))[0] == 200
            s.close()
        assert raw(port, b"GET /metrics HTTP/1.1\r\n\r\n")[0] == 200


def test_stop_finishes_the_request_in_flight(textfile: Path) -> None:
    app = GatedApp(textfile)
    sock = bind("127.0.0.1:0")
    port = sock.getsockname()[1]
    server = Server([sock], app, ServerOptions())
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\n\r\n")
        assert app.entered.acquire(timeout=5)
        server.stop()
        time.sleep(0.1)
        with pytest.raises(OSError):  # no longer accepting
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        app.gate.set()
        f = s.makefile("rb")
        status, headers, _ = read_response(f)
        assert status == 200 and headers["connection"] == "close"
    t.join(10)
    assert not t.is_alive()


def test_reload_swaps_the_web_configuration_and_keeps_it_on_errors(textfile: Path) -> None:
    users = {"prom": bcrypt_hash("pw", 4)}
    outcomes: list[WebRuntime | AgentExporterError] = []
    logged: list[str] = []

    def reload() -> WebRuntime:
        outcome = outcomes.pop(0)
        if isinstance(outcome, AgentExporterError):
            raise outcome
        return outcome

    app = App(TextfileCache(str(textfile)), 10, WebRuntime())
    with running(app, reload_web=reload, log=logged.append) as (server, port):
        assert raw(port, b"GET /health HTTP/1.1\r\n\r\n")[0] == 200
        outcomes.append(WebRuntime(WebConfig("w", users=users), None, BasicAuth(users)))
        server.request_reload()
        time.sleep(0.3)
        assert raw(port, b"GET /health HTTP/1.1\r\n\r\n")[0] == 401
        token = base64.b64encode(b"prom:pw")
        assert raw(port, b"GET /health HTTP/1.1\r\nAuthorization: Basic " + token + b"\r\n\r\n")[0] == 200
        outcomes.append(AgentExporterError("web.yml: broken"))
        server.request_reload()
        time.sleep(0.3)
        assert raw(port, b"GET /health HTTP/1.1\r\n\r\n")[0] == 401
    assert logged == ["web configuration reloaded",
                      "web configuration not reloaded, keeping the previous one: web.yml: broken"]


class BrokenApp(App):
    def fast(self, req: Request) -> Response | None:
        if req.path == "/health":
            raise RuntimeError("bug on the loop")
        return None

    def slow(self, req: Request) -> Response:
        raise RuntimeError("bug in a worker")


def test_a_bug_costs_one_request_not_the_server(textfile: Path) -> None:
    logged: list[str] = []
    with running(BrokenApp(TextfileCache(str(textfile)), 10, WebRuntime()), log=logged.append) as (_s, port):
        for _ in range(3):
            assert raw(port, b"GET /health HTTP/1.1\r\n\r\n")[0] == 500
            assert raw(port, b"GET /metrics HTTP/1.1\r\n\r\n")[0] == 500
    assert any("bug on the loop" in m for m in logged) and any("bug in a worker" in m for m in logged)


def test_parse_listen_address() -> None:
    assert parse_listen_address("127.0.0.1:9200") == ("127.0.0.1", 9200)
    assert parse_listen_address("[::1]:9200") == ("::1", 9200)
    assert parse_listen_address(":9200") == ("", 9200)
    assert parse_listen_address("localhost:0") == ("localhost", 0)
    for bad in ("9200", "127.0.0.1", "127.0.0.1:http", "127.0.0.1:70000", "::1:9200", "1.2.3.4:-1"):
        with pytest.raises(UsageError):
            parse_listen_address(bad)


def test_bind_errors_say_what_to_do() -> None:
    taken = bind("127.0.0.1:0")
    try:
        address = describe(taken)
        # the errno's words, not socket.create_server's ("error while attempting to bind on address (…)")
        expected = (rf"^cannot listen on {re.escape(address)}: address already in use "
                    r"\(another .*--web\.listen-address\)$")
        with pytest.raises(ServeError, match=expected):
            bind(address)
    finally:
        taken.close()
    with pytest.raises(ServeError, match=r"cannot listen on no-such-host\.invalid:9200"):
        bind("no-such-host.invalid:9200")


def test_socket_activation_only_for_this_process() -> None:
    assert activated_sockets({}) is None
    assert activated_sockets({"LISTEN_PID": "1", "LISTEN_FDS": "1"}) is None
    with pytest.raises(ServeError, match="LISTEN_FDS"):
        activated_sockets({"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "x"})
