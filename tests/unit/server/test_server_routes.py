"""What each path answers, on the fast path (the loop) and the slow one (a worker)."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path

import pytest
from server_fixtures import bcrypt_hash

from devtools.textfiles import fleet, render, write_textfile
from textfile_writer.server.filecache import TextfileCache
from textfile_writer.server.http11 import Limits, Request, Response, parse_request
from textfile_writer.server.routes import App
from textfile_writer.server.webconfig import BasicAuth, WebConfig, WebRuntime

NOW = 1_700_000_100.0


def request(line: str, *headers: str) -> Request:
    return parse_request("\r\n".join([line, *headers]).encode(), Limits())


def answer(app: App, req: Request) -> Response:
    """Like the server: the fast path, then a worker if the fast path declines."""
    fast = app.fast(req)
    return fast if fast is not None else app.slow(req)


@pytest.fixture
def textfile(tmp_path: Path) -> Path:
    path = tmp_path / "agents.prom"
    write_textfile(path, render(fleet(), timestamp=NOW - 4), mtime=NOW - 5)
    return path


def make_app(path: Path, web: WebRuntime | None = None) -> App:
    return App(TextfileCache(str(path)), 10.0, web or WebRuntime(), clock=lambda: NOW)


def test_metrics_plain_and_gzip(textfile: Path) -> None:
    app = make_app(textfile)
    assert app.fast(request("GET /metrics HTTP/1.1")) is None  # first time: the worker reads the file
    plain = answer(app, request("GET /metrics HTTP/1.1"))
    assert plain.status == 200
    assert dict(plain.headers)["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert plain.body == textfile.read_bytes() + (
        b"# HELP agent_exporter_textfile_age_seconds Seconds since the textfile was last changed "
        b"(added by agent-exporter serve).\n# TYPE agent_exporter_textfile_age_seconds gauge\n"
        b"agent_exporter_textfile_age_seconds 5.000\n")
    fast = app.fast(request("GET /metrics?ignored=1 HTTP/1.1", "Accept-Encoding: gzip"))
    assert fast is not None  # cached now: answered on the loop
    assert dict(fast.headers)["Content-Encoding"] == "gzip"
    assert gzip.decompress(fast.body) == plain.body


def test_health_ok_stale_and_missing(textfile: Path, tmp_path: Path) -> None:
    ok = answer(make_app(textfile), request("GET /health HTTP/1.1"))
    body = json.loads(ok.body)
    assert ok.status == 200 and body["status"] == "ok"
    assert body["age_seconds"] == 5.0 and body["last_success_timestamp_seconds"] == NOW - 4
    assert body["stale_after_seconds"] == 30.0 and body["agents_running"] == 14 and body["agents_total"] == 16

    write_textfile(textfile, render(fleet(), timestamp=NOW - 31), mtime=NOW - 31)
    stale = answer(make_app(textfile), request("GET /health HTTP/1.1"))
    assert stale.status == 503 and json.loads(stale.body)["status"] == "stale"

    # fresh mtime, old content: the file says when it was produced, and that is what counts too
    write_textfile(textfile, render(fleet(), timestamp=NOW - 100), mtime=NOW - 1)
    assert answer(make_app(textfile), request("GET /health HTTP/1.1")).status == 503

    app = make_app(tmp_path / "missing.prom")
    missing = app.fast(request("GET /health HTTP/1.1"))  # a stat is enough: no worker needed
    assert missing is not None and missing.status == 503
    assert json.loads(missing.body)["status"] == "missing"
    metrics = app.fast(request("GET /metrics HTTP/1.1"))
    assert metrics is not None and metrics.status == 503
    assert metrics.body.count(b"\n") == 1 and b"No such file or directory" in metrics.body


def test_refusals(textfile: Path) -> None:
    app = make_app(textfile)
    for target in ("/metrics/", "/../metrics", "/%6Detrics", "/index.html", "/etc/passwd", "//metrics",
                   "/health/../metrics"):
        resp = app.fast(request(f"GET {target} HTTP/1.1"))
        assert resp is not None and resp.status == 404, target
    post = app.fast(request("POST /metrics HTTP/1.1", "Content-Length: 3"))
    assert post is not None and post.status == 405 and ("Allow", "GET, HEAD") in post.headers and post.close
    brew = app.fast(request("BREW /metrics HTTP/1.1"))
    assert brew is not None and brew.status == 501


def test_landing_is_rendered_by_a_worker(textfile: Path, tmp_path: Path) -> None:
    app = make_app(textfile)
    assert app.fast(request("GET / HTTP/1.1")) is None
    page = app.slow(request("GET / HTTP/1.1"))
    assert page.status == 200 and b"agent-gateway" in page.body
    assert "Content-Security-Policy" in dict(page.headers)
    gone = make_app(tmp_path / "missing.prom").slow(request("GET / HTTP/1.1"))
    assert gone.status == 200 and b'id="problem"' in gone.body


def test_basic_auth_on_every_path(textfile: Path) -> None:
    users = {"prometheus": bcrypt_hash("s3cret", 4)}
    web = WebRuntime(WebConfig("web.yml", users=users), None, BasicAuth(users))
    app = make_app(textfile, web)
    good = "Authorization: Basic " + base64.b64encode(b"prometheus:s3cret").decode()
    bad = "Authorization: Basic " + base64.b64encode(b"prometheus:nope").decode()
    none = app.fast(request("GET /metrics HTTP/1.1"))
    assert none is not None and none.status == 401 and dict(none.headers)["WWW-Authenticate"].startswith("Basic")
    assert app.fast(request("GET /metrics HTTP/1.1", bad)) is None  # bcrypt runs on a worker
    assert app.slow(request("GET /metrics HTTP/1.1", bad)).status == 401
    assert app.slow(request("GET /nope HTTP/1.1", bad)).status == 401  # nothing is revealed before auth
    assert app.fast(request("GET /metrics HTTP/1.1", good)) is None
    assert app.slow(request("GET /metrics HTTP/1.1", good)).status == 200
    fast = app.fast(request("GET /metrics HTTP/1.1", good))  # remembered: answered on the loop
    assert fast is not None and fast.status == 200
    assert answer(app, request("GET / HTTP/1.1", good)).status == 200
