"""The agents' HTTP health probes: every probe of a run at once, under one total time budget.

Each probe is a plain HTTP/1.1 `GET` with `Connection: close` to an IP literal (config.Probe,
validated by probespec.py). It succeeds when the status line carries the expected status and the
headers end within the probe's own timeout, the run's budget, and MAX_HEAD bytes; the body is never
read. A hung agent (one that accepts and never answers, or drips a byte a second) costs the run at
most the budget: every socket is non-blocking and one poll loop waits for all of them, each
bounded by min(its timeout, the budget's end).

Imported only when some agent has a probe (the caller imports it lazily): nothing here is paid
for by a configuration without probes. It is built on `_socket` (the C module under `socket`) and
`select` rather than `socket`, `selectors`, threads or `http.client`. Measured with
time.perf_counter around the import, in a fresh interpreter that had imported the writer, bytecode
cached, median of 25 on a busy 2-CPU machine: this module with `_socket` about 1 ms (`select` is
already loaded by proc.py), `socket` 3 to 8 ms (enum, selectors), `socket` with threading 5 to
10 ms, `http.client` 20 to 40 ms (email's parser).
"""

from __future__ import annotations

import _socket
import errno
import os
import select
import time

from . import __version__
from .records import NamedTuple

TYPE_CHECKING = False  # typing, collections.abc: names for the type checker only
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from .config import Probe

MAX_HEAD = 16 * 1024
"""Bytes read of an answer at most: its status line and headers must end within them."""
TIMEOUT = "timeout"

_IN = select.POLLIN | select.POLLHUP | select.POLLERR
_OUT = select.POLLOUT | select.POLLHUP | select.POLLERR
_IN_PROGRESS = (errno.EINPROGRESS, errno.EALREADY, errno.EWOULDBLOCK)


class ProbeResult(NamedTuple):
    """One probe's outcome: `http_status` is None when no status line came (refused, timeout);
    `error` says why it failed in a few words, None on success."""

    success: bool
    duration_seconds: float
    http_status: int | None = None
    error: str | None = None


def run_probes(targets: Sequence[tuple[str, Probe]], budget_seconds: float,
               clock: Callable[[], float] = time.monotonic) -> dict[str, ProbeResult]:
    """{name: result} for every (name, probe) of targets, returning within budget_seconds (plus
    the few milliseconds of one poll round). A probe still going when its time is up is a failure
    with error "timeout"."""
    start = clock()
    end = start + max(budget_seconds, 0.0)
    results: dict[str, ProbeResult] = {}
    live: dict[int, _Exchange] = {}
    poller = select.poll()
    try:
        for name, probe in targets:
            now = clock()
            exchange = _Exchange(name, probe, now, min(now + probe.timeout_seconds, end))
            failed = exchange.connect()
            if failed is not None:
                results[name] = exchange.result(clock(), failed)
                exchange.close()
            else:
                live[exchange.fd] = exchange
                poller.register(exchange.fd, _OUT)
        while live:
            now = clock()
            for fd, exchange in list(live.items()):
                if now >= exchange.deadline:
                    results[exchange.name] = exchange.result(now, TIMEOUT)
                    _drop(poller, live, fd)
            if not live:
                break
            wait = min(e.deadline for e in live.values()) - now
            for fd, events in poller.poll(max(wait, 0.0) * 1000):
                exchange = live[fd]
                outcome = exchange.step(events)
                if outcome is _WRITTEN:
                    poller.modify(fd, _IN)
                elif outcome is not None:
                    results[exchange.name] = exchange.result(clock(), outcome)
                    _drop(poller, live, fd)
    finally:
        for exchange in live.values():
            exchange.close()
    return results


def _drop(poller: select.poll, live: dict[int, _Exchange], fd: int) -> None:
    poller.unregister(fd)
    live.pop(fd).close()


_WRITTEN = "written"  # step(): the request is out, now wait for the answer
_DONE = ""  # step(): the head is complete; result() judges it


class _Exchange:
    """One probe's connection: connect, send the request, read the head (status line and headers)."""

    __slots__ = ("buf", "deadline", "fd", "name", "probe", "request", "sent", "sock", "started", "writing")

    def __init__(self, name: str, probe: Probe, started: float, deadline: float) -> None:
        self.name = name
        self.probe = probe
        self.started = started
        self.deadline = deadline
        self.request = (f"GET {probe.path} HTTP/1.1\r\nHost: {probe.host}\r\n"
                        f"User-Agent: agent-exporter/{__version__}\r\nAccept: */*\r\nConnection: close\r\n\r\n"
                        ).encode("ascii")
        self.sent = 0
        self.writing = True
        self.buf = bytearray()
        self.sock: _socket.socket | None = None
        self.fd = -1

    def connect(self) -> str | None:
        """Start connecting; the reason when that already failed."""
        family = _socket.AF_INET6 if ":" in self.probe.address else _socket.AF_INET
        try:
            self.sock = _socket.socket(family, _socket.SOCK_STREAM)
            self.sock.setblocking(False)
            self.fd = self.sock.fileno()
            code = self.sock.connect_ex((self.probe.address, self.probe.port))
        except OSError as exc:
            return _reason(exc.errno)
        return None if code == 0 or code in _IN_PROGRESS else _reason(code)

    def step(self, events: int) -> str | None:
        """Act on poll's events: _WRITTEN, _DONE, a reason for failing, or None to wait on."""
        assert self.sock is not None  # only connected exchanges are polled
        try:
            if self.writing:
                code = self.sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_ERROR)
                if code:
                    return _reason(code)
                self.sent += self.sock.send(self.request[self.sent:])
                if self.sent < len(self.request):
                    return None
                self.writing = False
                return _WRITTEN
            data = self.sock.recv(MAX_HEAD - len(self.buf))
        except OSError as exc:
            return _reason(exc.errno)
        if not data:
            return "connection closed before the end of the headers"
        seen = max(len(self.buf) - 3, 0)
        self.buf += data
        if self.buf.find(b"\n\r\n", seen) >= 0 or self.buf.find(b"\n\n", seen) >= 0:
            return _DONE
        if len(self.buf) >= MAX_HEAD:
            return f"response headers longer than {MAX_HEAD} bytes"
        return None

    def result(self, now: float, outcome: str) -> ProbeResult:
        duration = max(now - self.started, 0.0)
        if outcome == TIMEOUT or not self.buf:
            return ProbeResult(False, duration, None, outcome)
        status = _status(self.buf)
        if status is None:
            return ProbeResult(False, duration, None, "not an HTTP response")
        if outcome != _DONE:
            return ProbeResult(False, duration, status, outcome)
        if status != self.probe.expect_status:
            return ProbeResult(False, duration, status, f"status {status}, expected {self.probe.expect_status}")
        return ProbeResult(True, duration, status, None)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def _status(head: bytearray) -> int | None:
    """The status code of an `HTTP/1.x NNN reason` line, or None when the answer is no HTTP."""
    line = bytes(head.split(b"\n", 1)[0]).rstrip(b"\r")
    version, _, rest = line.partition(b" ")
    code = rest[:3]
    if version not in (b"HTTP/1.0", b"HTTP/1.1") or len(code) != 3 or not code.isdigit():
        return None
    if rest[3:4] not in (b"", b" "):
        return None
    return int(code)


def _reason(code: int | None) -> str:
    """An errno in a few lower-case words: "connection refused", "network is unreachable"."""
    if code is None:
        return "socket error"
    text = os.strerror(code)
    return text[:1].lower() + text[1:]
