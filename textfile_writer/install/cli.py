"""`agent-exporter install` and `uninstall`: click wiring only. The work is in installer.py and
uninstaller.py; their errors pass through to the console (console.run), which makes the exit code."""

from __future__ import annotations

import os
from typing import Any

import click
from click.core import ParameterSource

from ..clistyle import SETTINGS, deprecated, deprecated_option, option
from ..defaults import (
    INTERVAL_SECONDS,
    LISTEN_ADDRESS,
    MAX_INTERVAL_SECONDS,
    SCOPES,
    TEXTFILE_DIR,
    TEXTFILE_NAME,
    default_scope,
)
from . import package
from .installer import dry_run as print_dry_run
from .installer import install as do_install
from .request import SYSTEM_UNIT_DIR, build_request, default_unit_dir
from .uninstaller import uninstall as do_uninstall
from .units import MIN_INTERVAL


def _scope_options(func: Any) -> Any:
    func = option("--unit-dir", metavar="DIR",
                  help=f"where the unit files go (default: {SYSTEM_UNIT_DIR} for system scope, "
                       "$XDG_CONFIG_HOME/systemd/user for user scope)")(func)
    func = option("--scope", type=click.Choice(SCOPES), env="AGENT_EXPORTER_SCOPE", metavar="user|system",
                  help="system units in /etc/systemd/system, the writer running as the system user agent-exporter "
                       "that install creates; or user units for your own manager (systemctl --user) (default: "
                       "system for root, user for anybody else)")(func)
    # The spellings before 0.2, systemctl's flags: hidden, and each still a usage error beside the other.
    func = deprecated_option("--system", "system", is_flag=True, default=None)(func)
    return deprecated_option("--user", "user", is_flag=True, default=None)(func)


def _scope(ctx: click.Context, scope: str | None) -> str:
    """--scope, or the deprecated --user or --system (one of them, and not against --scope); else the
    default for who runs it."""
    flags = [f for f in ("user", "system") if ctx.params.get(f)]
    if len(flags) > 1:
        raise click.UsageError("--user and --system cannot be given together: choose one", ctx=ctx)
    if flags and scope not in (None, flags[0]) and ctx.get_parameter_source("scope") is ParameterSource.COMMANDLINE:
        raise click.UsageError(f"--scope {scope} and --{flags[0]} cannot be given together: choose one", ctx=ctx)
    for flag in flags:
        if deprecated(ctx, flag, "scope"):
            return flag
    return scope or default_scope()


def _only_system(ctx: click.Context, scope: str) -> None:
    if scope != "system":
        raise click.UsageError("--package is for the system scope of the Debian package: not with --scope user",
                               ctx=ctx)


@click.command(context_settings=SETTINGS)
@_scope_options
@option("--now", is_flag=True, help="also start the timer and the socket")
@option("--dry-run", is_flag=True,
        help="print the plan: every change install would make (accounts, directories, units, systemctl calls), "
             "then the units; change nothing. Where install would refuse: its one-line error and exit code")
@option("--no-server", is_flag=True,
        help="install the writer and its timer only, without the server's socket and service (for hosts whose "
             "node_exporter reads the file)")
@option("--config", env="AGENT_EXPORTER_CONFIG", metavar="FILE",
        help="the writer's YAML configuration (validated now; its textfile_dir, textfile_name and interval_seconds "
             "are the defaults below)")
@option("--textfile-dir", env="AGENT_EXPORTER_TEXTFILE_DIR", metavar="DIR",
        help=f"node_exporter's textfile directory, created when missing (default: the config's, else {TEXTFILE_DIR})")
@option("--textfile-name", env="AGENT_EXPORTER_TEXTFILE_NAME", metavar="NAME",
        help=f"the file's name, ending in .prom (default: the config's, else {TEXTFILE_NAME})")
@option("--interval", env="AGENT_EXPORTER_INTERVAL", type=click.FloatRange(MIN_INTERVAL, MAX_INTERVAL_SECONDS),
        metavar="SECONDS", help=f"how often the timer runs the writer, from {MIN_INTERVAL:g} to "
                                f"{MAX_INTERVAL_SECONDS:g} (default: the config's interval_seconds, else "
                                f"{INTERVAL_SECONDS:g})")
@option("--web.listen-address", "listen_address", env="AGENT_EXPORTER_WEB_LISTEN_ADDRESS", metavar="HOST:PORT",
        default=LISTEN_ADDRESS, help="the server's socket (systemd owns it; an IP address, [::1]:PORT for IPv6) "
                                     f"(default: {LISTEN_ADDRESS})")
@option("--web.config.file", "web_config", env="AGENT_EXPORTER_WEB_CONFIG_FILE", metavar="FILE",
        help="TLS and basic auth for the server; files it names must be readable by the service's user "
             "(default: none, plain HTTP)")
@option("--package", "packaged", is_flag=True,
        help="the Debian package's postinst: create the writer's user and group and give it the textfile "
             f"directory {TEXTFILE_DIR}, as --scope system does; no units (the package ships them in "
             f"{package.UNIT_DIR})")
@click.pass_context
def install(ctx: click.Context, /, scope: str | None, unit_dir: str | None, now: bool, dry_run: bool,
            no_server: bool, config: str | None, textfile_dir: str | None, textfile_name: str | None,
            interval: float | None, listen_address: str, web_config: str | None, packaged: bool,
            **_deprecated: object) -> None:
    """Install the writer's timer and the server's socket as hardened systemd units, and enable them.

    Writes agent-exporter.service (the writer, a oneshot), agent-exporter.timer (runs it every
    --interval seconds), agent-exporter-server.service and agent-exporter-server.socket (the server,
    started on the first connection; not with --no-server), runs daemon-reload and enables the
    timer and the socket. System scope also creates the writer's user and group and makes the
    textfile directory group-writable for it. Every step is said as it is taken; --dry-run says
    them and takes none. Running it again changes only what differs. `uninstall` removes exactly
    what it did.
    """
    scope = _scope(ctx, scope)
    if packaged:
        _only_system(ctx, scope)
        package.setup(say=click.echo)
        return
    req = build_request(scope, os.environ, config=config, textfile_dir=textfile_dir, textfile_name=textfile_name,
                        interval=interval, listen_address=listen_address, web_config=web_config,
                        unit_dir=unit_dir, server=not no_server, say=click.echo)
    if dry_run:
        print_dry_run(req, now, say=click.echo)
        return
    do_install(req, now, say=click.echo)


@click.command(context_settings=SETTINGS)
@_scope_options
@option("--package", "packaged", is_flag=True,
        help="the Debian package's prerm on removal: remove the textfile and give the textfile directory back its "
             "group and mode (the package's postrm removes the user, the group and the state on purge)")
@click.pass_context
def uninstall(ctx: click.Context, /, scope: str | None, unit_dir: str | None, packaged: bool,
              **_deprecated: object) -> None:
    """Stop and remove what `install` did: units, timer, socket, the writer's files and state, and
    the group and directory changes it recorded."""
    scope = _scope(ctx, scope)
    if packaged:
        _only_system(ctx, scope)
        package.undo(say=click.echo)
        return
    do_uninstall(scope, unit_dir or default_unit_dir(scope, os.environ), say=click.echo)
