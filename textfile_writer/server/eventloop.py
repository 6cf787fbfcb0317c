"""The connection loop of `agent-exporter serve`: one epoll thread for I/O, a few workers for slow work.

The loop thread owns every socket. It accepts, does TLS handshakes without blocking, reads request
heads into per-connection buffers and writes responses; a connection that is idle, trickles bytes
or stalls a handshake costs a buffer and a deadline, never a thread, and is closed when its
deadline passes. A response goes out from its own chunks (http11.Response): /metrics from the
cached file's buffer, shared by every connection, so slow readers do not multiply memory.

Requests whose answer is cheap (a cached snapshot) are answered on the loop; the rest (a changed
file, a bcrypt check, the landing page) go to a few worker threads through a queue bounded in
total and per client address (fairqueue.py), and come back to the loop to be written. When there
is no room the request gets a 503. When `max_connections` are open, a new connection closes the
one that has gone longest without a request in progress (idle, unauthenticated, stalled in its
TLS handshake or its request head; failing those, the slowest reader), so a flood of idle or
reconnecting clients cannot keep a scrape out. Reloading the web configuration (SIGHUP) runs on a
thread of its own; the loop only swaps in the result.

Listeners come from `--web.listen-address` or, under systemd socket activation, from fd 3 on.
"""

from __future__ import annotations

import collections
import errno
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..defaults import split_listen_address
from ..errors import AgentExporterError, ServeError, UsageError
from .fairqueue import FairQueue, address_key
from .http11 import Chunk, HttpError, Limits, Request, Response, http_date, parse_request, serialize, text_response
from .routes import App
from .webconfig import WebRuntime

SD_LISTEN_FDS_START = 3
_EPOLLIN = select.EPOLLIN
_EPOLLOUT = select.EPOLLOUT
_TICK = 0.25
_RECV = 65536
_IOV = 16  # buffers per sendmsg; a response has at most three
# The kernel's send buffer per connection, which autotuning would grow to megabytes (tcp_wmem): with
# the body shared in user space, this is what a slow reader costs. 256 KiB still moves a 2 MB
# scrape in well under a second at a 100 ms round trip.
_SNDBUF = 256 * 1024
_PLAIN_TO_TLS = (b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
                 b"Connection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")

# connection states
_HANDSHAKE, _READ, _BUSY, _WRITE, _DRAIN, _CLOSED = range(6)
# At max_connections these make room first: no request of theirs is being answered.
_WAITING = frozenset({_HANDSHAKE, _READ, _DRAIN})
_PEEK_LIMIT = 64  # connections looked at for arrived bytes per eviction: one syscall each
# A waiting connection makes room only once it has been quiet this long: a client just accepted
# on a loaded machine may need that long to send its request. It also bounds a reconnecting
# flood's churn to max_connections per _QUIET.
_QUIET = 0.25


@dataclass(frozen=True)
class ServerOptions:
    read_timeout: float = 5.0  # a request head (or a TLS handshake, or a keep-alive wait) must finish in this
    write_timeout: float = 10.0
    workers: int = 4
    queue_size: int = 64
    per_address: int = 4  # jobs one client address may have queued or running on the workers
    max_connections: int = 1000
    shutdown_grace: float = 5.0
    limits: Limits = field(default_factory=Limits)


class _Conn:
    __slots__ = ("buf", "deadline", "events", "fd", "keep_alive", "key", "out", "out_at", "since", "sock", "state",
                 "tls")

    def __init__(self, sock: socket.socket, tls: bool, state: int, deadline: float, key: str) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.tls = tls
        self.state = state
        self.deadline = deadline
        self.since = time.monotonic()  # accepted, or last answered: its place in the eviction order
        self.key = key  # the client's address, for the workers' per-address bound
        self.buf = bytearray()
        self.out: list[Chunk] = []  # the response being sent, from out[out_at] on
        self.out_at = 0
        self.keep_alive = False
        self.events = -1  # -1: not registered with epoll


def _has_input(sock: socket.socket) -> bool:
    """Bytes have arrived on `sock` and wait to be read (not an end of stream, not an error)."""
    try:
        # the plain socket's recv, also for a TLS socket: a peek at the raw bytes consumes nothing
        return bool(socket.socket.recv(sock, 1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except OSError:
        return False


def _ssl_would_block(exc: OSError) -> bool:
    import ssl

    return isinstance(exc, (ssl.SSLWantReadError, ssl.SSLWantWriteError))


class Server:
    def __init__(self, listeners: Sequence[socket.socket], app: App, options: ServerOptions | None = None,
                 reload_web: Callable[[], WebRuntime] | None = None,
                 log: Callable[[str], None] = lambda message: None,
                 access_log: Callable[[str], None] | None = None) -> None:
        self._listeners = {s.fileno(): s for s in listeners}
        self._app = app
        self._options = options or ServerOptions()
        self._reload_web = reload_web
        self._log = log
        self._access_log = access_log
        # In order of last activity (accepted, or a response finished): the first is the oldest.
        self._conns: dict[int, _Conn] = {}
        self._jobs: FairQueue[tuple[_Conn, Request]] = FairQueue(self._options.queue_size,
                                                                 self._options.per_address)
        self._done: collections.deque[tuple[_Conn, Request, Response]] = collections.deque()
        self._reloading = False
        self._reloaded: collections.deque[WebRuntime | str] = collections.deque()  # a result or why not
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._ep = select.epoll()
        self._stop_requested = False
        self._reload_requested = False
        self._stopping = False
        self._accepting = False
        self._resume_at = 0.0
        self._date_second = -1
        self._date = ""
        self._workers: list[threading.Thread] = []

    # --- thread- and signal-safe controls -----------------------------------------------------

    def stop(self) -> None:
        self._stop_requested = True
        self._wake()

    def request_reload(self) -> None:
        self._reload_requested = True
        self._wake()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass  # full: a wake-up is already pending

    # --- the loop -------------------------------------------------------------------------------

    def serve_forever(self) -> None:
        """Run until stop(); then finish the responses in flight (up to shutdown_grace) and return."""
        for s in self._listeners.values():
            s.setblocking(False)
        self._ep.register(self._wake_r.fileno(), _EPOLLIN)
        self._set_accepting(True)
        for i in range(self._options.workers):
            t = threading.Thread(target=self._work, name=f"agent-exporter-worker-{i}", daemon=True)
            t.start()
            self._workers.append(t)
        grace_end = 0.0
        next_tick = time.monotonic() + _TICK
        try:
            while True:
                now = time.monotonic()
                if self._stopping and (not self._conns or now >= grace_end):
                    break
                events = self._ep.poll(max(0.0, next_tick - now))
                ready: list[socket.socket] = []
                for fd, ev in events:
                    conn = self._conns.get(fd)
                    if conn is not None:
                        try:
                            self._on_event(conn, ev)
                        except Exception as exc:  # a bug must cost one connection, not the server
                            self._log(f"internal error on a connection: {exc!r}")
                            self._close(conn)
                    elif fd in self._listeners:
                        ready.append(self._listeners[fd])
                    elif fd == self._wake_r.fileno():
                        self._on_wake()
                # Accept last: what has arrived on open connections is read before any of them is
                # closed to make room (and before a closed one's fd can be reused in this batch).
                for listener in ready:
                    self._accept(listener)
                if self._stop_requested and not self._stopping:
                    self._begin_shutdown()
                    grace_end = time.monotonic() + self._options.shutdown_grace
                if self._reload_requested and not self._reloading:
                    self._reload_requested = False
                    self._start_reload()
                now = time.monotonic()
                if now >= next_tick:
                    next_tick = now + _TICK
                    self._tick(now)
        finally:
            self._close_all()

    def _on_event(self, conn: _Conn, ev: int) -> None:
        state = conn.state
        if state == _READ:
            self._read(conn)
        elif state == _WRITE:
            self._write(conn)
            if conn.state == _READ:
                self._serve_buffered(conn)
        elif state == _HANDSHAKE:
            self._handshake(conn)
        elif state == _DRAIN:
            self._drain(conn)

    def _on_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except OSError:
            pass
        while self._reloaded:
            self._apply_reload(self._reloaded.popleft())
        while self._done:
            conn, req, resp = self._done.popleft()
            if conn.state != _BUSY:
                continue
            conn.state = _READ
            try:
                self._respond(conn, req, resp)
                if conn.state == _READ:
                    self._serve_buffered(conn)
            except Exception as exc:  # a bug must cost one connection, not the server
                self._log(f"internal error on a connection: {exc!r}")
                self._close(conn)

    def _tick(self, now: float) -> None:
        for conn in list(self._conns.values()):
            if conn.state != _BUSY and conn.deadline <= now:
                self._close(conn, abort=conn.state == _WRITE)
        self._resume_accepting(now)

    # --- accepting --------------------------------------------------------------------------------

    def _resume_accepting(self, now: float) -> None:
        """Accept again once a pause has passed and there is room for another connection."""
        if not self._accepting and not self._stopping and now >= self._resume_at \
                and (len(self._conns) < self._options.max_connections or self._eviction_candidate() is not None):
            self._set_accepting(True)

    def _set_accepting(self, on: bool) -> None:
        if on == self._accepting:
            return
        for fd in self._listeners:
            if on:
                self._ep.register(fd, _EPOLLIN)
            else:
                self._ep.unregister(fd)
        self._accepting = on

    def _accept(self, listener: socket.socket) -> None:
        for _ in range(64):
            room_from = None
            if len(self._conns) >= self._options.max_connections:
                room_from = self._eviction_candidate()
                if room_from is None:
                    self._set_accepting(False)
                    return
            try:
                sock, addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._log(f"cannot accept a connection: {exc.strerror}; pausing for {_TICK}s")
                    self._set_accepting(False)
                    self._resume_at = time.monotonic() + _TICK
                    return
                continue  # ECONNABORTED and the like: that client is gone
            if room_from is not None:  # only now that there is someone to make room for
                self._close(room_from, abort=True)
            self._add(sock, address_key(sock.family, addr))

    def _eviction_candidate(self) -> _Conn | None:
        """The connection to close for a new one at max_connections: the one that has waited
        longest with no request being answered (idle, unauthenticated, in its TLS handshake or
        its request head), failing any, the one that has been reading its response longest;
        None when every connection has a request on a worker or is younger than _QUIET. Oldest
        first, passing over (up to _PEEK_LIMIT) those whose request has arrived but is not read
        yet: a fresh scrape sends its request at once and is answered in milliseconds, but on a
        loaded machine a flood of newer connections can make it the oldest before the loop reads it."""
        reading = arrived = None
        peeks = 0
        young = time.monotonic() - _QUIET
        for conn in self._conns.values():
            if conn.state in _WAITING:
                if conn.since > young:  # and so is every later one: the order is by `since`
                    break
                # A request whose bytes are already here is about to be served, not idle: on a
                # loaded machine a flood can otherwise turn the table over before the loop reads it.
                if conn.state != _DRAIN and peeks < _PEEK_LIMIT:
                    peeks += 1
                    if _has_input(conn.sock):
                        arrived = arrived or conn
                        continue
                return conn
            if reading is None and conn.state == _WRITE:
                reading = conn
        return reading or arrived

    def _add(self, sock: socket.socket, key: str) -> None:
        try:
            sock.setblocking(False)
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                # Small responses on keep-alive connections must not wait for Nagle.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SNDBUF)
        except OSError:  # the peer is already gone
            sock.close()
            return
        deadline = time.monotonic() + self._options.read_timeout
        tls = self._app.tls
        if tls is not None:
            try:
                sock = tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            except OSError:
                sock.close()
                return
            conn = _Conn(sock, True, _HANDSHAKE, deadline, key)
        else:
            conn = _Conn(sock, False, _READ, deadline, key)
        self._conns[conn.fd] = conn
        self._set_events(conn, _EPOLLIN)

    # --- per connection ---------------------------------------------------------------------------

    def _set_events(self, conn: _Conn, events: int) -> None:
        if conn.events == events:
            return
        if conn.events == -1:
            self._ep.register(conn.fd, events)
        else:
            self._ep.modify(conn.fd, events)
        conn.events = events

    def _unregister(self, conn: _Conn) -> None:
        if conn.events != -1:
            try:
                self._ep.unregister(conn.fd)
            except OSError:
                pass
            conn.events = -1

    def _handshake(self, conn: _Conn) -> None:
        import ssl

        sock: Any = conn.sock
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            self._set_events(conn, _EPOLLIN)
            return
        except ssl.SSLWantWriteError:
            self._set_events(conn, _EPOLLOUT)
            return
        except ssl.SSLError as exc:
            if self._access_log is not None:
                self._access_log(f"TLS handshake failed: {exc.reason or exc}")
            if exc.reason == "HTTP_REQUEST":  # say so in plain text, as Go's servers do
                try:
                    os.write(conn.fd, _PLAIN_TO_TLS)
                    socket.socket.shutdown(conn.sock, socket.SHUT_WR)
                except OSError:
                    self._close(conn)
                    return
                self._start_drain(conn)
                return
            self._close(conn)
            return
        except OSError:
            self._close(conn)
            return
        conn.state = _READ
        self._set_events(conn, _EPOLLIN)
        self._read(conn)

    def _read(self, conn: _Conn) -> None:
        sock, buf, cap = conn.sock, conn.buf, self._options.limits.max_head
        try:
            while len(buf) <= cap:
                chunk = sock.recv(_RECV)
                if not chunk:
                    self._close(conn)
                    return
                buf += chunk
                # A plain socket gave all it had; TLS may hold more decrypted data that epoll
                # cannot see, so drain it until it says it would block.
                if not conn.tls and len(chunk) < _RECV:
                    break
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as exc:
            if not (conn.tls and _ssl_would_block(exc)):
                self._close(conn)
                return
        self._serve_buffered(conn)

    def _serve_buffered(self, conn: _Conn) -> None:
        limits = self._options.limits
        while conn.state == _READ:
            buf = conn.buf
            while buf.startswith(b"\r\n"):  # RFC 9112 2.2: ignore blank lines before a request
                del buf[:2]
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self._check_incomplete(conn)
                return
            head = bytes(buf[:end])
            del buf[:end + 4]
            try:
                req = parse_request(head, limits)
            except HttpError as exc:
                self._respond(conn, None, text_response(exc.status, exc.reason, close=True))
                return
            try:
                resp = self._app.fast(req)
            except Exception as exc:  # a bug must cost one request, not the server
                self._log(f"internal error answering {req.method} {req.path}: {exc!r}")
                resp = text_response(500, "internal server error", close=True)
            if resp is None:
                self._dispatch(conn, req)
                return
            self._respond(conn, req, resp)

    def _check_incomplete(self, conn: _Conn) -> None:
        limits, buf = self._options.limits, conn.buf
        first = buf.find(b"\r\n")
        if (first < 0 and len(buf) > limits.max_request_line) or first > limits.max_request_line:
            self._respond(conn, None, text_response(414, "request line too long", close=True))
        elif len(buf) > limits.max_head:
            self._respond(conn, None, text_response(431, "request headers too large", close=True))
        elif b"\n\n" in buf or b"\n\r\n" in buf:
            self._respond(conn, None, text_response(400, "line ends must be CRLF", close=True))

    def _dispatch(self, conn: _Conn, req: Request) -> None:
        self._unregister(conn)  # the worker has it; no events until it comes back
        conn.state = _BUSY
        if not self._jobs.put(conn.key, (conn, req)):
            conn.state = _READ
            self._respond(conn, req, text_response(503, "server busy, try again", (("Retry-After", "1"),),
                                                   close=True))

    def _respond(self, conn: _Conn, req: Request | None, resp: Response) -> None:
        keep = (req is not None and req.keep_alive and not req.has_body and not resp.close
                and not self._stopping)
        now = int(time.time())
        if now != self._date_second:
            self._date_second, self._date = now, http_date(now)
        chunks = serialize(resp, req is not None and req.method == "HEAD", keep,
                           req.version if req is not None else "HTTP/1.1", self._date, self._app.headers)
        if self._access_log is not None:
            what = f"{req.method} {req.target} {req.version}" if req is not None else "(bad request)"
            self._access_log(f"{what} -> {resp.status} {resp.length} bytes")
        conn.keep_alive = keep
        conn.out, conn.out_at = list(chunks), 0
        conn.state = _WRITE
        conn.deadline = time.monotonic() + self._options.write_timeout
        self._write(conn)

    def _write(self, conn: _Conn) -> None:
        """Send what the socket takes now; the chunks are sent from where they lie (a partly sent
        one is narrowed by a memoryview, never copied), so a slow reader holds no copy of a body."""
        out = conn.out
        while conn.out_at < len(out):
            try:
                if conn.tls:
                    n = conn.sock.send(out[conn.out_at])
                else:
                    n = conn.sock.sendmsg(out[conn.out_at:conn.out_at + _IOV])
            except (BlockingIOError, InterruptedError):
                self._set_events(conn, _EPOLLOUT)
                return
            except OSError as exc:
                if not (conn.tls and _ssl_would_block(exc)):
                    self._close(conn)
                    return
                self._set_events(conn, _EPOLLOUT)
                return
            at = conn.out_at
            while n:
                size = len(out[at])
                if n < size:
                    out[at] = memoryview(out[at])[n:]
                    break
                n -= size
                at += 1
            conn.out_at = at
        conn.out, conn.out_at = [], 0
        if conn.keep_alive:
            conn.state = _READ
            conn.deadline = time.monotonic() + self._options.read_timeout
            # Active just now: to the end of the eviction order.
            conn.since = time.monotonic()
            del self._conns[conn.fd]
            self._conns[conn.fd] = conn
            self._set_events(conn, _EPOLLIN)
        else:
            self._half_close(conn)

    def _half_close(self, conn: _Conn) -> None:
        """Send FIN, then read and discard until the peer closes: closing with unread input
        would send a reset that can destroy the response before the client reads it."""
        if conn.tls:
            try:
                sock: Any = conn.sock
                sock.unwrap()  # sends close_notify; the peer's own may never come
            except (OSError, ValueError):
                pass
        try:
            socket.socket.shutdown(conn.sock, socket.SHUT_WR)
        except OSError:
            self._close(conn)
            return
        self._start_drain(conn)

    def _start_drain(self, conn: _Conn) -> None:
        """Our side is shut: read and drop what the peer still sends, for a second at most."""
        conn.state = _DRAIN
        conn.buf.clear()
        conn.deadline = time.monotonic() + min(1.0, self._options.read_timeout)
        self._set_events(conn, _EPOLLIN)

    def _drain(self, conn: _Conn) -> None:
        try:
            for _ in range(16):
                if not socket.socket.recv(conn.sock, _RECV):  # raw bytes: TLS is over
                    break
            else:
                return
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self._close(conn)

    def _close(self, conn: _Conn, abort: bool = False) -> None:
        """Close; `abort` resets the connection instead, for one dropped mid-response: a plain
        close would leave the kernel sending what it still buffers, at the slow reader's pace."""
        if conn.state == _CLOSED:
            return
        if abort:
            try:
                conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        self._unregister(conn)
        conn.state = _CLOSED
        if self._conns.get(conn.fd) is conn:
            del self._conns[conn.fd]
        try:
            conn.sock.close()
        except OSError:
            pass
        self._resume_accepting(time.monotonic())

    # --- workers ------------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            key, (conn, req) = job
            try:
                resp = self._app.slow(req)
            except Exception as exc:  # a bug must cost one request, not a worker
                self._log(f"internal error answering {req.method} {req.path}: {exc!r}")
                resp = text_response(500, "internal server error", close=True)
            finally:
                self._jobs.done(key)
            self._done.append((conn, req, resp))
            self._wake()

    # --- reload and shutdown --------------------------------------------------------------------------

    def _start_reload(self) -> None:
        """Read and check the web configuration on a thread of its own: parsing YAML, loading
        certificates and hashing the dummy bcrypt password take from milliseconds to seconds,
        which on the loop would stall every client. A SIGHUP during a reload is served after it."""
        if self._reload_web is None:
            return
        self._reloading = True
        threading.Thread(target=self._reload, name="agent-exporter-reload", daemon=True).start()

    def _reload(self) -> None:
        assert self._reload_web is not None
        outcome: WebRuntime | str
        try:
            outcome = self._reload_web()
        except AgentExporterError as exc:
            outcome = str(exc)
        except Exception as exc:  # RecursionError, MemoryError...: the old configuration keeps serving
            said = str(exc)
            outcome = f"{type(exc).__name__}: {said}" if said else type(exc).__name__
        self._reloaded.append(outcome)
        self._wake()

    def _apply_reload(self, outcome: WebRuntime | str) -> None:
        self._reloading = False
        if isinstance(outcome, str):
            self._log(f"web configuration not reloaded, keeping the previous one: {_one_line(outcome)}")
            return
        self._app.use_web(outcome)
        self._log("web configuration reloaded")

    def _begin_shutdown(self) -> None:
        self._stopping = True
        self._set_accepting(False)
        for s in self._listeners.values():
            s.close()
        for conn in list(self._conns.values()):
            if conn.state in (_HANDSHAKE, _READ, _DRAIN):
                self._close(conn)
            else:
                conn.keep_alive = False

    def _close_all(self) -> None:
        for conn in list(self._conns.values()):
            self._close(conn)
        self._jobs.close()
        deadline = time.monotonic() + 1.0
        for t in self._workers:
            t.join(max(0.0, deadline - time.monotonic()))
        for s in self._listeners.values():
            s.close()
        self._ep.close()
        self._wake_r.close()
        self._wake_w.close()


def _one_line(message: str, limit: int = 300) -> str:
    """A log line, whatever an exception said: its first line, cut to `limit` characters."""
    line = message.strip().splitlines()[0] if message.strip() else "(no message)"
    return line if len(line) <= limit else line[:limit] + "…"


# --- listeners ----------------------------------------------------------------------------------------

def parse_listen_address(address: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or `:port` (every interface) -> (host, port)."""
    try:
        return split_listen_address(address)
    except ValueError as exc:  # a bad value on the command line: exit 2, as every bad value
        raise UsageError(f"--web.listen-address {address!r}: {exc}") from None


def bind(address: str, backlog: int = 1024) -> socket.socket:
    host, port = parse_listen_address(address)
    try:
        if host == "":
            if socket.has_dualstack_ipv6():
                return socket.create_server(("", port), family=socket.AF_INET6, backlog=backlog,
                                            dualstack_ipv6=True)
            return socket.create_server(("", port), backlog=backlog)
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, _type, _proto, _canon, sockaddr = infos[0]
        return socket.create_server(sockaddr[:2], family=family, backlog=backlog)
    except socket.gaierror as exc:
        raise ServeError(f"cannot listen on {address}: {exc.strerror}") from None
    except OSError as exc:
        # socket.create_server rewords the error ("error while attempting to bind on address (…)"):
        # the errno's own words, as every other error of ours says them.
        why = os.strerror(exc.errno).lower() if exc.errno else str(exc)
        hint = " (another program has it: choose another with --web.listen-address)" \
            if exc.errno == errno.EADDRINUSE else ""
        raise ServeError(f"cannot listen on {address}: {why}{hint}") from None


def activated_sockets(environ: Mapping[str, str]) -> list[socket.socket] | None:
    """systemd socket activation: the sockets passed from fd 3 on, or None when not activated."""
    pid, count = environ.get("LISTEN_PID"), environ.get("LISTEN_FDS")
    if not pid or not count or pid.strip() != str(os.getpid()):
        return None
    if not count.isdigit() or int(count) < 1:
        raise ServeError(f"LISTEN_FDS={count!r}: expected a positive number of sockets")
    socks = []
    for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + int(count)):
        try:
            s = socket.socket(fileno=fd)
        except OSError as exc:
            raise ServeError(f"socket activation: fd {fd} is not a socket: {exc.strerror}") from None
        if s.type != socket.SOCK_STREAM or not s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            raise ServeError(f"socket activation: fd {fd} is not a listening stream socket "
                             "(the .socket unit needs ListenStream= and Accept=no)")
        os.set_inheritable(fd, False)
        socks.append(s)
    return socks


def describe(sock: socket.socket) -> str:
    addr = sock.getsockname()
    if isinstance(addr, tuple):
        host = addr[0]
        return f"[{host}]:{addr[1]}" if ":" in host else f"{host}:{addr[1]}"
    return str(addr) or "(unnamed socket)"
