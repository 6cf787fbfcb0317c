"""The landing page: the rows read back from the textfile, rendered as escaped HTML."""

from __future__ import annotations

import base64
import hashlib
from html.parser import HTMLParser

from devtools.textfiles import Agent, fleet, render
from textfile_writer.server.landing import (
    CSS,
    CSS_HASH,
    format_count,
    format_duration,
    format_memory,
    format_percent,
    render_page,
)
from textfile_writer.server.textparse import parse_textfile


class Table(HTMLParser):
    """The cells of the page's table rows, as text, and every tag seen."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.tags: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "tr":
            self.rows.append([])
        elif tag == "td":
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def page_rows(page: bytes) -> tuple[list[list[str]], list[str]]:
    t = Table()
    t.feed(page.decode())
    return [r for r in t.rows if r], t.tags


def test_page_rows_match_the_file() -> None:
    summary = parse_textfile(render(fleet()))
    page = render_page(summary, textfile="/var/lib/prometheus/node-exporter/agents.prom", age_seconds=4.2,
                       stale_after=30, problem=None, version="agent-exporter 0.1.0")
    rows, tags = page_rows(page)
    assert len(rows) == 16
    assert ["agent-gateway", "support", "active", "12.3 %", "1.5 GiB", "1d 1h", "1"] in rows
    assert ["agent-browser_dev", "primary", "failed", "0.0 %", "0 KiB", "0s", "7"] in rows
    assert ["agent-backup", "support", "inactive", "\N{EN DASH}", "0 KiB", "0s", "0"] in rows
    assert "script" not in tags and "img" not in tags and "link" in tags
    assert b'href="metrics"' in page and b'href="health"' in page
    assert b"14 of 16 agents running" in page


def test_every_value_is_escaped() -> None:
    evil = '<script>alert("x")</script>&'
    summary = parse_textfile(render([Agent(evil, type='"><img src=x onerror=alert(1)>')]))
    page = render_page(summary, textfile="/tmp/<b>.prom", age_seconds=1, stale_after=30,
                       problem="<i>problem</i>", version="<v>")
    _rows, tags = page_rows(page)
    assert "script" not in tags and "img" not in tags and "b" not in tags and "i" not in tags
    assert b"&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in page


def test_a_missing_file_renders_the_problem_and_an_empty_table() -> None:
    page = render_page(None, textfile="/x/agents.prom", age_seconds=None, stale_after=30,
                       problem="textfile /x/agents.prom: No such file or directory", version="v")
    rows, _tags = page_rows(page)
    assert rows == [["No agents in the file."]]
    assert b'id="problem">textfile /x/agents.prom: No such file or directory<' in page


def test_the_csp_hash_is_the_hash_of_the_css() -> None:
    assert "sha256-" + base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode() == CSS_HASH


def test_formatting() -> None:
    assert [format_memory(v) for v in (None, 512.0, 2048.0, 3 * 1024 * 1024.0)] == \
        ["\N{EN DASH}", "512 KiB", "2.0 MiB", "3.0 GiB"]
    assert [format_duration(v) for v in (None, -1, 5.9, 61, 3661, 90061)] == \
        ["\N{EN DASH}", "\N{EN DASH}", "5s", "1m 1s", "1h 1m", "1d 1h"]
    assert format_percent(float("nan")) == "\N{EN DASH}" and format_percent(3.14159) == "3.1 %"
    assert format_count(float("inf")) == "\N{EN DASH}" and format_count(7.0) == "7"
