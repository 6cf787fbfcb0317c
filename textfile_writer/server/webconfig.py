"""`--web.config.file`: TLS, basic auth and extra headers, in the Prometheus exporter toolkit's format.

    tls_server_config:
      cert_file: server.crt          # relative paths are relative to this file's directory
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert
      client_ca_file: ca.crt
      min_version: TLS12
    http_server_config:
      headers:
        X-Frame-Options: deny
    basic_auth_users:
      prometheus: $2b$10$...          # bcrypt hashes only: a plaintext password is refused

Parsing is pure (text in, WebConfig or a ConfigError naming file, line and key out). Keys of the
toolkit this server cannot honour (cipher_suites, curve_preferences, client_allowed_sans,
rate_limit, inline cert/key, and the client auth types that accept an unverified certificate) are
refused by name rather than ignored. `load_web` reads the file and builds what the server uses:
the SSL context and the basic-auth checker.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, shown
from ..files import check_regular, path_problem

if TYPE_CHECKING:
    import ssl

    from ..yamlnodes import Nodes

TLS_VERSIONS = ("TLS10", "TLS11", "TLS12", "TLS13")
# Go's names; Python's ssl cannot accept a client certificate without verifying it, so the two
# toolkit modes that do (RequestClientCert, RequireAnyClientCert) are refused, not weakened.
CLIENT_AUTH_TYPES = ("NoClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert")
_UNVERIFIED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert")
# The toolkit's list: only these headers, and for two of them only these values.
ALLOWED_HEADERS: Mapping[str, tuple[str, ...]] = {
    "Strict-Transport-Security": (), "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"), "X-XSS-Protection": (), "Content-Security-Policy": (),
}
_BCRYPT = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}\Z")
# Every first-time login (and every wrong guess) costs one check of its user's hash, and checks
# run one at a time: cost 12 is ~0.2 s on a 2-CPU host (13: ~0.5 s, 14: ~0.9 s, 31: days), so
# above it a handful of logins would queue for seconds and a crafted file could stall start-up.
MAX_BCRYPT_COST = 12
_UNSUPPORTED = {
    "cert": "inline certificates are not supported; use cert_file",
    "key": "inline keys are not supported; use key_file",
    "cipher_suites": "not supported by this server (it uses OpenSSL's defaults)",
    "curve_preferences": "not supported by this server (it uses OpenSSL's defaults)",
    "client_allowed_sans": "not supported by this server",
}
# A certificate chain or CA bundle is kilobytes; ssl reads these files itself, so they are checked
# (regular file, this size at most) before it does: a FIFO there would hang it.
MAX_TLS_FILE_BYTES = 1 << 20
_TLS_KEYS = ("cert_file", "key_file", "client_auth_type", "client_ca_file", "client_ca",
             "min_version", "max_version", "prefer_server_cipher_suites", *_UNSUPPORTED)


@dataclass(frozen=True)
class TLSSettings:
    cert_file: str
    key_file: str
    client_auth_type: str = "NoClientCert"
    client_ca_file: str | None = None
    client_ca: str | None = None  # PEM text
    min_version: str = "TLS12"
    max_version: str = "TLS13"
    prefer_server_cipher_suites: bool = True


@dataclass(frozen=True)
class WebConfig:
    source: str
    tls: TLSSettings | None = None
    users: Mapping[str, str] = field(default_factory=dict)  # user -> bcrypt hash
    headers: tuple[tuple[str, str], ...] = ()


def parse_web_config(text: str, source: str, base_dir: str) -> WebConfig:
    """Parse and validate; relative file names are joined to `base_dir` (the file's directory)."""
    from ..yamlnodes import Nodes, compose

    root = compose(text, source)
    nodes = Nodes(source)
    if root is None:
        return WebConfig(source)
    top = nodes.entries(root, "", null_is_empty=True)
    nodes.check_keys(top, ("tls_server_config", "http_server_config", "basic_auth_users",
                           "rate_limit"), "")
    if "rate_limit" in top:
        raise nodes.fail(top["rate_limit"][0], "rate_limit", "not supported by this server")
    tls = _tls(nodes, top["tls_server_config"][1], base_dir) if "tls_server_config" in top else None
    headers = _headers(nodes, top["http_server_config"][1]) if "http_server_config" in top else ()
    users = _users(nodes, top["basic_auth_users"][1]) if "basic_auth_users" in top else {}
    return WebConfig(source, tls, users, headers)


def _tls(nodes: Nodes, node: Any, base_dir: str) -> TLSSettings | None:
    entries = nodes.entries(node, "tls_server_config", null_is_empty=True)
    nodes.check_keys(entries, _TLS_KEYS, "tls_server_config")
    for name, why in _UNSUPPORTED.items():
        if name in entries:
            raise nodes.fail(entries[name][0], f"tls_server_config.{name}", why)

    def text(name: str) -> str | None:
        if name not in entries:
            return None
        return nodes.text(entries[name][1], f"tls_server_config.{name}")

    def path(name: str) -> str | None:
        v = text(name)
        if v is None or v == "":
            return None
        problem = path_problem(v)
        if problem:
            raise nodes.fail(entries[name][1], f"tls_server_config.{name}", problem)
        return os.path.join(base_dir, v)

    cert, key, ca_file, ca_text = path("cert_file"), path("key_file"), path("client_ca_file"), text("client_ca")
    auth = text("client_auth_type") or "NoClientCert"
    if cert is None and key is None and ca_file is None and not ca_text and auth == "NoClientCert":
        return None  # as in the toolkit: an empty section means plain HTTP
    k = "tls_server_config"
    if cert is None:
        raise nodes.fail(node, f"{k}.cert_file", "missing (TLS needs cert_file and key_file)")
    if key is None:
        raise nodes.fail(node, f"{k}.key_file", "missing (TLS needs cert_file and key_file)")
    where = entries.get("client_auth_type", (node, node))[1]
    if auth in _UNVERIFIED_CLIENT_AUTH:
        raise nodes.fail(where, f"{k}.client_auth_type",
                         f"{auth} accepts unverified client certificates, which this server does not "
                         f"do; use VerifyClientCertIfGiven or RequireAndVerifyClientCert")
    if auth not in CLIENT_AUTH_TYPES:
        raise nodes.fail(where, f"{k}.client_auth_type",
                         f"{shown(auth)} is not one of {', '.join(CLIENT_AUTH_TYPES)}")
    has_ca = ca_file is not None or bool(ca_text)
    if has_ca and auth == "NoClientCert":
        raise nodes.fail(where, f"{k}.client_auth_type",
                         "client CAs are configured but client_auth_type is NoClientCert")
    if not has_ca and auth != "NoClientCert":
        raise nodes.fail(where, f"{k}.client_ca_file", f"{auth} needs client_ca_file (or client_ca)")
    versions = {}
    for name, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
        v = text(name) or default
        if v not in TLS_VERSIONS:
            raise nodes.fail(entries[name][1], f"{k}.{name}", f"{shown(v)} is not one of {', '.join(TLS_VERSIONS)}")
        versions[name] = v
    if TLS_VERSIONS.index(versions["min_version"]) > TLS_VERSIONS.index(versions["max_version"]):
        raise nodes.fail(node, f"{k}.min_version", "is above max_version")
    prefer = True
    if "prefer_server_cipher_suites" in entries:
        prefer = nodes.boolean(entries["prefer_server_cipher_suites"][1], f"{k}.prefer_server_cipher_suites")
    return TLSSettings(cert, key, auth, ca_file, ca_text or None, versions["min_version"],
                       versions["max_version"], prefer)


def _headers(nodes: Nodes, node: Any) -> tuple[tuple[str, str], ...]:
    entries = nodes.entries(node, "http_server_config", null_is_empty=True)
    nodes.check_keys(entries, ("headers", "http2"), "http_server_config")
    if "http2" in entries:  # accepted for compatibility; this server speaks HTTP/1.1 only
        nodes.boolean(entries["http2"][1], "http_server_config.http2")
    if "headers" not in entries:
        return ()
    out = []
    headers = nodes.entries(entries["headers"][1], "http_server_config.headers", null_is_empty=True)
    for name, (knode, vnode) in headers.items():
        key = f"http_server_config.headers.{name}"
        if name not in ALLOWED_HEADERS:
            raise nodes.fail(knode, key, f"this header cannot be configured (allowed: {', '.join(ALLOWED_HEADERS)})")
        value = nodes.text(vnode, key)
        allowed = ALLOWED_HEADERS[name]
        if allowed and value not in allowed:
            raise nodes.fail(vnode, key, f"{shown(value)} is not one of {', '.join(allowed)}")
        if any(c in value for c in "\r\n\0"):
            raise nodes.fail(vnode, key, "must be one line")
        out.append((name, value))
    return tuple(out)


def _users(nodes: Nodes, node: Any) -> dict[str, str]:
    users = {}
    for name, (knode, vnode) in nodes.entries(node, "basic_auth_users", null_is_empty=True).items():
        key = f"basic_auth_users.{name}"
        if ":" in name or not name:
            raise nodes.fail(knode, key, "a user name must not be empty or contain ':'")
        value = nodes.value(vnode, key)
        if not isinstance(value, str) or not _BCRYPT.match(value):
            raise nodes.fail(vnode, key,
                             "must be a bcrypt hash ($2b$10$... ; plaintext passwords are refused). "
                             "Make one with: htpasswd -nBC 10 '' | tr -d ':\\n'")
        cost = int(value[4:6])
        if cost > MAX_BCRYPT_COST:
            raise nodes.fail(vnode, key,
                             f"bcrypt cost {cost} is above {MAX_BCRYPT_COST}, the most this server accepts "
                             "(each check would take seconds); make the hash with: htpasswd -nBC 10 ''")
        users[name] = value
    return users


# --- what the server uses ---------------------------------------------------------------------

def ssl_context(settings: TLSSettings, source: str) -> ssl.SSLContext:
    """An SSLContext for the server side; certificate problems become a ConfigError."""
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    names = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
             "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
    try:
        ctx.minimum_version = names[settings.min_version]
        ctx.maximum_version = names[settings.max_version]
    except (ValueError, ssl.SSLError) as exc:
        raise ConfigError(source, None, "tls_server_config.min_version", f"not possible here: {exc}") from None
    ctx.options |= ssl.OP_NO_RENEGOTIATION
    if settings.prefer_server_cipher_suites:
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.set_alpn_protocols(["http/1.1"])
    for key, path in (("cert_file", settings.cert_file), ("key_file", settings.key_file),
                      ("client_ca_file", settings.client_ca_file)):
        try:
            if path is not None:
                check_regular(path, MAX_TLS_FILE_BYTES)
        except OSError as exc:
            raise ConfigError(source, None, f"tls_server_config.{key}",
                              f"cannot load {path}: {exc.strerror or exc}") from None
    try:
        ctx.load_cert_chain(settings.cert_file, settings.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(source, None, "tls_server_config.cert_file",
                          f"cannot load {settings.cert_file} with {settings.key_file}: "
                          f"{getattr(exc, 'strerror', None) or exc}") from None
    if settings.client_auth_type != "NoClientCert":
        try:
            if settings.client_ca_file is not None:
                ctx.load_verify_locations(cafile=settings.client_ca_file)
            if settings.client_ca:
                ctx.load_verify_locations(cadata=settings.client_ca)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(source, None, "tls_server_config.client_ca_file",
                              f"cannot load the client CAs: {getattr(exc, 'strerror', None) or exc}") from None
        ctx.verify_mode = (ssl.CERT_REQUIRED if settings.client_auth_type == "RequireAndVerifyClientCert"
                           else ssl.CERT_OPTIONAL)
    return ctx


class BasicAuth:
    """Checks `Authorization: Basic` against bcrypt hashes, in the same time whether or not the user exists.

    An unknown user is checked against a dummy hash of the same cost. Verdicts are remembered (by
    a SHA-256 of the header, never the password itself), in two bounded lists so a flood of
    failures cannot push out a success: a scraper that sends the same credentials every few
    seconds costs one bcrypt, not one per scrape, and a client that repeats a wrong password costs
    one bcrypt, not one per request. Remembering a failure makes no new guess cheaper: every
    password not tried yet still costs a whole bcrypt. One bcrypt runs at a time.
    """

    MAX_PASSWORD = 72  # bcrypt looks at no more; longer ones are refused, not truncated

    def __init__(self, users: Mapping[str, str], remember: int = 256, remember_failures: int = 4096) -> None:
        import hashlib  # here: it costs the server ~3.5 MB of RSS, worth it only with users

        import bcrypt

        self._bcrypt = bcrypt
        self._sha256 = hashlib.sha256
        self._users = {u: h.encode() for u, h in users.items()}
        cost = max((int(h[4:6]) for h in users.values()), default=10)
        self._dummy = bcrypt.hashpw(b"agent-exporter: no such user", bcrypt.gensalt(cost))
        self._remember = remember
        self._remember_failures = remember_failures
        self._ok: OrderedDict[bytes, None] = OrderedDict()
        self._bad: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()
        self._bcrypt_lock = threading.Lock()

    @staticmethod
    def credentials(header: str | None) -> tuple[str, bytes] | None:
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            raw = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return None
        user, sep, password = raw.partition(b":")
        if not sep:
            return None
        try:
            return user.decode("utf-8"), password
        except UnicodeDecodeError:
            return None

    def _memo_key(self, header: str) -> bytes:
        return self._sha256(header.encode("latin-1")).digest()

    def known_good(self, header: str | None) -> bool | None:
        """True: verified before; False: refuse now (no or malformed credentials, or these exact
        ones failed before); None: only verify() can tell."""
        if self.credentials(header) is None:
            return False
        assert header is not None
        key = self._memo_key(header)
        with self._lock:
            if key in self._ok:
                return True
            return False if key in self._bad else None

    def verify(self, header: str | None) -> bool:
        creds = self.credentials(header)
        if creds is None:
            return False
        assert header is not None
        user, password = creds
        stored = self._users.get(user)
        hashed = stored if stored is not None else self._dummy
        too_long = len(password) > self.MAX_PASSWORD
        with self._bcrypt_lock:
            try:
                ok = self._bcrypt.checkpw(password[:self.MAX_PASSWORD], hashed)
            except ValueError:  # e.g. a NUL byte in the password
                ok = False
        ok = ok and stored is not None and not too_long
        memo, size = (self._ok, self._remember) if ok else (self._bad, self._remember_failures)
        with self._lock:
            memo[self._memo_key(header)] = None
            while len(memo) > size:
                memo.popitem(last=False)
        return ok


@dataclass(frozen=True)
class WebRuntime:
    """What the server applies to connections and requests; replaced whole on SIGHUP."""

    config: WebConfig | None = None
    tls: ssl.SSLContext | None = None
    auth: BasicAuth | None = None

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        return self.config.headers if self.config is not None else ()


def load_web(path: str | None) -> WebRuntime:
    """Read and validate the web configuration file (None: plain HTTP, no auth)."""
    if path is None:
        return WebRuntime()
    from ..configfile import read_text

    config = parse_web_config(read_text(path), path, os.path.dirname(os.path.abspath(path)))
    tls = ssl_context(config.tls, path) if config.tls is not None else None
    auth = BasicAuth(config.users) if config.users else None
    return WebRuntime(config, tls, auth)
