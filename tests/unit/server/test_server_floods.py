"""The connection loop in-process under floods: full connection tables, a queue flooded from one
address, slow readers of a large file, and a web-configuration reload that takes long or blows up."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
from server_fixtures import GatedApp, closed_by_peer, running

from devtools.textfiles import Agent, render, write_textfile
from textfile_writer.server.eventloop import Server, ServerOptions, bind
from textfile_writer.server.filecache import TextfileCache
from textfile_writer.server.http11 import Limits, parse_request
from textfile_writer.server.routes import App
from textfile_writer.server.webconfig import WebRuntime

GET_HEALTH = b"GET /health HTTP/1.1\r\n\r\n"


def connect(port: int, source: str = "127.0.0.1", timeout: float = 5.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))


def status_of(s: socket.socket) -> int:
    line = s.makefile("rb").readline()
    if not line:
        raise EOFError("closed before a response")
    return int(line.split()[1])


def timed_status(port: int, data: bytes = GET_HEALTH, source: str = "127.0.0.1") -> tuple[int, float]:
    t = time.monotonic()
    with connect(port, source) as s:
        s.sendall(data)
        status = status_of(s)
    return status, time.monotonic() - t


def test_at_max_connections_the_oldest_waiting_connection_makes_room(textfile: Path) -> None:
    """Idle, trickling and handshake-less connections fill the table: a scrape still gets in at
    once (it used to wait in the backlog for the read timeout, 5 s here), the oldest one is
    closed for it, and connections with a request on a worker are never the ones closed."""
    app = GatedApp(textfile)
    app.cache.load()  # /health from the cache, on the loop: the one worker is held below
    with running(app, ServerOptions(read_timeout=5.0, max_connections=6, workers=1)) as (_s, port):
        busy = connect(port)
        busy.sendall(b"GET / HTTP/1.1\r\n\r\n")  # the landing page: on the worker, held by the gate
        assert app.entered.acquire(timeout=5)
        waiting = [connect(port) for _ in range(5)]
        waiting[1].sendall(b"GET /metr")  # a head that trickles
        waiting[3].sendall(b"GET /health HTTP/1.1\r\n\r\n")  # served, now idle on keep-alive
        assert status_of(waiting[3]) == 200
        time.sleep(0.2)
        timings, scrapes = [], []
        for i in range(3):  # each scrape stays connected: each needs a room of its own
            t = time.monotonic()
            scrape = connect(port)
            scrape.sendall(GET_HEALTH)
            assert status_of(scrape) == 200
            timings.append(time.monotonic() - t)
            scrapes.append(scrape)
            # oldest first: waiting[0], [1], [2]; [3] became active later than [4]
            assert closed_by_peer(waiting[i], 2.0), f"connection {i} was not the one closed"
        assert max(timings) < 1.0, timings  # measured: a few ms; before: the 5 s read timeout
        assert not closed_by_peer(waiting[4], 0.1), "4"
        assert not closed_by_peer(waiting[3], 0.1), "3"
        app.gate.set()
        assert status_of(busy) == 200  # the busy one was never evicted
        for s in [busy, *waiting, *scrapes]:
            s.close()


def test_when_only_readers_are_left_the_slowest_makes_room(tmp_path: Path) -> None:
    path = tmp_path / "big.prom"
    write_textfile(path, render([Agent(f"agent-{i:05d}") for i in range(3000)]))  # ~3 MB
    app = App(TextfileCache(str(path)), 10, WebRuntime())
    with running(app, ServerOptions(read_timeout=5.0, write_timeout=30.0, max_connections=3)) as (_s, port):
        assert timed_status(port, b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n")[0] == 200  # cached
        readers = []
        for _ in range(3):  # ask for 3 MB and read none of it: the server's sends stall
            s = connect(port)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
            readers.append(s)
        time.sleep(0.3)
        status, elapsed = timed_status(port)
        assert status == 200 and elapsed < 1.0, elapsed  # before: until write_timeout (30 s)
        assert closed_by_peer(readers[0], 2.0)
        for s in readers:
            s.close()


def test_a_flood_from_one_address_cannot_starve_another(textfile: Path) -> None:
    """128 clients from one address need a worker (as wrong passwords do, for bcrypt): the
    flood gets 503 beyond its share, and a client from another address is queued and served;
    it used to get 503 because the flood had filled the whole queue."""
    app = GatedApp(textfile)
    options = ServerOptions(workers=1, queue_size=64, read_timeout=10.0)  # 4 jobs per address
    with running(app, options) as (_s, port):
        flood = []
        for _ in range(128):
            s = connect(port, "127.0.0.1")
            s.sendall(b"GET / HTTP/1.1\r\n\r\n")
            flood.append(s)
        assert app.entered.acquire(timeout=5)
        time.sleep(0.3)
        good = connect(port, "127.0.0.2")
        good.sendall(b"GET / HTTP/1.1\r\n\r\n")
        time.sleep(0.3)
        app.gate.set()
        assert status_of(good) == 200
        statuses = [status_of(s) for s in flood]
        assert statuses.count(200) == 4 and statuses.count(503) == 124
        for s in [good, *flood]:
            s.close()


def test_metrics_answers_share_the_cached_file_instead_of_copying_it(textfile: Path) -> None:
    app = App(TextfileCache(str(textfile)), 10, WebRuntime())
    req = parse_request(b"GET /metrics HTTP/1.1", Limits())
    gz = parse_request(b"GET /metrics HTTP/1.1\r\nAccept-Encoding: gzip", Limits())
    first = app.slow(req)
    snap = app.cache.lookup()
    assert snap is not None
    for resp, shared in ((first, snap.body), (app.fast(req), snap.body), (app.fast(gz), snap.gzip_prefix)):
        assert resp is not None
        body = resp.parts[0]
        assert isinstance(body, memoryview) and body.obj is shared  # a view of the one cached buffer
        assert sum(len(p) for p in resp.parts[1:]) < 300  # plus this request's age line


@pytest.mark.parametrize("failure", [RecursionError("maximum recursion depth exceeded"), MemoryError()])
def test_a_reload_runs_off_the_loop_and_any_failure_keeps_the_old_config(textfile: Path,
                                                                          failure: Exception) -> None:
    started, release = threading.Event(), threading.Event()
    logged: list[str] = []

    def reload() -> WebRuntime:
        started.set()
        release.wait(10)  # a reload that takes long: a big bcrypt cost, a slow disk, a huge file
        raise failure

    app = App(TextfileCache(str(textfile)), 10, WebRuntime())
    with running(app, ServerOptions(), reload_web=reload, log=logged.append) as (server, port):
        server.request_reload()
        assert started.wait(5)
        status, elapsed = timed_status(port)
        assert status == 200 and elapsed < 1.0, elapsed  # before: stalled until the reload ended
        release.set()
        deadline = time.monotonic() + 5
        while not logged and time.monotonic() < deadline:
            time.sleep(0.02)
        assert timed_status(port)[0] == 200  # still serving, with the old configuration
        server.request_reload()  # a later SIGHUP is served too
        deadline = time.monotonic() + 5
        while len(logged) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    name = type(failure).__name__
    why = f"{name}: {failure}" if str(failure) else name
    assert logged == [f"web configuration not reloaded, keeping the previous one: {why}"] * 2


def test_a_connection_whose_request_has_arrived_is_not_the_one_closed_for_room(textfile: Path) -> None:
    """On a loaded machine a flood can make a scrape the oldest connection before the loop has read
    its request: its bytes are there, so it is about to be served, and the next oldest makes room;
    and a connection accepted just now is never the one closed (its client may not have run yet)."""
    listener = bind("127.0.0.1:0")
    server = Server([listener], App(TextfileCache(str(textfile)), 10, WebRuntime()),
                    ServerOptions(read_timeout=5.0, max_connections=3))
    pairs = [socket.socketpair() for _ in range(3)]
    try:
        for ours, _peer in pairs:
            server._add(ours, "local")  # oldest first; the loop does not run, so nothing is read
        assert server._eviction_candidate() is None  # just accepted: each may still send its request
        for conn in server._conns.values():
            conn.since -= 1.0  # quiet for a second now
        pairs[0][1].sendall(b"GET /health HTTP/1.1\r\n\r\n")
        pairs[1][1].close()  # a peer that has gone: an end of stream is no request
        victim = server._eviction_candidate()
        assert victim is not None and victim.sock is pairs[1][0]
        pairs[2][1].sendall(b"GET / HTTP/1.1\r\n\r\n")
        server._close(victim)
        victim = server._eviction_candidate()  # every request here: the oldest still makes room
        assert victim is not None and victim.sock is pairs[0][0]
    finally:
        for ours, peer in pairs:
            ours.close()
            peer.close()
        listener.close()
