"""The server's HTTP/1.1 wire format: strict request parsing, exact response bytes."""

from __future__ import annotations

import time
from email.utils import formatdate

import pytest

from textfile_writer.server.http11 import (
    HttpError,
    Limits,
    Response,
    accepts_gzip,
    http_date,
    parse_request,
    serialize,
    text_response,
)

L = Limits()


def parse(head: bytes, limits: Limits = L):  # type: ignore[no-untyped-def]
    return parse_request(head, limits)


def status_of(head: bytes, limits: Limits = L) -> int:
    with pytest.raises(HttpError) as info:
        parse_request(head, limits)
    return info.value.status


def test_a_prometheus_scrape_parses() -> None:
    req = parse(b"GET /metrics?x=1 HTTP/1.1\r\nHost: 127.0.0.1:9200\r\nUser-Agent: Prometheus/2.45.3\r\n"
                b"Accept-Encoding: gzip\r\nX-Prometheus-Scrape-Timeout-Seconds: 10")
    assert (req.method, req.target, req.path, req.version) == ("GET", "/metrics?x=1", "/metrics", "HTTP/1.1")
    assert req.header("accept-encoding") == "gzip"
    assert req.header("x-prometheus-scrape-timeout-seconds") == "10"
    assert req.keep_alive and not req.has_body


@pytest.mark.parametrize(("version", "connection", "keep"), [
    ("HTTP/1.1", None, True), ("HTTP/1.1", "close", False), ("HTTP/1.1", "Keep-Alive, Close", False),
    ("HTTP/1.0", None, False), ("HTTP/1.0", "keep-alive", True), ("HTTP/1.2", None, True),
])
def test_keep_alive_follows_the_version_and_connection_header(version: str, connection: str | None,
                                                              keep: bool) -> None:
    head = f"GET / {version}".encode() + (f"\r\nConnection: {connection}".encode() if connection else b"")
    assert parse(head).keep_alive is keep


def test_absolute_form_targets_use_their_path() -> None:
    assert parse(b"GET http://example.invalid:9200/metrics?a HTTP/1.1").path == "/metrics"
    assert parse(b"GET http://example.invalid HTTP/1.1").path == "/"


def test_paths_are_never_decoded_or_normalised() -> None:
    for target in (b"/../metrics", b"/%6Detrics", b"/metrics/../health", b"//metrics", b"/./metrics"):
        assert parse(b"GET " + target + b" HTTP/1.1").path == target.decode()


@pytest.mark.parametrize("head", [
    b"GET /metrics",  # HTTP/0.9
    b"GET  /metrics HTTP/1.1",
    b"GET /metrics HTTP/1.1 extra",
    b"GET /met rics HTTP/1.1",
    b"GET /metrics\x00 HTTP/1.1",
    b"GET /m\xe9trics HTTP/1.1",
    b"GET /metrics HTTP/1.1\rX: y",  # a bare CR smuggled into the request line
    b"GET /metrics\nX: y HTTP/1.1",
    b"G(T /metrics HTTP/1.1",
    b"GET /metrics HTTP/x.1",
    b"GET /metrics http/1.1",
    b"GET /metrics HTTP/1.1\r\n folded: header",
    b"GET /metrics HTTP/1.1\r\nHost : x",
    b"GET /metrics HTTP/1.1\r\nNoColon",
    b"GET /metrics HTTP/1.1\r\n: empty-name",
    b"GET /metrics HTTP/1.1\r\nX-A: a\nX-B: b",
    b"GET /metrics HTTP/1.1\r\nX-A: a\rb",
    b"GET /metrics HTTP/1.1\r\nX-A: a\x00b",
    b"GET /metrics HTTP/1.1\r\nHost: a\r\nHost: b",
    b"GET /metrics HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1",
    b"GET /metrics HTTP/1.1\r\nContent-Length: -1",
    b"GET /metrics HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked",
    b"GET /metrics HTTP/1.1\r\nAuthorization: Basic a\r\nAuthorization: Basic b",
])
def test_malformed_requests_are_400(head: bytes) -> None:
    assert status_of(head) == 400


def test_http2_and_later_is_505() -> None:
    assert status_of(b"GET /metrics HTTP/2.0") == 505


def test_limits() -> None:
    small = Limits(max_request_line=64, max_header_bytes=128, max_headers=3)
    assert status_of(b"GET /" + b"a" * 64 + b" HTTP/1.1", small) == 414
    assert status_of(b"GET / HTTP/1.1\r\nX: " + b"a" * 130, small) == 431
    assert status_of(b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4", small) == 431
    assert parse(b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3", small).header("c") == "3"


def test_repeated_ordinary_headers_are_joined() -> None:
    req = parse(b"GET / HTTP/1.1\r\nAccept: a\r\nAccept: b")
    assert req.header("accept") == "a, b"


def test_bodies_are_noticed() -> None:
    assert parse(b"POST / HTTP/1.1\r\nContent-Length: 5").has_body
    assert parse(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked").has_body
    assert not parse(b"GET / HTTP/1.1\r\nContent-Length: 0").has_body


@pytest.mark.parametrize(("value", "ok"), [
    (None, False), ("", False), ("gzip", True), ("deflate, gzip;q=0.5", True), ("gzip;q=0", False),
    ("identity", False), ("*", True), ("*;q=0", False), ("gzip;q=0, *", False), ("br, *;q=0.1", True),
    ("GZIP", True), ("x-gzip", True), ("gzip;q=nonsense", False),
])
def test_accepts_gzip(value: str | None, ok: bool) -> None:
    assert accepts_gzip(value) is ok


def test_serialize_exact_bytes() -> None:
    resp = Response(200, (("Content-Type", "text/plain"), ("X-Frame-Options", "sameorigin")), b"hello\n")
    out = serialize(resp, head_only=False, keep_alive=True, version="HTTP/1.1", date="D",
                    extra=(("X-Frame-Options", "deny"),))
    assert out == (b"HTTP/1.1 200 OK\r\nDate: D\r\nContent-Type: text/plain\r\nX-Frame-Options: deny\r\n"
                   b"Content-Length: 6\r\n\r\nhello\n",)  # a small body goes out with its head


def test_serialize_head_close_and_http10() -> None:
    resp = text_response(404, "404 page not found")
    (head,) = serialize(resp, head_only=True, keep_alive=False, version="HTTP/1.1", date="D")
    assert head.endswith(b"Content-Length: 19\r\nConnection: close\r\n\r\n")
    (keep10,) = serialize(resp, head_only=False, keep_alive=True, version="HTTP/1.0", date="D")
    assert b"\r\nConnection: keep-alive\r\n\r\n404 page not found\n" in keep10


def test_http_date_matches_the_standard_library() -> None:
    for t in (0, 951782400, time.time()):
        assert http_date(t) == formatdate(t, usegmt=True)
