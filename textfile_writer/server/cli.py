"""`agent-exporter serve`: the click command that wires the fallback HTTP server together.

Only wiring and I/O at the edge: options and environment, reading the configuration file, signals.
A typed error passes through to the console (console.run), which makes it one line and the exit code.
"""

from __future__ import annotations

import os
import resource
import signal

import click

from ..clistyle import SETTINGS, deprecated, deprecated_option, option
from ..config import Config
from ..configfile import load_config
from ..console import say, warn
from ..defaults import (
    INTERVAL_SECONDS,
    LISTEN_ADDRESS,
    STALE_FACTOR,
    TEXTFILE_DIR,
    TEXTFILE_NAME,
    default_scope,
    textfile_name_problem,
)
from ..errors import AgentExporterError, ConfigError
from .eventloop import Server, ServerOptions, activated_sockets, bind, describe
from .filecache import TextfileCache
from .routes import App
from .webconfig import load_web

READ_TIMEOUT = 5.0
MAX_CONNECTIONS = 1000


def _raise_fd_limit(wanted: int) -> None:
    """Room for max_connections sockets: systemd's default soft limit is 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass


@click.command("serve", context_settings=SETTINGS)
@option("--web.listen-address", "listen_addresses", env="AGENT_EXPORTER_WEB_LISTEN_ADDRESS", multiple=True,
        metavar="HOST:PORT", help=f"address to listen on; repeat for several (default: {LISTEN_ADDRESS}); ignored "
                                  "under systemd socket activation")
@option("--web.config.file", "web_config_file", env="AGENT_EXPORTER_WEB_CONFIG_FILE", metavar="FILE",
        help="TLS, basic auth and headers, in the Prometheus exporter toolkit's format; SIGHUP reloads it "
             "(default: none, plain HTTP)")
@option("--config", "config_file", env="AGENT_EXPORTER_CONFIG", metavar="FILE",
        help="the writer's YAML configuration, for the textfile's directory and name and interval_seconds "
             "(default: none, the built-in defaults)")
@option("--textfile-dir", "textfile_dir", env="AGENT_EXPORTER_TEXTFILE_DIR", metavar="DIR",
        help=f"the directory of the .prom file to serve (default: the config's, else {TEXTFILE_DIR})")
@option("--textfile-name", "textfile_name", env="AGENT_EXPORTER_TEXTFILE_NAME", metavar="NAME",
        help=f"the .prom file's name in that directory (default: the config's, else {TEXTFILE_NAME})")
@option("--interval", "interval", env="AGENT_EXPORTER_INTERVAL", type=click.FloatRange(min=0, min_open=True),
        metavar="SECONDS", help=f"the writer's period; /health is 503 once the file is older than {STALE_FACTOR} "
                                f"times this (default: the config's interval_seconds, else {INTERVAL_SECONDS:g})")
@option("--web.read-timeout", "read_timeout", env="AGENT_EXPORTER_WEB_READ_TIMEOUT", type=click.FloatRange(min=0.1),
        default=READ_TIMEOUT, metavar="SECONDS",
        help="a client must send a whole request (or finish TLS) within this, idle ones are closed; at least "
             f"0.1 (default: {READ_TIMEOUT:g})")
@option("--web.max-connections", "max_connections", env="AGENT_EXPORTER_WEB_MAX_CONNECTIONS",
        type=click.IntRange(min=1), default=MAX_CONNECTIONS, metavar="N",
        help=f"open connections at most; more wait in the kernel's backlog (default: {MAX_CONNECTIONS})")
@option("-v", "--verbose", is_flag=True, help="log every request on stderr")
# The spellings before 0.2: one path, and the interval in seconds by name.
@deprecated_option("--textfile", "textfile", env="AGENT_EXPORTER_TEXTFILE", metavar="PATH")
@deprecated_option("--interval-seconds", "interval_seconds", env="AGENT_EXPORTER_INTERVAL_SECONDS",
                   type=click.FloatRange(min=0, min_open=True), metavar="SECONDS")
@click.pass_context
def serve(ctx: click.Context, /, listen_addresses: tuple[str, ...], web_config_file: str | None,
          config_file: str | None, textfile_dir: str | None, textfile_name: str | None, interval: float | None,
          read_timeout: float, max_connections: int, verbose: bool, **_deprecated: object) -> None:
    """Serve the writer's textfile over HTTP: /metrics, /health and a landing page at /.

    /metrics is the file's bytes plus agent_exporter_textfile_age_seconds; the file is read
    again only when it changes. SIGTERM stops cleanly, SIGHUP reloads --web.config.file.
    A port another process holds is an error (exit 1).
    """
    textfile = deprecated(ctx, "textfile", "textfile_dir", "textfile_name")
    old_interval = deprecated(ctx, "interval_seconds", "interval")
    server, where = _build(listen_addresses, web_config_file, config_file, textfile or (textfile_dir, textfile_name),
                           interval if old_interval is None else old_interval, read_timeout, max_connections, verbose)
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    signal.signal(signal.SIGINT, lambda *_: server.stop())
    signal.signal(signal.SIGHUP, lambda *_: server.request_reload())
    say(f"serving on {where}")
    server.serve_forever()
    say("stopped")


def _textfile(config: Config, where: str | tuple[str | None, str | None]) -> str:
    """The served file: the deprecated --textfile's path as given, else the directory and the name,
    each from its option or the config."""
    if isinstance(where, str):
        return where
    directory, name = where
    if name is not None and (problem := textfile_name_problem(name)):
        raise ConfigError("--textfile-name", None, None, problem)
    return os.path.join(os.path.abspath(directory or config.textfile_dir), name or config.textfile_name)


def _build(listen_addresses: tuple[str, ...], web_config_file: str | None, config_file: str | None,
           textfile: str | tuple[str | None, str | None], interval_seconds: float | None, read_timeout: float,
           max_connections: int, verbose: bool) -> tuple[Server, str]:
    config = load_config(config_file, default_scope())
    path = _textfile(config, textfile)
    interval = interval_seconds if interval_seconds is not None else config.interval_seconds
    web = load_web(web_config_file)
    _raise_fd_limit(max_connections + 64)
    listeners = activated_sockets(os.environ)
    if listeners is not None:
        for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
            os.environ.pop(name, None)  # not for our children
    else:
        listeners = []
        try:
            for address in listen_addresses or (LISTEN_ADDRESS,):
                listeners.append(bind(address))
        except AgentExporterError:
            for s in listeners:
                s.close()
            raise
    cache = TextfileCache(path)
    if not os.path.exists(path):
        warn(f"textfile {path} does not exist yet; /metrics and /health answer 503 until it does")
    app = App(cache, interval, web)
    options = ServerOptions(read_timeout=read_timeout, max_connections=max_connections)
    server = Server(listeners, app, options, reload_web=lambda: load_web(web_config_file), log=say,
                    access_log=say if verbose else None)
    scheme = "https" if web.tls is not None else "http"
    where = ", ".join(f"{scheme}://{describe(s)}" for s in listeners) + f" (textfile {path}, " \
        f"stale after {STALE_FACTOR * interval:g}s" + (", basic auth" if web.auth is not None else "") + ")"
    return server, where
