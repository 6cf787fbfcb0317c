"""A textfile dated in the future is not healthy: a clock that jumped back (or a planted mtime)
used to make /health answer {"status":"ok","age_seconds":0.0} over a dead writer."""

from __future__ import annotations

import json
import re
from pathlib import Path

from devtools.textfiles import fleet, render, write_textfile
from textfile_writer.server.filecache import TextfileCache
from textfile_writer.server.http11 import Limits, Request, Response, parse_request
from textfile_writer.server.routes import App
from textfile_writer.server.webconfig import WebRuntime

NOW = 1_700_000_100.0
THREE_DAYS = 3 * 86400.0


def answer(app: App, line: str) -> Response:
    req: Request = parse_request(line.encode(), Limits())
    fast = app.fast(req)
    return fast if fast is not None else app.slow(req)


def app_for(tmp_path: Path, produced: float, mtime: float) -> App:
    path = tmp_path / "agents.prom"
    write_textfile(path, render(fleet(), timestamp=produced), mtime=mtime)
    return App(TextfileCache(str(path)), 10.0, WebRuntime(), clock=lambda: NOW)


def test_a_future_mtime_is_503_future_and_a_negative_age(tmp_path: Path) -> None:
    app = app_for(tmp_path, produced=NOW - 4, mtime=NOW + THREE_DAYS)
    health = answer(app, "GET /health HTTP/1.1")
    body = json.loads(health.body)
    assert health.status == 503
    assert body["status"] == "future" and body["age_seconds"] == -THREE_DAYS
    assert "3d" in body["error"] and "future" in body["error"]
    metrics = answer(app, "GET /metrics HTTP/1.1").body
    assert re.search(rb"\nagent_exporter_textfile_age_seconds -259200\.000\n\Z", metrics)
    page = answer(app, "GET / HTTP/1.1").body
    assert b'id="problem"' in page and b"in the future" in page


def test_a_future_last_success_is_503_future_too(tmp_path: Path) -> None:
    """A fresh mtime, but the file says it was produced tomorrow: its content cannot be trusted either."""
    app = app_for(tmp_path, produced=NOW + 86400, mtime=NOW - 1)
    health = answer(app, "GET /health HTTP/1.1")
    assert health.status == 503 and json.loads(health.body)["status"] == "future"


def test_a_second_ahead_is_tolerated(tmp_path: Path) -> None:
    app = app_for(tmp_path, produced=NOW, mtime=NOW + 0.5)
    health = answer(app, "GET /health HTTP/1.1")
    body = json.loads(health.body)
    assert health.status == 200 and body["status"] == "ok" and body["age_seconds"] == -0.5
