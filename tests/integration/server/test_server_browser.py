"""A real browser (Debian's headless Chromium) loads the landing page; its rendered table matches the file,
and unhealthy agents are marked, in the DOM and in the pixels."""

from __future__ import annotations

import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest
from procs import Processes
from server_fixtures import need, start_server

from devtools.textfiles import Agent, fleet, render, write_textfile
from textfile_writer.server.textparse import parse_textfile

pytestmark = pytest.mark.integration


class RenderedTable(HTMLParser):
    """Rows of table#agents (cell text), the agents of rows with the class "unhealthy", the cells
    holding a span.mark, and the links of the rendered DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.unhealthy: list[str] = []
        self.marked: list[str] = []  # the agent of each row with a visible mark
        self.links: list[str] = []
        self._in_table = False
        self._cell: list[str] | None = None
        self._agent = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "table" and a.get("id") == "agents":
            self._in_table = True
        elif tag == "a" and a.get("href"):
            self.links.append(str(a["href"]))
        elif self._in_table and tag == "tr":
            self.rows.append([])
            self._agent = str(a.get("data-agent"))
            if "unhealthy" in classes:
                self.unhealthy.append(self._agent)
        elif self._cell is not None and tag == "span" and "mark" in classes:
            self.marked.append(self._agent)
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
    assert gateway == [from_file.name, from_file.type, from_file.state, "ok", f"{from_file.cpu_percent:.1f} %",
                       f"{from_file.memory_kb / 1024 / 1024:.1f} GiB", "1d 1h", f"{from_file.restarts:.0f}"]
    assert gateway == ["agent-gateway", "support", "active", "ok", "12.3 %", "1.5 GiB", "1d 1h", "1"]
    # markup in a label value is shown as text, not interpreted
    assert ['agent-<b>"odd"</b>', "support", "activating", "ok", "7.2 %", "3.0 MiB", "2m 5s", "3"] in rows
    assert len(rows) == len(agents)

    shot = tmp_path / "landing.png"
    done = chromium(tmp_path, "--window-size=1200,1000", f"--screenshot={shot}", f"{base}/")
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    assert bars(shot.read_bytes()) == 0  # the fleet's agents are all healthy: no row is marked


# var(--bad), the colour of the bar CSS draws at the left of an unhealthy row: light and dark schemes.
BAD = {(0xcf, 0x22, 0x2e), (0xf8, 0x51, 0x49)}


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB bytes) of an 8-bit RGB or RGBA, non-interlaced PNG (Chromium's)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, head = 8, b"", None
    while pos < len(data):
        (size,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + size]
        if kind == b"IHDR":
            head = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + size
    assert head is not None
    width, height, depth, colour, _, _, interlace = head
    assert depth == 8 and colour in (2, 6) and interlace == 0, head
    channels = 3 if colour == 2 else 4
    raw, stride, rows, prev = zlib.decompress(idat), width * channels, [], bytearray(width * channels)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):  # undo the row's filter (PNG spec, section 9)
            left = line[i - channels] if i >= channels else 0
            up, corner = prev[i], prev[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        prev = line
        rows.append(bytes(line) if channels == 3 else bytes(b for j, b in enumerate(line) if j % 4 != 3))
    return width, height, rows


def bars(data: bytes, min_height: int = 24) -> int:
    """How many vertical bars of var(--bad) at least min_height pixels tall and 3 wide the screenshot
    shows, as the CSS draws at the left of each unhealthy row (text is never that tall and solid)."""
    width, height, rows = png_pixels(data)
    found = 0
    for x in range(width - 2):
        run = 0
        for y in range(height + 1):
            solid = y < height and all(tuple(rows[y][3 * (x + d):3 * (x + d) + 3]) in BAD for d in range(3))
            if solid:
                run += 1
                continue
            found += run >= min_height
            run = 0
        if found:
            return found  # the first column the bars show in: each row's bar counted once
    return 0


def test_chromium_marks_unhealthy_agents_with_their_reason(tmp_path: Path, procs: Processes) -> None:
    """A failed agent, a crash-looping one and a healthy one: the two unhealthy rows carry the class,
    a visible mark and the reason in words; the healthy one none of them; and the page as painted
    shows a bar for each unhealthy row (the CSS was applied: the CSP let its hash through)."""
    textfile = tmp_path / "agents.prom"
    write_textfile(textfile, render([
        Agent("agent-failed", state="failed", memory_kb=0.0, uptime_seconds=0.0, reason="failed",
              result="exit-code", exit_code=3, exited_ago=125.0),
        Agent("agent-healthy"),
        Agent("agent-looping", state="activating", reason="crash-looping", result="signal", exit_signal=9,
              exited_ago=3.0, recent_starts=6, restarts=18),
    ]))
    base, _pid = start_server(procs, textfile)

    dom = chromium(tmp_path, "--dump-dom", f"{base}/")
    assert dom.returncode == 0, dom.stderr[-2000:]
    table = RenderedTable()
    table.feed(dom.stdout)
    health = {r[0]: r[3] for r in table.rows if r}
    assert health == {
        "agent-failed": "\N{BALLOT X} failed: exit code 3, 2 min ago",
        "agent-healthy": "ok",
        "agent-looping": "\N{BALLOT X} crash-looping: 6 starts in 10 min, last: killed by signal 9 (SIGKILL)",
    }
    assert table.unhealthy == table.marked == ["agent-failed", "agent-looping"]
    assert "2 unhealthy" in dom.stdout

    shot = tmp_path / "unhealthy.png"
    done = chromium(tmp_path, "--window-size=1200,700", f"--screenshot={shot}", f"{base}/")
    assert done.returncode == 0, done.stderr[-2000:]
    assert bars(shot.read_bytes()) == 2
