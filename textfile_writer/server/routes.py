"""What `agent-exporter serve` answers: /metrics, /health, the landing page, and refusals.

`fast` answers on the connection loop what costs microseconds (a cached snapshot, a stat, a
refusal) and returns None for the rest, which `slow` answers on a worker thread: reading a changed
file, a bcrypt check, rendering the page. Paths are compared as raw strings to a fixed set; no
part of a request ever reaches the filesystem.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from .. import __version__
from ..defaults import STALE_FACTOR
from ..errors import TextfileUnavailable
from .filecache import Snapshot, TextfileCache
from .http11 import Request, Response, accepts_gzip, text_response
from .landing import CONTENT_SECURITY_POLICY, format_duration, render_page
from .webconfig import WebRuntime

if TYPE_CHECKING:
    import ssl

METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# How far ahead of our clock a file's mtime (or its last-success timestamp) may be before it is
# called "future": the writer runs on this host, so any real skew is a clock jump or a planted
# file; the second absorbs timestamps rounded up and a remote filesystem's clock.
FUTURE_TOLERANCE = 1.0
_ROUTES = frozenset({"/", "/metrics", "/health"})
_KNOWN_METHODS = frozenset({"POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"})
_COMMON = (("X-Content-Type-Options", "nosniff"),)
_UNAUTHORIZED = text_response(401, "Unauthorized", (("WWW-Authenticate", 'Basic realm="agent-exporter"'),))


class App:
    def __init__(self, cache: TextfileCache, interval_seconds: float, web: WebRuntime,
                 clock: Callable[[], float] = time.time) -> None:
        self.cache = cache
        self.interval_seconds = interval_seconds
        self.stale_after = STALE_FACTOR * interval_seconds
        self._web = web  # replaced whole by use_web; read once per request
        self.clock = clock

    def use_web(self, web: WebRuntime) -> None:
        """Apply a reloaded web configuration to the requests and connections that follow."""
        self._web = web

    @property
    def tls(self) -> ssl.SSLContext | None:
        """The context new connections are wrapped in (None: plain HTTP)."""
        return self._web.tls

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        """The configured headers, added to every response."""
        return self._web.headers

    def _authorized(self, req: Request, verify: bool) -> bool | None:
        """True: let the request through; False: 401; None: only a bcrypt check can tell, and
        `verify` was False (the loop must not run one)."""
        auth = self._web.auth
        if auth is None:
            return True
        header = req.header("authorization")
        verdict = auth.known_good(header)
        return auth.verify(header) if verdict is None and verify else verdict

    def fast(self, req: Request) -> Response | None:
        authorized = self._authorized(req, verify=False)
        if authorized is None:
            return None
        if not authorized:
            return _UNAUTHORIZED
        refusal = self._refusal(req)
        if refusal is not None:
            return refusal
        if req.path == "/":
            return None
        try:
            snap = self.cache.lookup()
        except TextfileUnavailable as exc:
            return self._missing(req, str(exc))
        if snap is None:
            return None
        return self._answer(req, snap)

    def slow(self, req: Request) -> Response:
        if not self._authorized(req, verify=True):
            return _UNAUTHORIZED
        refusal = self._refusal(req)
        if refusal is not None:
            return refusal
        try:
            snap: Snapshot | None = self.cache.load()
            problem = None
        except TextfileUnavailable as exc:
            snap, problem = None, str(exc)
        if req.path == "/":
            return self._landing(snap, problem)
        if snap is None:
            return self._missing(req, str(problem))
        return self._answer(req, snap)

    def _refusal(self, req: Request) -> Response | None:
        if req.method not in ("GET", "HEAD"):
            if req.method in _KNOWN_METHODS:
                return text_response(405, "method not allowed", (("Allow", "GET, HEAD"),), close=req.has_body)
            return text_response(501, "method not implemented", close=req.has_body)
        if req.path not in _ROUTES:
            return text_response(404, "404 page not found", close=req.has_body)
        return None

    def _answer(self, req: Request, snap: Snapshot) -> Response:
        now = self.clock()
        if req.path == "/metrics":
            if accepts_gzip(req.header("accept-encoding")):
                return Response(200, (("Content-Type", METRICS_TYPE), ("Content-Encoding", "gzip"),
                                      ("Vary", "Accept-Encoding"), *_COMMON), snap.gzip_parts(now))
            return Response(200, (("Content-Type", METRICS_TYPE), ("Vary", "Accept-Encoding"), *_COMMON),
                            snap.plain_parts(now))
        return self._health(snap, now)

    def _verdict(self, snap: Snapshot, now: float) -> tuple[str, str | None]:
        """("ok" | "stale" | "future", what is wrong for people): the one rule /health and the
        landing page share. A future file is never ok: a clock that jumped back (or a planted
        mtime) would otherwise report age 0 while the writer is dead."""
        age = snap.age(now)
        last = snap.summary.last_success
        ahead = max(-age, 0.0 if last is None else last - now)
        if ahead > FUTURE_TOLERANCE:
            return "future", (f"The textfile is dated {format_duration(ahead)} in the future: this host's "
                              "clock jumped back or the file's time was set ahead, so its age says "
                              "nothing about whether the writer runs.")
        since_success = None if last is None else now - last
        if age > self.stale_after or (since_success is not None and since_success > self.stale_after):
            return "stale", (f"The textfile is stale: last changed {format_duration(age)} ago, more than "
                             f"{format_duration(self.stale_after)} (3 times the writer's interval). "
                             "Is the writer's timer running?")
        return "ok", None

    def _health(self, snap: Snapshot, now: float) -> Response:
        age = snap.age(now)
        last = snap.summary.last_success
        status, problem = self._verdict(snap, now)
        body = {
            "status": status,
            "textfile": snap.path,
            "age_seconds": round(age, 3),
            "last_success_timestamp_seconds": last,
            "seconds_since_last_success": None if last is None else round(now - last, 3),
            "stale_after_seconds": self.stale_after,
            "agents_running": _int(snap.summary.scalars.get("agents_running_total")),
            "agents_total": _int(snap.summary.scalars.get("agents_total")),
        }
        if problem is not None:
            body["error"] = problem
        return _json(200 if status == "ok" else 503, body)

    def _missing(self, req: Request, reason: str) -> Response:
        if req.path == "/health":
            return _json(503, {"status": "missing", "textfile": self.cache.path, "error": reason,
                               "stale_after_seconds": self.stale_after})
        return text_response(503, reason, _COMMON)

    def _landing(self, snap: Snapshot | None, problem: str | None) -> Response:
        now = self.clock()
        age = None if snap is None else snap.age(now)
        if problem is None and snap is not None:
            problem = self._verdict(snap, now)[1]
        page = render_page(None if snap is None else snap.summary, textfile=self.cache.path,
                           age_seconds=age, stale_after=self.stale_after, problem=problem,
                           version=f"agent-exporter {__version__}", now=now)
        return Response(200, (("Content-Type", "text/html; charset=utf-8"),
                              ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
                              ("X-Frame-Options", "deny"), ("Referrer-Policy", "no-referrer"),
                              ("Cache-Control", "no-store"), *_COMMON), page)


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


def _json(status: int, body: Mapping[str, object]) -> Response:
    return Response(status, (("Content-Type", "application/json"), ("Cache-Control", "no-store"), *_COMMON),
                    (json.dumps(body, separators=(",", ":")) + "\n").encode())
