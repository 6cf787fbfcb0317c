"""A real browser (Debian's headless Chromium) loads the landing page; its rendered table matches the file."""

from __future__ import annotations

import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from procs import Processes
from server_fixtures import need, start_server

from devtools.textfiles import Agent, fleet, render, write_textfile
from textfile_writer.server.textparse import parse_textfile

pytestmark = pytest.mark.integration


class RenderedTable(HTMLParser):
    """Rows of table#agents (cell text) and the links of the rendered DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.links: list[str] = []
        self._in_table = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table" and a.get("id") == "agents":
            self._in_table = True
        elif tag == "a" and a.get("href"):
            self.links.append(str(a["href"]))
        elif self._in_table and tag == "tr":
            self.rows.append([])
        elif self._in_table and tag == "td":
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in_table = False
        elif tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    exe = need("chromium")
    profile = tmp_path / "chromium-profile"
    profile.mkdir(exist_ok=True)
    return subprocess.run(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=120, check=False)


def test_chromium_renders_the_agent_table(tmp_path: Path, procs: Processes) -> None:
    textfile = tmp_path / "agents.prom"
    agents = [*fleet(), Agent('agent-<b>"odd"</b>', "support", state="activating", memory_kb=3072.0,
                              cpu_percent=7.25, uptime_seconds=125.0, restarts=3)]
    write_textfile(textfile, render(agents))
    base, _pid = start_server(procs, textfile)

    dom = chromium(tmp_path, "--dump-dom", f"{base}/")
    assert dom.returncode == 0, dom.stderr[-2000:]
    table = RenderedTable()
    table.feed(dom.stdout)
    rows = [r for r in table.rows if r]
    assert "metrics" in table.links and "health" in table.links

    # one row checked against the file itself, as parsed independently of the page
    from_file = {a.name: a for a in parse_textfile(textfile.read_bytes()).agents}["agent-gateway"]
    gateway = next(r for r in rows if r[0] == "agent-gateway")
    assert gateway == [from_file.name, from_file.type, from_file.state, f"{from_file.cpu_percent:.1f} %",
                       f"{from_file.memory_kb / 1024 / 1024:.1f} GiB", "1d 1h", f"{from_file.restarts:.0f}"]
    assert gateway == ["agent-gateway", "support", "active", "12.3 %", "1.5 GiB", "1d 1h", "1"]
    # markup in a label value is shown as text, not interpreted
    assert ['agent-<b>"odd"</b>', "support", "activating", "7.2 %", "3.0 MiB", "2m 5s", "3"] in rows
    assert len(rows) == len(agents)

    shot = tmp_path / "landing.png"
    done = chromium(tmp_path, "--window-size=1200,1000", f"--screenshot={shot}", f"{base}/")
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
