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

NOW = 1795486400.0


class Table(HTMLParser):
    """The cells of the page's table rows, as text, every tag seen, and the agents of rows marked
    unhealthy (class "unhealthy")."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.tags: list[str] = []
        self.unhealthy: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        a = dict(attrs)
        if tag == "tr":
            self.rows.append([])
            if "unhealthy" in (a.get("class") or "").split():
                self.unhealthy.append(str(a.get("data-agent")))
        elif tag == "td":
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def parsed(page: bytes) -> Table:
    t = Table()
    t.feed(page.decode())
    return t


def page_rows(page: bytes) -> tuple[list[list[str]], list[str]]:
    t = parsed(page)
    return [r for r in t.rows if r], t.tags


def page(agents: list[Agent]) -> bytes:
    return render_page(parse_textfile(render(agents, timestamp=NOW - 4)), textfile="/x/agents.prom",
                       age_seconds=4.0, stale_after=30, problem=None, version="v", now=NOW)


def test_page_rows_match_the_file() -> None:
    summary = parse_textfile(render(fleet()))
    page = render_page(summary, textfile="/var/lib/prometheus/node-exporter/agents.prom", age_seconds=4.2,
                       stale_after=30, problem=None, version="agent-exporter 0.1.0", now=NOW)
    rows, tags = page_rows(page)
    assert len(rows) == 16
    assert ["agent-gateway", "support", "active", "ok", "12.3 %", "1.5 GiB", "1d 1h", "1"] in rows
    assert ["agent-browser_dev", "primary", "failed", "ok", "0.0 %", "0 KiB", "0s", "7"] in rows
    assert ["agent-backup", "support", "inactive", "ok", "\N{EN DASH}", "0 KiB", "0s", "0"] in rows
    assert "script" not in tags and "img" not in tags and "link" in tags
    assert b'href="metrics"' in page and b'href="health"' in page
    assert b"14 of 16 agents running \xc2\xb7 all healthy" in page


def test_every_value_is_escaped() -> None:
    evil = '<script>alert("x")</script>&'
    summary = parse_textfile(render([Agent(evil, type='"><img src=x onerror=alert(1)>')]))
    page = render_page(summary, textfile="/tmp/<b>.prom", age_seconds=1, stale_after=30,
                       problem="<i>problem</i>", version="<v>", now=NOW)
    _rows, tags = page_rows(page)
    assert "script" not in tags and "img" not in tags and "b" not in tags and "i" not in tags
    assert b"&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in page


def test_a_missing_file_renders_the_problem_and_an_empty_table() -> None:
    page = render_page(None, textfile="/x/agents.prom", age_seconds=None, stale_after=30,
                       problem="textfile /x/agents.prom: No such file or directory", version="v", now=NOW)
    rows, _tags = page_rows(page)
    assert rows == [["No agents in the file."]]
    assert b'id="problem">textfile /x/agents.prom: No such file or directory<' in page


def test_unhealthy_rows_are_marked_and_say_why() -> None:
    """The words are healthtext's, as `status` shows them; the mark is a class and a visible
    character, so it shows without colour (and to a screen reader) too."""
    shown = page([Agent("agent-ok"),
                  Agent("agent-failed", state="failed", reason="failed", result="exit-code", exit_code=3,
                        exited_ago=126.0),
                  Agent("agent-looping", state="activating", reason="crash-looping", result="signal", exit_signal=9,
                        exited_ago=10.0, recent_starts=6, restarts=18),
                  Agent("agent-oom", state="failed", reason="oom-killed", result="oom-kill", exit_signal=9,
                        exited_ago=3700.0)])
    t = parsed(shown)
    health = {r[0]: r[3] for r in t.rows if r}
    assert health == {
        "agent-ok": "ok",
        "agent-failed": "\N{BALLOT X} failed: exit code 3, 2 min ago",
        "agent-looping": "\N{BALLOT X} crash-looping: 6 starts in 10 min, last: killed by signal 9 (SIGKILL)",
        "agent-oom": "\N{BALLOT X} OOM-killed 1 h ago",
    }
    assert sorted(t.unhealthy) == ["agent-failed", "agent-looping", "agent-oom"]
    assert b"3 unhealthy" in shown
    assert b'<td class="health ok">ok</td>' in shown


def test_a_file_without_health_shows_none_and_marks_nothing() -> None:
    """An older writer's file (no agent_healthy): the column says it does not know."""
    text = b'agent_up{agent="old",type="primary"} 0\nagent_state{agent="old",type="primary",state="failed"} 1\n'
    shown = render_page(parse_textfile(text), textfile="/x", age_seconds=1, stale_after=30, problem=None,
                        version="v", now=NOW)
    t = parsed(shown)
    assert [r for r in t.rows if r] == [["old", "primary", "failed", "\N{EN DASH}", "\N{EN DASH}", "\N{EN DASH}",
                                         "\N{EN DASH}", "\N{EN DASH}"]]
    assert t.unhealthy == [] and b"healthy" not in shown.partition(b'id="summary"')[2].partition(b"</p>")[0]


def test_a_reason_from_the_file_is_escaped() -> None:
    evil = '<img src=x onerror=alert(1)>'
    text = (f'agent_healthy{{agent="a",type="t"}} 0\n'
            f'agent_unhealthy_reason{{agent="a",type="t",reason="{evil}"}} 1\n').encode()
    shown = render_page(parse_textfile(text), textfile="/x", age_seconds=1, stale_after=30, problem=None,
                        version="v", now=NOW)
    t = parsed(shown)
    assert "img" not in t.tags and t.unhealthy == ["a"]
    assert [r[3] for r in t.rows if r] == [f"\N{BALLOT X} {evil}"]


def test_the_csp_hash_is_the_hash_of_the_css() -> None:
    assert "sha256-" + base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode() == CSS_HASH


def test_formatting() -> None:
    assert [format_memory(v) for v in (None, 512.0, 2048.0, 3 * 1024 * 1024.0)] == \
        ["\N{EN DASH}", "512 KiB", "2.0 MiB", "3.0 GiB"]
    assert [format_duration(v) for v in (None, -1, 5.9, 61, 3661, 90061)] == \
        ["\N{EN DASH}", "\N{EN DASH}", "5s", "1m 1s", "1h 1m", "1d 1h"]
    assert format_percent(float("nan")) == "\N{EN DASH}" and format_percent(3.14159) == "3.1 %"
    assert format_count(float("inf")) == "\N{EN DASH}" and format_count(7.0) == "7"
