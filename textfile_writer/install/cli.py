"""`agent-exporter install` and `uninstall`: click wiring only. The work is in installer.py and
uninstaller.py; their errors pass through to the console (console.run), which makes the exit code."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..defaults import (
    INTERVAL_SECONDS,
    LISTEN_ADDRESS,
    MAX_INTERVAL_SECONDS,
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

F = TypeVar("F", bound=Callable[..., Any])
_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _scope_options(func: Any) -> Any:
    func = click.option("--unit-dir", metavar="DIR",
                        help=f"where the unit files go (default: {SYSTEM_UNIT_DIR}, or "
                             "$XDG_CONFIG_HOME/systemd/user)")(func)
    func = click.option("--system", "system", is_flag=True,
                        help="system units in /etc/systemd/system; the writer runs as the system user agent-exporter, "
                             "which install creates (default for root)")(func)
    return click.option("--user", "user", is_flag=True,
                        help="units for your own user manager (systemctl --user; default for other users); "
                             "not with --system")(func)


def _scope(user: bool, system: bool) -> str:
    """--user or --system, at most one of them; else the default for who runs it."""
    if user and system:
        raise click.UsageError("--user and --system cannot be given together: choose one",
                               ctx=click.get_current_context())
    return "user" if user else "system" if system else default_scope()


def _package_option(text: str) -> Callable[[F], F]:
    return click.option("--package", "packaged", is_flag=True, help=text)


def _only_system(scope: str) -> None:
    if scope != "system":
        raise click.UsageError("--package is for the system scope of the Debian package: not with --user",
                               ctx=click.get_current_context())


@click.command(context_settings=_SETTINGS)
@_scope_options
@click.option("--now", is_flag=True, help="also start the timer and the socket")
@click.option("--dry-run", is_flag=True,
              help="print the plan: every change install would make (accounts, directories, units, systemctl "
                   "calls), then the units; change nothing. Where install would refuse: its one-line error and "
                   "exit code")
@click.option("--no-server", is_flag=True,
              help="install the writer and its timer only, without the server's socket and service (for hosts "
                   "whose node_exporter reads the file)")
@click.option("--config", metavar="FILE", envvar="AGENT_EXPORTER_CONFIG", show_envvar=True,
              help="the writer's YAML configuration (validated now; its textfile_dir, textfile_name and "
                   "interval_seconds are the defaults below)")
@click.option("--textfile-dir", metavar="DIR", envvar="AGENT_EXPORTER_TEXTFILE_DIR", show_envvar=True,
              help="node_exporter's textfile directory (default: the config's, else "
                   f"{TEXTFILE_DIR}); created when missing")
@click.option("--textfile-name", metavar="NAME", envvar="AGENT_EXPORTER_TEXTFILE_NAME", show_envvar=True,
              help=f"the file's name, ending in .prom (default: the config's, else {TEXTFILE_NAME})")
@click.option("--interval", type=click.FloatRange(MIN_INTERVAL, MAX_INTERVAL_SECONDS), metavar="SECONDS",
              envvar="AGENT_EXPORTER_INTERVAL", show_envvar=True,
              help="how often the timer runs the writer (default: the config's interval_seconds, else "
                   f"{INTERVAL_SECONDS:g})")
@click.option("--web.listen-address", "listen_address", metavar="HOST:PORT", default=LISTEN_ADDRESS,
              show_default=True, envvar="AGENT_EXPORTER_WEB_LISTEN_ADDRESS", show_envvar=True,
              help="the server's socket (systemd owns it; an IP address, [::1]:PORT for IPv6)")
@click.option("--web.config.file", "web_config", metavar="FILE", envvar="AGENT_EXPORTER_WEB_CONFIG_FILE",
              show_envvar=True, help="TLS and basic auth for the server (files it names must be readable "
                                     "by the service's user)")
@_package_option("the Debian package's postinst: create the writer's user and group and give it the textfile "
                 f"directory {TEXTFILE_DIR}, as --system does; no units (the package ships them in "
                 f"{package.UNIT_DIR})")
def install(user: bool, system: bool, unit_dir: str | None, now: bool, dry_run: bool, no_server: bool,
            config: str | None, textfile_dir: str | None, textfile_name: str | None, interval: float | None,
            listen_address: str, web_config: str | None, packaged: bool) -> None:
    """Install the writer's timer and the server's socket as hardened systemd units, and enable them.

    Writes agent-exporter.service (the writer, a oneshot), agent-exporter.timer (runs it every
    --interval seconds), agent-exporter-server.service and agent-exporter-server.socket (the server,
    started on the first connection; not with --no-server), runs daemon-reload and enables the
    timer and the socket. System scope also creates the writer's user and group and makes the
    textfile directory group-writable for it. Every step is said as it is taken; --dry-run says
    them and takes none. Running it again changes only what differs. `uninstall` removes exactly
    what it did.
    """
    scope = _scope(user, system)
    if packaged:
        _only_system(scope)
        package.setup(say=click.echo)
        return
    req = build_request(scope, os.environ, config=config, textfile_dir=textfile_dir, textfile_name=textfile_name,
                        interval=interval, listen_address=listen_address, web_config=web_config,
                        unit_dir=unit_dir, server=not no_server, say=click.echo)
    if dry_run:
        print_dry_run(req, now, say=click.echo)
        return
    do_install(req, now, say=click.echo)


@click.command(context_settings=_SETTINGS)
@_scope_options
@_package_option("the Debian package's prerm on removal: remove the textfile and give the textfile directory "
                 "back its group and mode (the package's postrm removes the user, the group and the state on "
                 "purge)")
def uninstall(user: bool, system: bool, unit_dir: str | None, packaged: bool) -> None:
    """Stop and remove what `install` did: units, timer, socket, the writer's files and state, and
    the group and directory changes it recorded."""
    scope = _scope(user, system)
    if packaged:
        _only_system(scope)
        package.undo(say=click.echo)
        return
    do_uninstall(scope, unit_dir or default_unit_dir(scope, os.environ), say=click.echo)
