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
from .clistyle import SETTINGS, option
from .collect import Result
from .config import Config
from .console import PROG, warn
from .errors import AgentExporterError, CheckFailed
from .files import not_a_directory
from .options import COMMON, FULL_REFRESH_ENV, FULL_REFRESH_FLAG, FULL_REFRESH_HELP, Settings, resolve
from .proc import run
from .report import as_json, table
from .status import CpuWindow, look
from .writer import command

_STATE_DIR_ENV = next(o.env for o in COMMON if o.dest == "state_dir")

if TYPE_CHECKING:
    from .proc import Runner

F = TypeVar("F", bound=Callable[..., Any])


def common_options(func: F) -> F:
    for opt in reversed(COMMON):
        func = option(opt.flag, opt.dest, env=opt.env, read_env=False, metavar=opt.metavar, default=None,
                      help=opt.help)(func)
    return option("-v", "--verbose", is_flag=True,
                  help="say what was done on stderr (quiet on success otherwise)")(func)


@click.group(context_settings=SETTINGS)
@click.version_option(__version__, prog_name=PROG)
def cli() -> None:
    """Prometheus metrics for systemd services ("agents").

    `write` (run by a timer every 10 s) asks systemd about the configured agents, adds host
    memory, disk and load, and replaces a .prom file in node_exporter's textfile directory
    atomically. `serve` re-serves that file over HTTP for direct scraping.

    Usage errors exit 2, a failed run 1, each with one line on stderr. Shell completion, in
    ~/.bashrc (zsh_source or fish_source for those shells):

    \b
      eval "$(_AGENT_EXPORTER_COMPLETE=bash_source agent-exporter)"
    """


@cli.command()
@common_options
@option(FULL_REFRESH_FLAG, "full_refresh", env=FULL_REFRESH_ENV, read_env=False, is_flag=True, default=None,
        help=FULL_REFRESH_HELP)
def write(**values: Any) -> None:
    """Collect once and replace the .prom file atomically.

    Exit 0 on success (silent unless -v). On any failure: a one-line reason on stderr, a
    non-zero exit, and the previous file left exactly as it was.
    """
    command(values)


@cli.command()
@common_options
@option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
        help="output format: a table for people, or JSON (default: table)")
def status(fmt: str, **values: Any) -> None:
    """Show what the writer sees now: agent, type, state, CPU %, memory, uptime, restarts, health.

    HEALTH is 'ok' or why not, in words; an unhealthy row is marked '!'.

    CPU % is CPU used over a window that ends now, in % of one core: a difference of two readings
    of each agent's CPU counter, and status keeps none of its own. So the window starts at the
    installed writer's last reading when that is fresh (at most 3 intervals old; found where the
    timer keeps its state for the scope, or in --state-dir) and at least 0.5 s ago; else status
    reads the counters twice, 0.5 s apart. A line under the table says which. '?' marks a value
    that could not be known (an agent that restarted within the window has no CPU %), '-' one
    that does not apply. Nothing is written.
    """
    settings = resolve(values)
    explicit = bool(values.get("state_dir") or os.environ.get(_STATE_DIR_ENV))
    windows: list[CpuWindow] = []

    def one(mine: Settings, runner: Runner, *_ignored: object) -> tuple[Result, None]:
        # (with users:, each user's state directory as the writer keeps it, users.user_settings)
        result, window = look(mine, explicit or mine is not settings, runner)
        windows.append(window)
        return result, None

    if settings.config.users:  # each user's manager, as the writer asks them (users.py)
        from .users import collect_users

        result, _parts = collect_users(settings, one)
    else:
        result = one(settings, run)[0]
    for problem in result.problems:
        warn(problem)
    if fmt == "json":
        where = [{"seconds": round(w.seconds, 3), "state_dir": w.state_dir,
                  "source": "status" if w.state_dir is None else "writer"} for w in windows]
        # (one window; with users:, one for each user whose manager was asked, in the config's order)
        shown = where if settings.config.users else where[0]
        click.echo(json.dumps({**as_json(result.snapshot), "cpu_window": shown}, indent=2))
    else:
        click.echo(table(result.snapshot, tuple(dict.fromkeys(w.describe() for w in windows))))


@cli.command()
@common_options
@option("--system-check", is_flag=True, help="also check that systemctl answers and the directories are writable")
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
