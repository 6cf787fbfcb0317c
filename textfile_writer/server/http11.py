"""HTTP/1.1 on the wire for `agent-exporter serve`: parsing a request head, serialising a response.

Pure functions over bytes, no sockets. The parser is strict where leniency has let requests be
smuggled elsewhere: CRLF line ends only, no obs-fold, no whitespace before a header's colon, one
Content-Length, never Content-Length with Transfer-Encoding. The connection loop enforces the
byte limits before a head reaches the parser; the parser checks them again.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_TARGET = re.compile(r"[\x21-\x7e]+\Z")
_VERSION = re.compile(r"HTTP/(\d)\.(\d)\Z")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# Request headers that must not be repeated: a second copy is how smuggling and confusion start.
_SINGLE = frozenset({"host", "content-length", "authorization", "transfer-encoding"})

REASONS = {
    200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
    405: "Method Not Allowed", 408: "Request Timeout", 414: "URI Too Long",
    431: "Request Header Fields Too Large", 500: "Internal Server Error",
    501: "Not Implemented", 503: "Service Unavailable", 505: "HTTP Version Not Supported",
}


@dataclass(frozen=True)
class Limits:
    max_request_line: int = 8192
    max_header_bytes: int = 16384
    max_headers: int = 100

    @property
    def max_head(self) -> int:
        """Bytes a complete head may take, request line, headers and line ends included."""
        return self.max_request_line + self.max_header_bytes + 4


class HttpError(Exception):
    """A request that cannot be served; becomes a response with this status and closes the connection."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Request:
    method: str
    target: str  # raw request-target, never decoded and never mapped to a file
    path: str  # target up to '?'
    version: str  # HTTP/1.0 or HTTP/1.1
    headers: Mapping[str, str]  # lower-case names
    keep_alive: bool
    has_body: bool  # we never read bodies: a request that has one closes the connection

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


Chunk = bytes | memoryview
# A body up to this size is copied after its head, to go out in one send; a larger one is sent
# from its own buffers, which a cached file's responses share (see Response).
_INLINE_BODY = 16384


@dataclass(frozen=True, init=False)
class Response:
    """A status, headers and a body made of chunks.

    The body is a tuple of buffers, never copied on its way to the socket: /metrics answers with a
    memoryview of the cached file's bytes (shared by every connection that is sending that file
    version) plus a few bytes of its own, so a thousand slow readers cost a thousand small
    tails, not a thousand copies of the file.
    """

    status: int
    headers: tuple[tuple[str, str], ...]
    parts: tuple[Chunk, ...]
    close: bool  # force Connection: close

    def __init__(self, status: int, headers: tuple[tuple[str, str], ...], body: Chunk | tuple[Chunk, ...],
                 close: bool = False) -> None:
        parts = (body,) if isinstance(body, (bytes, memoryview)) else body
        for part in parts:  # len() of a memoryview counts items; every part must count bytes
            if isinstance(part, memoryview) and part.itemsize != 1:
                raise ValueError("a response body's memoryviews must be of bytes")
        object.__setattr__(self, "status", status)
        object.__setattr__(self, "headers", headers)
        object.__setattr__(self, "parts", parts)
        object.__setattr__(self, "close", close)

    @property
    def length(self) -> int:
        return sum(len(part) for part in self.parts)

    @property
    def body(self) -> bytes:
        """The body as one bytes object: a copy, for tests and small bodies, never the send path."""
        return b"".join(self.parts)


def parse_request(head: bytes, limits: Limits) -> Request:
    """`head` is everything before the blank line that ends the request head."""
    text = head.decode("latin-1")
    line_end = text.find("\r\n")
    request_line = text if line_end < 0 else text[:line_end]
    if len(request_line) > limits.max_request_line:
        raise HttpError(414, "request line too long")
    header_text = "" if line_end < 0 else text[line_end + 2:]
    if len(header_text) > limits.max_header_bytes:
        raise HttpError(431, "request headers too large")
    parts = request_line.split(" ")
    if len(parts) != 3:
        raise HttpError(400, "malformed request line")
    method, target, version_text = parts
    if not _TOKEN.match(method):
        raise HttpError(400, "malformed method")
    if not _TARGET.match(target):
        raise HttpError(400, "malformed request target")
    m = _VERSION.match(version_text)
    if not m:
        raise HttpError(400, "malformed HTTP version")
    if m.group(1) != "1":
        raise HttpError(505, "only HTTP/1.x is spoken here")
    version = "HTTP/1.0" if m.group(2) == "0" else "HTTP/1.1"
    headers = _parse_headers(header_text, limits)
    return Request(
        method=method, target=target, path=_path(target), version=version, headers=headers,
        keep_alive=_keep_alive(version, headers.get("connection")), has_body=_has_body(headers),
    )


def _parse_headers(text: str, limits: Limits) -> dict[str, str]:
    headers: dict[str, str] = {}
    if not text:
        return headers
    lines = text.split("\r\n")
    if len(lines) > limits.max_headers:
        raise HttpError(431, "too many request headers")
    for line in lines:
        colon = line.find(":")
        # A name must be a token: this refuses obs-fold (leading space), space before the colon,
        # and bare CR or LF (they cannot be in a token or, below, in a value).
        if colon <= 0 or not _TOKEN.match(line[:colon]):
            raise HttpError(400, "malformed header line")
        name = line[:colon].lower()
        value = line[colon + 1:].strip(" \t")
        if _BAD_VALUE.search(value):
            raise HttpError(400, "control character in a header value")
        if name in headers:
            if name in _SINGLE:
                raise HttpError(400, f"repeated {name} header")
            headers[name] = f"{headers[name]}, {value}"
        else:
            headers[name] = value
    return headers


def _path(target: str) -> str:
    if target.startswith(("http://", "https://")):
        # absolute-form (RFC 9112 3.2.2): servers must accept it; the authority is ignored.
        rest = target.split("//", 1)[1]
        slash = rest.find("/")
        target = "/" if slash < 0 else rest[slash:]
    q = target.find("?")
    return target if q < 0 else target[:q]


def _keep_alive(version: str, connection: str | None) -> bool:
    tokens = {t.strip().lower() for t in connection.split(",")} if connection else set()
    if version == "HTTP/1.0":
        return "keep-alive" in tokens
    return "close" not in tokens


def _has_body(headers: Mapping[str, str]) -> bool:
    te = headers.get("transfer-encoding")
    cl = headers.get("content-length")
    if te is not None and cl is not None:
        raise HttpError(400, "both Transfer-Encoding and Content-Length")
    if te is not None:
        return True
    if cl is None:
        return False
    if not cl.isdigit() or not cl.isascii():
        raise HttpError(400, "malformed Content-Length")
    return int(cl) > 0


def accepts_gzip(accept_encoding: str | None) -> bool:
    """True when the client accepts gzip (explicitly, or through '*'), with a q-value above 0."""
    if not accept_encoding:
        return False
    star: bool | None = None
    for item in accept_encoding.split(","):
        coding, _, params = item.partition(";")
        coding = coding.strip().lower()
        q = 1.0
        params = params.strip().lower()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        if coding in ("gzip", "x-gzip"):
            return q > 0
        if coding == "*":
            star = q > 0
    return bool(star)


def serialize(response: Response, head_only: bool, keep_alive: bool, version: str, date: str,
              extra: Sequence[tuple[str, str]] = ()) -> tuple[Chunk, ...]:
    """Status line, headers and (unless `head_only`) the body, ready to send, as chunks: the head
    with a small body in one bytes object, a large body's buffers after it as they are.

    `extra` headers (from the web configuration) replace any of the response's own with the same name.
    """
    status = response.status
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}", f"Date: {date}"]
    overridden = {name.lower() for name, _ in extra}
    for name, value in response.headers:
        if name.lower() not in overridden:
            lines.append(f"{name}: {value}")
    for name, value in extra:
        lines.append(f"{name}: {value}")
    length = response.length
    lines.append(f"Content-Length: {length}")
    if not keep_alive:
        lines.append("Connection: close")
    elif version == "HTTP/1.0":
        lines.append("Connection: keep-alive")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if head_only or not length:
        return (head,)
    if length <= _INLINE_BODY:
        return (b"".join((head, *response.parts)),)
    return (head, *response.parts)


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(seconds: float) -> str:
    """IMF-fixdate (RFC 9110 5.6.7), in English whatever the locale."""
    t = time.gmtime(seconds)
    return (f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT")


def text_response(status: int, message: str, headers: tuple[tuple[str, str], ...] = (),
                  close: bool = False) -> Response:
    """A one-line plain-text response (errors and refusals)."""
    return Response(status, (("Content-Type", "text/plain; charset=utf-8"), *headers),
                    (message + "\n").encode("utf-8"), close)
