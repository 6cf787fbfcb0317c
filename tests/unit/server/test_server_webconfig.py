"""--web.config.file: the exporter toolkit's format, validated with file, line and key; bcrypt basic auth."""

from __future__ import annotations

import base64
import statistics
import time
from pathlib import Path

import pytest
from server_fixtures import bcrypt_hash, make_certs

from textfile_writer.errors import ConfigError
from textfile_writer.server.webconfig import BasicAuth, load_web, parse_web_config, ssl_context

HASH = "$2b$04$" + "a" * 53  # syntactically a bcrypt hash; never checked here


def parse(text: str, base: str = "/etc/agent-exporter"):  # type: ignore[no-untyped-def]
    return parse_web_config(text, "web.yml", base)


def error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(text)
    return info.value


def basic(user: str, password: str | bytes) -> str:
    pw = password.encode() if isinstance(password, str) else password
    return "Basic " + base64.b64encode(user.encode() + b":" + pw).decode()


def test_a_full_config() -> None:
    cfg = parse(f"""
tls_server_config:
  cert_file: tls/server.crt
  key_file: /abs/server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: ca.crt
  min_version: TLS13
  prefer_server_cipher_suites: false
http_server_config:
  http2: false
  headers:
    X-Frame-Options: deny
    Strict-Transport-Security: max-age=31536000
basic_auth_users:
  prometheus: "{HASH}"
""")
    assert cfg.tls is not None
    assert cfg.tls.cert_file == "/etc/agent-exporter/tls/server.crt"
    assert cfg.tls.key_file == "/abs/server.key"
    assert cfg.tls.client_ca_file == "/etc/agent-exporter/ca.crt"
    assert (cfg.tls.min_version, cfg.tls.max_version, cfg.tls.prefer_server_cipher_suites) == ("TLS13", "TLS13", False)
    assert cfg.headers == (("X-Frame-Options", "deny"), ("Strict-Transport-Security", "max-age=31536000"))
    assert dict(cfg.users) == {"prometheus": HASH}


@pytest.mark.parametrize("text", ["", "# nothing\n", "tls_server_config: {}\n", "tls_server_config:\n"])
def test_empty_means_plain_http(text: str) -> None:
    cfg = parse(text)
    assert cfg.tls is None and not cfg.users and cfg.headers == ()


@pytest.mark.parametrize(("text", "line", "key", "words"), [
    ("basic_auth_users:\n  alice: secret\n", 2, "basic_auth_users.alice", "plaintext passwords are refused"),
    ("basic_auth_users:\n  alice: 12345\n", 2, "basic_auth_users.alice", "bcrypt hash"),
    (f"basic_auth_users:\n  'a:b': '{HASH}'\n", 2, "basic_auth_users.a:b", "':'"),
    ("tls_config:\n  x: 1\n", 1, "tls_config", "unknown key"),
    ("tls_server_config:\n  cert_file: a\n  kye_file: b\n", 3, "tls_server_config.kye_file", "unknown key"),
    ("tls_server_config:\n  cert_file: a\n", 2, "tls_server_config.key_file", "missing"),
    ("tls_server_config:\n  key_file: a\n", 2, "tls_server_config.cert_file", "missing"),
    ("tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS14\n", 4,
     "tls_server_config.min_version", "TLS14"),
    ("tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS13\n  max_version: TLS12\n", 2,
     "tls_server_config.min_version", "above max_version"),
    ("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAnyClientCert\n"
     "  client_ca_file: c\n", 4, "tls_server_config.client_auth_type", "unverified"),
    ("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: Sometimes\n  client_ca_file: c\n",
     4, "tls_server_config.client_auth_type", "'Sometimes'"),
    ("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca_file: c\n", 2,
     "tls_server_config.client_auth_type", "NoClientCert"),
    ("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAndVerifyClientCert\n", 4,
     "tls_server_config.client_ca_file", "needs client_ca_file"),
    ("tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n", 4,
     "tls_server_config.cipher_suites", "not supported"),
    ("tls_server_config:\n  cert: PEM\n  key_file: b\n", 2, "tls_server_config.cert", "cert_file"),
    ("http_server_config:\n  headers:\n    Server: me\n", 3, "http_server_config.headers.Server",
     "cannot be configured"),
    ("http_server_config:\n  headers:\n    X-Frame-Options: allow\n", 3,
     "http_server_config.headers.X-Frame-Options", "deny"),
    ("http_server_config:\n  http2: maybe\n", 2, "http_server_config.http2", "true or false"),
    ("rate_limit:\n  burst: 1\n", 1, "rate_limit", "not supported"),
    ("basic_auth_users: [a, b]\n", 1, "basic_auth_users", "mapping"),
    ("- just\n- a list\n", 1, "", "mapping"),
])
def test_errors_name_the_line_and_key(text: str, line: int, key: str, words: str) -> None:
    err = error(text)
    assert (err.source, err.line, err.key or "") == ("web.yml", line, key)
    assert words in err.message


def test_not_yaml() -> None:
    err = error("basic_auth_users:\n  a: [\n")
    assert err.line is not None and "not valid YAML" in err.message


def test_ssl_context_with_real_certificates(tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "pki")
    cfg = parse(f"tls_server_config:\n  cert_file: {certs.server_cert}\n  key_file: {certs.server_key}\n"
                f"  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: {certs.ca}\n")
    assert cfg.tls is not None
    import ssl

    ctx = ssl_context(cfg.tls, "web.yml")
    assert ctx.verify_mode == ssl.CERT_OPTIONAL and ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    wrong = parse(f"tls_server_config:\n  cert_file: {certs.server_cert}\n  key_file: {certs.client_key}\n")
    assert wrong.tls is not None
    with pytest.raises(ConfigError, match="cannot load"):
        ssl_context(wrong.tls, "web.yml")


def test_load_web_reads_relative_paths_next_to_the_file(tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "pki")
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: pki/server.crt\n  key_file: pki/server.key\n"
                   f"basic_auth_users:\n  prom: '{bcrypt_hash('pw', 4)}'\n")
    runtime = load_web(str(web))
    assert runtime.tls is not None and runtime.auth is not None
    assert runtime.config is not None and runtime.config.tls is not None
    assert runtime.config.tls.cert_file == str(certs.server_cert)
    assert load_web(None).tls is None and load_web(None).auth is None
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_web(str(tmp_path / "missing.yml"))


def test_basic_auth_right_wrong_unknown_and_malformed() -> None:
    auth = BasicAuth({"prometheus": bcrypt_hash("s3cret", 4), "ünï": bcrypt_hash("pässword", 4)})
    assert auth.verify(basic("prometheus", "s3cret"))
    assert auth.verify(basic("ünï", "pässword"))
    assert not auth.verify(basic("prometheus", "S3cret"))
    assert not auth.verify(basic("nobody", "s3cret"))
    assert not auth.verify(basic("prometheus", "s3cret" + "x" * 80))  # >72 bytes: refused, not truncated
    assert not auth.verify(basic("prometheus", b"s3c\0ret"))
    for header in (None, "", "Bearer abc", "Basic", "Basic !!!", "Basic " + base64.b64encode(b"nocolon").decode(),
                   "Basic " + base64.b64encode(b"\xff:x").decode()):
        assert auth.known_good(header) is False
        assert not auth.verify(header)


def test_verdicts_are_remembered_in_two_bounded_lists() -> None:
    auth = BasicAuth({"prometheus": bcrypt_hash("s3cret", 4)}, remember=2, remember_failures=2)
    good, bad = basic("prometheus", "s3cret"), basic("prometheus", "nope")
    assert auth.known_good(good) is None
    assert auth.verify(good)
    assert auth.known_good(good) is True
    # a repeated wrong password costs no second bcrypt; a new guess still does
    assert auth.known_good(bad) is None and not auth.verify(bad) and auth.known_good(bad) is False
    assert auth.known_good(basic("prometheus", "nope2")) is None
    # failures fill their own list: they never push out a success
    for i in range(5):
        assert not auth.verify(basic("prometheus", f"guess{i}"))
    assert auth.known_good(good) is True and auth.known_good(bad) is None
    # bounded: the oldest success is forgotten
    other = BasicAuth({"a": bcrypt_hash("1", 4), "b": bcrypt_hash("2", 4), "c": bcrypt_hash("3", 4)}, remember=2)
    for u, p in (("a", "1"), ("b", "2"), ("c", "3")):
        assert other.verify(basic(u, p))
    assert other.known_good(basic("a", "1")) is None and other.known_good(basic("c", "3")) is True


def test_unknown_users_take_as_long_as_wrong_passwords() -> None:
    auth = BasicAuth({"prometheus": bcrypt_hash("s3cret", 8)})

    def timed(header: str) -> float:
        # this thread's CPU time (bcrypt runs in it): the work verify() does, without the time a loaded
        # machine gives other processes meanwhile, which is noise here (it made the medians 13 vs 25 ms)
        t = time.thread_time()
        assert not auth.verify(header)
        return time.thread_time() - t

    known, unknown = [], []
    for i in range(7):  # interleaved, so a noisy moment hits both
        known.append(timed(basic("prometheus", f"wrong{i}")))
        unknown.append(timed(basic(f"nobody{i}", "wrong")))
    k, u = statistics.median(known), statistics.median(unknown)
    assert k > 0.002  # bcrypt really ran
    assert abs(k - u) / k < 0.35, (known, unknown)
