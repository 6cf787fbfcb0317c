"""README.md and docs/ against the code they describe.

Each check reads both sides: the options from the click commands themselves (and `write`'s
environment variables from their help, where the fast path reads them), the metric families from
a file rendered the way the writer renders it plus the age family the server appends, the
configuration keys from the parser's own "unknown key" message, the alert rules from
prometheus-alerts.yml, the deploy script's options from its --help. A row without its option, or an
option without its row, fails with both lists named.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import click
import pytest
import yaml
from builders import agent, snapshot

from textfile_writer.__main__ import program
from textfile_writer.config import parse_config
from textfile_writer.console import PROG
from textfile_writer.errors import ConfigError
from textfile_writer.metrics import render
from textfile_writer.server.filecache import TextfileCache

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
README = REPO / "README.md"
README_MAX_LINES = 120

BACKTICKED = re.compile(r"`([^`]+)`")
CELL_SPLIT = re.compile(r"(?<!\\)\|")


class Table(NamedTuple):
    heading: str
    header: list[str]
    rows: list[list[str]]


def tables(path: Path) -> list[Table]:
    """Every pipe table of a Markdown file, with the heading above it (fenced code skipped)."""
    found: list[Table] = []
    heading, current, fenced = "", None, False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if fenced:
            continue
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        if not line.startswith("|"):
            current = None
            continue
        cells = [c.strip() for c in CELL_SPLIT.split(line.strip()[1:-1])]
        if current is None:
            current = Table(heading, cells, [])
            found.append(current)
        elif not all(set(c) <= set("-: ") for c in cells):
            current.rows.append(cells)
    return found


def ticked(cell: str) -> list[str]:
    return [t.replace("\\|", "|") for t in BACKTICKED.findall(cell)]


# --- the command line: configuration.md's option tables against the click commands ---------------

COMMAND_IN_HEADING = re.compile(r"`agent-exporter(?: ([a-z-]+))?`")
ENV_IN_HELP = re.compile(r"\[env(?: var)?: ([A-Z][A-Z0-9_]*)")
OptionTable = dict[str, dict[str, str | None]]  # command ("" for the group) -> flag -> environment variable


def commands() -> Iterator[tuple[str, click.Context]]:
    """("" for the group, then each command's name), with the context its --help runs in: a
    command's context inherits the group's settings (-h beside --help)."""
    group = program()
    top = click.Context(group, info_name="agent-exporter", **group.context_settings)
    yield "", top
    for name, command in group.commands.items():
        yield name, click.Context(command, info_name=name, parent=top, **command.context_settings)


def code_options() -> OptionTable:
    """Every option each command's --help shows, with the environment variable that sets it: click's
    envvar, else the `[env: NAME]` its help names (the writer's shared options are read by options.py,
    not by click, so their help is where they are declared)."""
    out: OptionTable = {}
    for name, ctx in commands():
        command = ctx.command
        options: dict[str, str | None] = {}
        for param in command.get_params(ctx):
            if not isinstance(param, click.Option) or param.hidden:
                continue
            env = param.envvar if isinstance(param.envvar, str) else None
            if env is None:
                record = param.get_help_record(ctx)
                match = ENV_IN_HELP.search(record[1]) if record else None
                env = match.group(1) if match else None
            for flag in (*param.opts, *param.secondary_opts):
                options[flag] = env
        out[name] = options
    return out


def documented_options() -> OptionTable:
    out: OptionTable = {}
    for table in tables(DOCS / "configuration.md"):
        names = COMMAND_IN_HEADING.findall(table.heading)
        if not names or table.header[:2] != ["option", "environment"]:
            continue
        for row in table.rows:
            flags = [t.split()[0] for t in ticked(row[0]) if t.startswith("-")]
            envs = [t.split("=")[0] for t in ticked(row[1])]
            assert flags, f"configuration.md, {table.heading}: a row without an option: {row}"
            assert len(envs) <= 1, f"configuration.md, {table.heading}: {row[0]} names several variables"
            for name in names:
                for flag in flags:
                    documented = out.setdefault(name, {})
                    assert flag not in documented, f"configuration.md documents {flag} of '{name}' twice"
                    documented[flag] = envs[0] if envs else None
    return out


def test_every_command_has_its_option_table() -> None:
    assert set(documented_options()) == set(code_options())


@pytest.mark.parametrize("command", sorted(name for name, _ in commands()))
def test_option_tables_match_the_code(command: str) -> None:
    code, docs = code_options()[command], documented_options().get(command, {})
    shown = f"agent-exporter {command}".strip()
    missing, extra = sorted(set(code) - set(docs)), sorted(set(docs) - set(code))
    assert not missing, f"{shown}: options missing from docs/configuration.md: {missing}"
    assert not extra, f"{shown}: docs/configuration.md documents options that do not exist: {extra}"
    wrong = {flag: (docs[flag], env) for flag, env in code.items() if docs[flag] != env}
    assert not wrong, f"{shown}: environment variable in the docs differs from the code (docs, code): {wrong}"


def test_documented_shell_completion_works_on_the_installed_command() -> None:
    """configuration.md's `_AGENT_EXPORTER_COMPLETE=bash_source agent-exporter`, on the command pip installs."""
    docs = (DOCS / "configuration.md").read_text()
    assert f'eval "$(_{PROG.upper().replace("-", "_")}_COMPLETE=bash_source {PROG})"' in docs
    exe = str(Path(sys.executable).with_name(PROG))
    script = subprocess.run([exe], env={**os.environ, "_AGENT_EXPORTER_COMPLETE": "bash_source"},
                            capture_output=True, text=True, timeout=60, check=True).stdout
    assert f"complete -o nosort -F _agent_exporter_completion {PROG}" in script
    words = subprocess.run([exe], env={**os.environ, "_AGENT_EXPORTER_COMPLETE": "bash_complete",
                                       "COMP_WORDS": f"{PROG} install --dry", "COMP_CWORD": "2"},
                           capture_output=True, text=True, timeout=60, check=True).stdout
    assert words.split() == ["plain,--dry-run"]


# --- metrics.md's reference against a rendered file and the server's own family ---------------------

FULL_AGENT = agent(
    state="failed", exit_code=3, exit_signal=9, exit_time_seconds=1795486000.0, recent_starts=2,
    memory_max_bytes=2**30, memory_high_bytes=2**29, oom_kills=1, oom_time_seconds=1795486100.0,
    reason="failed", timer="agent-core_dev.timer", timer_last_seconds=1795486000.0,
    timer_next_seconds=1795486600.0, probe_success=False, probe_duration_seconds=0.25, probe_status=503)
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? ")
LABEL_NAME = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="')


class Family(NamedTuple):
    type: str
    labels: frozenset[str]


def families(text: str) -> dict[str, Family]:
    """{family: (its # TYPE, the label names of its samples)} of exposition text."""
    types = {line.split()[2]: line.split()[3] for line in text.splitlines() if line.startswith("# TYPE ")}
    labels: dict[str, set[str]] = {name: set() for name in types}
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match and not line.startswith("#"):
            labels[match.group(1)] |= set(LABEL_NAME.findall(match.group(2) or ""))
    return {name: Family(kind, frozenset(labels[name])) for name, kind in types.items()}


def served_families(tmp_path: Path) -> dict[str, Family]:
    """What /metrics serves: the writer's file of an agent with every optional sample, and the age family."""
    path = tmp_path / "agents.prom"
    path.write_text(render(snapshot(FULL_AGENT)))
    return families(TextfileCache(str(path)).load().plain(1795486400.0).decode())


def documented_families() -> dict[str, Family]:
    out: dict[str, Family] = {}
    for table in tables(DOCS / "metrics.md"):
        if table.header[:3] != ["metric", "type", "labels"]:
            continue
        for row in table.rows:
            for name in ticked(row[0]):
                assert name not in out, f"metrics.md documents {name} twice"
                out[name] = Family(row[1], frozenset(ticked(row[2])))
    return out


def test_every_family_is_documented_and_every_documented_family_exists(tmp_path: Path) -> None:
    served, docs = served_families(tmp_path), documented_families()
    assert "agent_exporter_textfile_age_seconds" in served  # the server's own, beside the writer's
    missing, extra = sorted(set(served) - set(docs)), sorted(set(docs) - set(served))
    assert not missing, f"families missing from docs/metrics.md: {missing}"
    assert not extra, f"docs/metrics.md documents families that are not rendered: {extra}"


def test_documented_types_and_labels_are_the_rendered_ones(tmp_path: Path) -> None:
    served, docs = served_families(tmp_path), documented_families()
    wrong = {name: (docs[name], family) for name, family in served.items() if name in docs and docs[name] != family}
    assert not wrong, f"docs/metrics.md differs from the rendered file (docs, rendered): {wrong}"


def test_the_full_agent_has_a_sample_in_every_family(tmp_path: Path) -> None:
    """Otherwise a family's labels above would be checked against nothing."""
    text = render(snapshot(FULL_AGENT))
    sampled = {match.group(1) for match in map(SAMPLE.match, text.splitlines()) if match}
    assert sampled == set(families(text))


# --- configuration.md's key tables against the parser ------------------------------------------------

KEY_TABLES = {
    "Top-level keys": "zz_unknown: 1\n",
    "Agent entries (`agents:`)": "agents:\n  - zz_unknown: 1\n",
    "`probe:`": "agents:\n  - unit: a\n    probe: {zz_unknown: 1}\n",
}


def parser_keys(text: str) -> set[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "docs-check.yml")
    match = re.search(r"expected one of: ([^)]*)\)", str(caught.value))
    assert match, str(caught.value)
    return set(match.group(1).split(", "))


@pytest.mark.parametrize("heading", sorted(KEY_TABLES))
def test_configuration_keys_match_the_parser(heading: str) -> None:
    found = [t for t in tables(DOCS / "configuration.md") if t.heading == heading and t.header[0] == "key"]
    assert len(found) == 1, f"configuration.md has no single key table under '{heading}'"
    documented, parsed = {ticked(row[0])[0] for row in found[0].rows}, parser_keys(KEY_TABLES[heading])
    assert not parsed - documented, f"keys missing from configuration.md ({heading}): {sorted(parsed - documented)}"
    assert not documented - parsed, f"configuration.md ({heading}) documents keys the parser refuses: " \
        f"{sorted(documented - parsed)}"


# --- deploy.md against the rules and the deploy script -------------------------------------------------


def test_alert_tables_match_the_rules() -> None:
    rules = yaml.safe_load((REPO / "deploy/prometheus/prometheus-alerts.yml").read_text())
    code = {r["alert"]: r["labels"]["severity"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    docs: dict[str, str] = {}
    for table in tables(DOCS / "deploy.md"):
        if table.header[:2] == ["alert", "severity"]:
            docs.update({ticked(row[0])[0]: row[1] for row in table.rows})
    missing, extra = sorted(set(code) - set(docs)), sorted(set(docs) - set(code))
    assert not missing, f"alerts missing from docs/deploy.md: {missing}"
    assert not extra, f"docs/deploy.md documents alerts that do not exist: {extra}"
    assert docs == code, "a severity in docs/deploy.md differs from prometheus-alerts.yml"


def test_deploy_script_options_match_its_help() -> None:
    done = subprocess.run(["bash", str(REPO / "deploy/deploy_agent_monitoring.sh"), "--help"], capture_output=True,
                          text=True, timeout=30, check=True)
    options = done.stdout.split("\nOptions:\n", 1)[1].split("\n\n", 1)[0]
    code = {flag for line in options.splitlines() if line.strip().startswith("-")
            for flag in re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", re.split(r"\s{2,}", line.strip())[0])}
    table = [t for t in tables(DOCS / "deploy.md") if t.heading == "Quick deploy on one host"]
    assert len(table) == 1
    docs = {t.split()[0] for row in table[0].rows for t in ticked(row[0])}
    assert not code - docs, f"deploy script options missing from docs/deploy.md: {sorted(code - docs)}"
    assert not docs - code, f"docs/deploy.md documents script options that do not exist: {sorted(docs - code)}"


# --- links, anchors and the README's length -----------------------------------------------------------

FENCE = re.compile(r"^```.*?^```", re.S | re.M)
INLINE_LINK = re.compile(r"\]\(([^)\s]+)\)")
REFERENCE = re.compile(r"^\[[^\]]+\]:\s*(\S+)", re.M)


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces made hyphens, repeats numbered."""
    seen: dict[str, int] = {}
    out = set()
    for line in FENCE.sub("", path.read_text()).splitlines():
        if line.startswith("#"):
            slug = re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page: Path) -> None:
    text = FENCE.sub("", page.read_text())
    text = re.sub(r"`[^`\n]*`", "", text)
    broken = []
    for target in INLINE_LINK.findall(text) + REFERENCE.findall(text):
        if re.match(r"[a-z]+:", target):
            continue
        path_part, _, anchor = target.partition("#")
        resolved = (page.parent / path_part).resolve() if path_part else page
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no such heading")
    assert not broken, f"{page.name}: {broken}"


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {(REPO / t.partition("#")[0]).resolve() for t in INLINE_LINK.findall(README.read_text())}
    unlinked = sorted(p.name for p in DOCS.glob("*.md") if p.resolve() not in linked)
    assert not unlinked, f"docs pages the README does not link: {unlinked}"


def test_readme_fits_on_a_screen_or_two() -> None:
    lines = README.read_text().count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail to docs/"
