"""The writer's click command line (write, status, check): wiring only. __main__ adds `serve`,
`install` and `uninstall` from their own rooms. Core errors pass through to the console
(console.run), which turns each into one line and the exit code."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from . import __version__, humanize, systemd
from .collect import Result, collect
from .config import Config
from .console import PROG, warn
from .errors import AgentExporterError, CheckFailed
from .files import not_a_directory
from .options import COMMON, FULL_REFRESH_FLAG, FULL_REFRESH_HELP, Settings, resolve
from .proc import run
from .report import as_json, table
from .writer import command, load_previous

if TYPE_CHECKING:
    from .proc import Runner

F = TypeVar("F", bound=Callable[..., Any])


def common_options(func: F) -> F:
    for opt in reversed(COMMON):
        func = click.option(opt.flag, opt.dest, metavar=opt.metavar, default=None,
                            help=f"{opt.help}. [env: {opt.env}]")(func)
    return click.option("-v", "--verbose", is_flag=True,
                        help="say what was done on stderr (quiet on success otherwise)")(func)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name=PROG)
def cli() -> None:
    """Prometheus metrics for systemd services ("agents").

    `write` (run by a timer every 10 s) asks systemd about the configured agents, adds host
    memory, disk and load, and replaces a .prom file in node_exporter's textfile directory
    atomically. `serve` re-serves that file over HTTP for direct scraping.
    """


@cli.command()
@common_options
@click.option(FULL_REFRESH_FLAG, "full_refresh", is_flag=True, default=None, help=FULL_REFRESH_HELP)
def write(**values: Any) -> None:
    """Collect once and replace the .prom file atomically.

    Exit 0 on success (silent unless -v). On any failure: a one-line reason on stderr, a
    non-zero exit, and the previous file left exactly as it was.
    """
    command(values)


@cli.command()
@common_options
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="output format")
def status(fmt: str, **values: Any) -> None:
    """Show what the writer sees now: agent, type, state, CPU %, memory, uptime, restarts, health.

    HEALTH is 'ok' or why not, in words; an unhealthy row is marked '!'.

    CPU % is measured since the writer's last run (its state directory); '-' when unknown.
    Nothing is written.
    """
    settings = resolve(values)
    if settings.config.users:  # each user's manager, as the writer asks them (users.py)
        from .users import collect_users

        result, _parts = collect_users(settings, _status_of)
    else:
        result = _status_of(settings, run)[0]
    for problem in result.problems:
        warn(problem)
    if fmt == "json":
        click.echo(json.dumps(as_json(result.snapshot), indent=2))
    else:
        click.echo(table(result.snapshot))


def _status_of(settings: Settings, runner: Runner, *_ignored: object) -> tuple[Result, None]:
    """A full collection from the writer's last counters (for CPU %), keeping nothing."""
    previous, _why = load_previous(settings)
    return collect(settings.config, previous, runner, settings.timeout), None


@cli.command()
@common_options
@click.option("--system-check", is_flag=True,
              help="also check that systemctl answers and the directories are writable")
def check(system_check: bool, **values: Any) -> None:
    """Validate the configuration and say what it contains."""
    settings = resolve(values, use_cache=False)
    cfg = settings.config
    explicit, patterns = cfg.explicit, cfg.patterns
    click.echo(f"config: {cfg.source}: OK")
    click.echo(f"  scope {cfg.scope}, every {cfg.interval_seconds:g}s -> {cfg.textfile_path}")
    click.echo(f"  {humanize.plural(len(explicit), 'explicit agent')}, {humanize.plural(len(patterns), 'pattern')} "
               f"({', '.join(str(p.pattern) for p in patterns) or 'none'}), disk {cfg.disk_path}")
    if cfg.users:
        for u in cfg.users:
            mine = cfg._replace(agents=u.agents)
            click.echo(f"  user {u.name} (its own manager): {humanize.plural(len(mine.explicit), 'explicit agent')}, "
                       f"{humanize.plural(len(mine.patterns), 'pattern')}")
    if not cfg.agents:
        warn("no agents: `agents:` is empty, so the file will report none (leave the key out for the "
             "default, every agent-*.service)")
    if not system_check:
        return
    problems: list[str] = []
    if cfg.users:
        from .users import account, runner_as

        for u in cfg.users:
            who = account(u.name)
            if who is None:
                problems.append(f"user {u.name}: no such user")
            else:
                _check_manager(cfg._replace(agents=u.agents), f"user {u.name}", runner_as(who), settings.timeout,
                               problems)
    else:
        _check_manager(cfg, cfg.scope, run, settings.timeout, problems)
    for label, path in (("textfile directory", cfg.textfile_dir), ("state directory", settings.state_dir)):
        target = path if os.path.isdir(path) else os.path.dirname(path)
        if label == "textfile directory" and (what := not_a_directory(path)):
            problems.append(f"{label} {path} {what}")
        elif not os.access(target, os.W_OK):
            problems.append(f"{label} {path} is not writable by this user")
        else:
            click.echo(f"{label} {path}: writable")
    if problems:
        raise CheckFailed(problems)


def _check_manager(cfg: Config, label: str, runner: Runner, timeout: float, problems: list[str]) -> None:
    """Whether the manager answers, and how many of the configuration's agents it has."""
    explicit, patterns = cfg.explicit, cfg.patterns
    try:
        mine, found = systemd.query(cfg.scope, [str(a.unit) for a in explicit], [str(p.pattern) for p in patterns],
                                    runner, timeout)
        missing = [str(a.unit) for a, b in zip(explicit, mine, strict=True) if b.get("LoadState") == "not-found"]
        click.echo(f"systemd ({label}): answers; {len(mine) + len(found)} agents found"
                   + (f", not found: {', '.join(missing)}" if missing else ""))
    except AgentExporterError as exc:
        problems.append(f"{label}: {exc}" if label != cfg.scope else str(exc))
