"""The landing page for people: what the textfile says about each agent, as one plain HTML table.

`render_page` turns the summary textparse.py read from the file into HTML with inline CSS and no
external assets. Every value that came from the file is escaped. Each agent's health is worded by
healthtext.py, as `status` words it; an unhealthy agent's row has the class "unhealthy" and a
visible mark before its reason, so it stands out without colour too.
"""

from __future__ import annotations

import time
from html import escape

from .. import healthtext, humanize
from .textparse import AgentRow, TextfileSummary

NO_VALUE = "\N{EN DASH}"
UNHEALTHY_MARK = "\N{BALLOT X}"


# --- formatting (humanize.py, with an en dash for "unknown") -------------------------------------

def format_memory(kb: float | None) -> str:
    return humanize.size_kb(kb, NO_VALUE)


def format_duration(seconds: float | None) -> str:
    return humanize.duration(seconds, NO_VALUE)


def format_percent(value: float | None) -> str:
    return humanize.percent(value, NO_VALUE, " %")


def format_count(value: float | None) -> str:
    return humanize.count(value, NO_VALUE)


_STATE_CLASS = {"active": "ok", "up": "ok", "reloading": "ok", "activating": "warn",
                "deactivating": "warn", "failed": "bad", "down": "bad", "inactive": "bad"}

CSS = """
:root { color-scheme: light dark; --fg: #1d2329; --muted: #5c6670; --line: #d6dbe0;
  --head: #f1f3f5; --ok: #1a7f37; --warn: #9a6700; --bad: #cf222e; --bg: #fff; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6e8ea; --muted: #9aa4ad; --line: #38414a;
  --head: #20262c; --ok: #3fb950; --warn: #d29922; --bad: #f85149; --bg: #14181c; } }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg);
  background: var(--bg); margin: 2rem auto; max-width: 72rem; padding: 0 1rem; }
h1 { font-size: 1.5rem; margin: 0 0 .25rem; }
p { margin: .4rem 0; color: var(--muted); }
nav a { margin-right: 1rem; }
.banner { border: 1px solid var(--bad); color: var(--bad); padding: .5rem .75rem;
  border-radius: 4px; margin: 1rem 0; }
table { border-collapse: collapse; width: 100%; margin-top: 1rem; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid var(--line); }
th { background: var(--head); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td:first-child { white-space: nowrap; }
.ok { color: var(--ok); } .warn { color: var(--warn); } .bad { color: var(--bad); }
tr.unhealthy td:first-child { box-shadow: inset 4px 0 var(--bad); }
tr.unhealthy td.health { font-weight: 600; }
code { font-size: .9em; }
""".strip()
# The page's only style is this block: the CSP names its hash instead of allowing inline styles.
# A constant (importing hashlib costs the server ~3.5 MB of RSS); a unit test checks it matches CSS.
CSS_HASH = "sha256-SGGpu2E6EQMKJysJLxrFwEG2Zuztv2N6hqoau2e0SAA="
CONTENT_SECURITY_POLICY = f"default-src 'none'; style-src '{CSS_HASH}'; img-src data:"

_COLUMNS = (("Agent", ""), ("Type", ""), ("State", ""), ("Health", ""), ("CPU", "num"), ("Memory", "num"),
            ("Uptime", "num"), ("Restarts", "num"))


def _utc(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def _health_cell(a: AgentRow, now: float) -> str:
    """The Health cell: healthtext's words, after UNHEALTHY_MARK when unhealthy; an en dash when
    the file says nothing of health."""
    if a.healthy is None:
        return f'<td class="health">{NO_VALUE}</td>'
    text = escape(healthtext.describe(a.health, now))
    if a.healthy:
        return f'<td class="health ok">{text}</td>'
    return f'<td class="health bad"><span class="mark">{UNHEALTHY_MARK}</span> {text}</td>'


def render_page(summary: TextfileSummary | None, *, textfile: str, age_seconds: float | None,
                stale_after: float, problem: str | None, version: str, now: float) -> bytes:
    """The whole page. `summary` None means the file could not be read (`problem` says why); ages
    in the health column are counted to `now` (Unix time)."""
    e = escape
    out = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">', "<title>agent-exporter</title>",
        f"<style>{CSS}</style>", "</head>", "<body>",
        f"<h1>agent-exporter</h1><p>{e(version)} &middot; fallback server for the agents textfile</p>",
        '<nav><a href="metrics">Metrics</a><a href="health">Health</a></nav>',
    ]
    if problem is not None:
        out.append(f'<div class="banner" id="problem">{e(problem)}</div>')
    if summary is not None:
        running = summary.scalars.get("agents_running_total")
        total = summary.scalars.get("agents_total")
        facts = []
        if running is not None and total is not None:
            facts.append(f"{running:.0f} of {total:.0f} agents running")
        if any(a.healthy is not None for a in summary.agents):
            unhealthy = sum(a.healthy is False for a in summary.agents)
            facts.append(f"{unhealthy} unhealthy" if unhealthy else "all healthy")
        if age_seconds is not None and age_seconds < 0:
            facts.append(f"file dated {format_duration(-age_seconds)} in the future")
        elif age_seconds is not None:
            facts.append(f"file updated {format_duration(age_seconds)} ago")
        if summary.last_success is not None:
            facts.append(f"last successful run {_utc(summary.last_success)}")
        facts.append(f"stale after {format_duration(stale_after)}")
        out.append(f'<p id="summary">{e(" · ".join(facts))}</p>')
    out.append(f"<p>Textfile: <code>{e(textfile)}</code></p>")
    out.append('<table id="agents">')
    out.append("<thead><tr>" + "".join(
        f'<th class="{c}">{e(h)}</th>' if c else f"<th>{e(h)}</th>" for h, c in _COLUMNS)
        + "</tr></thead>")
    out.append("<tbody>")
    for a in summary.agents if summary is not None else ():
        state = a.shown_state
        cls = _STATE_CLASS.get(state, "warn")
        row = ' class="unhealthy"' if a.healthy is False else ""
        out.append(
            f'<tr{row} data-agent="{e(a.name)}"><td>{e(a.name)}</td><td>{e(a.type)}</td>'
            f'<td class="{cls}">{e(state)}</td>{_health_cell(a, now)}'
            f'<td class="num">{e(format_percent(a.cpu_percent))}</td>'
            f'<td class="num">{e(format_memory(a.memory_kb))}</td>'
            f'<td class="num">{e(format_duration(a.uptime_seconds))}</td>'
            f'<td class="num">{e(format_count(a.restarts))}</td></tr>'
        )
    if summary is None or not summary.agents:
        out.append(f'<tr><td colspan="{len(_COLUMNS)}">No agents in the file.</td></tr>')
    out += ["</tbody>", "</table>", "</body>", "</html>", ""]
    return "\n".join(out).encode("utf-8")
