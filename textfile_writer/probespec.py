"""The rules of an agent's `probe:` entry: its URL, its timeout and the status it expects.

Pure functions, each raising ValueError with the message config.py puts after file, line and key.
Imported only while a configuration file is validated (the writer's hot path reads the cached,
already validated config.Probe), so `ipaddress` is fine here.

A probe is a plain HTTP/1.1 GET to an agent on this host or a host named by its IP address:
- http only: TLS would cost the writer an import of `ssl` every run (about 10 ms) for a check that
  normally stays on loopback;
- the host is an IP literal (`[...]` for IPv6) or `localhost`, which means 127.0.0.1 (RFC 6761's
  loopback; no resolver, no /etc/hosts): the writer resolves no names, and `install` can allow the
  writer's sandbox exactly those addresses (IPAddressAllow=);
- no user:password@ (it would end up in unit files and logs), no fragment (never sent), nothing
  outside RFC 3986's characters in the path and query.
"""

from __future__ import annotations

from .errors import shown
from .records import NamedTuple

MAX_URL = 2048
DEFAULT_PORT = 80
LOCALHOST = "localhost"
LOCALHOST_ADDRESS = "127.0.0.1"

DEFAULT_TIMEOUT_SECONDS = 2.0
MAX_TIMEOUT_SECONDS = 30.0
DEFAULT_EXPECT_STATUS = 200
MIN_STATUS, MAX_STATUS = 100, 599

_SCHEME = "http://"
_DIGITS = frozenset("0123456789")
# RFC 3986 pchar (unreserved, sub-delims, ":" "@", pct-encoded's "%") plus "/" and "?".
_PATH_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@%/?")


class Target(NamedTuple):
    """Where a probe URL points: `host` is its authority as written (the Host: header), `address`
    the IP literal to connect to, normalized."""

    host: str
    address: str
    port: int
    path: str


def parse_url(url: str) -> Target:
    """`http://HOST[:PORT][/PATH][?QUERY]` -> Target; ValueError says what is wrong."""
    if len(url) > MAX_URL:
        raise ValueError(f"is longer than {MAX_URL} characters")
    if not (url.isascii() and url.isprintable()) or " " in url:
        raise ValueError("must not hold spaces, control or non-ASCII characters (percent-encode them)")
    scheme, sep, _rest = url.partition("://")
    if not sep or scheme.lower() != "http":
        https = scheme.lower() == "https"
        extra = " (probes speak plain HTTP to a local agent; https is not supported)" if https else ""
        raise ValueError(f"must start with http://{extra}")
    rest = url[len(_SCHEME):]
    if "#" in rest:
        raise ValueError("must not have a #fragment (it is never sent)")
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    authority, path = rest[:cut], rest[cut:]
    if path.startswith("?") or not path:
        path = "/" + path
    if "@" in authority:
        raise ValueError("must not hold user:password@ (credentials would end up in the unit and the logs)")
    if not _PATH_CHARS.issuperset(path):
        raise ValueError("has characters in its path that must be percent-encoded")
    host, port = _split_authority(authority)
    return Target(host=authority, address=_address(host), port=port, path=path)


def _split_authority(authority: str) -> tuple[str, int]:
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise ValueError("has a '[' without its ']'")
        host, after = authority[1:end], authority[end + 1:]
        if after and not after.startswith(":"):
            raise ValueError("expected :PORT after the ']'")
        if ":" not in host:
            raise ValueError("only an IPv6 address goes in brackets")
        port_text = after[1:] if after else None
    else:
        host, sep, port_text_ = authority.partition(":")
        if ":" in port_text_:
            raise ValueError("write an IPv6 address in brackets, e.g. http://[::1]:8080/health")
        port_text = port_text_ if sep else None
    if not host:
        raise ValueError("has no host")
    if port_text is None:
        return host, DEFAULT_PORT
    if not port_text or not _DIGITS.issuperset(port_text) or len(port_text) > 5 or not 1 <= int(port_text) <= 65535:
        raise ValueError("the port must be a number from 1 to 65535")
    return host, int(port_text)


def _address(host: str) -> str:
    import ipaddress

    if host.lower() == LOCALHOST:
        return LOCALHOST_ADDRESS
    if "%" in host:
        raise ValueError("an IPv6 zone (%...) is not supported")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"the host must be an IP address or localhost (the writer resolves no names), "
                         f"got {shown(host)}") from None
    if ip.is_unspecified or ip.is_multicast or (ip.version == 4 and ip == ipaddress.IPv4Address("255.255.255.255")):
        raise ValueError(f"{ip} is not an address an agent can listen on")
    return str(ip)


def parse_timeout(value: object) -> float:
    """`2s`, `500ms`, or a number of seconds -> seconds, above 0 and at most MAX_TIMEOUT_SECONDS."""
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        number, scale = (value[:-2], 0.001) if value.endswith("ms") else (value[:-1], 1.0) if value.endswith("s") \
            else (value, 1.0)
        if number and _DIGITS.issuperset(number.replace(".", "", 1)) and number != ".":
            seconds = float(number) * scale
    if seconds is None or not 0 < seconds <= MAX_TIMEOUT_SECONDS:
        raise ValueError(f"must be a duration above 0 and at most {MAX_TIMEOUT_SECONDS:g}s, like 2s, 500ms "
                         f"or a number of seconds, got {shown(value)}")
    return seconds


def parse_status(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_STATUS <= value <= MAX_STATUS:
        raise ValueError(f"must be an HTTP status code from {MIN_STATUS} to {MAX_STATUS}, got {shown(value)}")
    return value
