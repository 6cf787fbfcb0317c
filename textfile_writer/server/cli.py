"""`agent-exporter serve`: the click command that wires the fallback HTTP server together.

Only wiring and I/O at the edge: options and environment, reading the configuration file, signals.
A typed error passes through to the console (console.run), which makes it one line and the exit code.
"""

from __future__ import annotations

import os
import resource
import signal

import click

from ..configfile import load_config
from ..console import say, warn
from ..defaults import LISTEN_ADDRESS, default_scope
from ..errors import AgentExporterError
from .eventloop import Server, ServerOptions, activated_sockets, bind, describe
from .filecache import TextfileCache
from .routes import App
from .webconfig import load_web


def _raise_fd_limit(wanted: int) -> None:
    """Room for max_connections sockets: systemd's default soft limit is 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass


@click.command("serve", context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--web.listen-address", "listen_addresses", multiple=True, metavar="HOST:PORT",
              envvar="AGENT_EXPORTER_WEB_LISTEN_ADDRESS", show_envvar=True,
              help=f"address to listen on; repeat for several (default: {LISTEN_ADDRESS}). "
                   "Ignored under systemd socket activation.")
@click.option("--web.config.file", "web_config_file", metavar="FILE",
              envvar="AGENT_EXPORTER_WEB_CONFIG_FILE", show_envvar=True,
              help="TLS, basic auth and headers, in the Prometheus exporter toolkit's format; "
                   "SIGHUP reloads it")
@click.option("--textfile", "textfile", metavar="PATH", envvar="AGENT_EXPORTER_TEXTFILE", show_envvar=True,
              help="the .prom file to serve (default: the config's textfile_dir/textfile_name)")
@click.option("--config", "config_file", metavar="FILE", envvar="AGENT_EXPORTER_CONFIG", show_envvar=True,
              help="the writer's YAML configuration, for the textfile's path and interval_seconds")
@click.option("--interval-seconds", "interval_seconds", type=click.FloatRange(min=0, min_open=True),
              metavar="SECONDS", envvar="AGENT_EXPORTER_INTERVAL_SECONDS", show_envvar=True,
              help="the writer's period; /health is 503 once the file is older than 3 times this "
                   "(default: the config's, else 10)")
@click.option("--web.read-timeout", "read_timeout", type=click.FloatRange(min=0.1), default=5.0,
              show_default=True, metavar="SECONDS", envvar="AGENT_EXPORTER_WEB_READ_TIMEOUT", show_envvar=True,
              help="a client must send a whole request (or finish TLS) within this, idle ones are closed")
@click.option("--web.max-connections", "max_connections", type=click.IntRange(min=1), default=1000,
              show_default=True, metavar="N", envvar="AGENT_EXPORTER_WEB_MAX_CONNECTIONS", show_envvar=True,
              help="open connections at most; more wait in the kernel's backlog")
@click.option("-v", "--verbose", is_flag=True, help="log every request on stderr")
def serve(listen_addresses: tuple[str, ...], web_config_file: str | None, textfile: str | None,
          config_file: str | None, interval_seconds: float | None, read_timeout: float,
          max_connections: int, verbose: bool) -> None:
    """Serve the writer's textfile over HTTP: /metrics, /health and a landing page at /.

    /metrics is the file's bytes plus agent_exporter_textfile_age_seconds; the file is read
    again only when it changes. SIGTERM stops cleanly, SIGHUP reloads --web.config.file.
    """
    server, where = _build(listen_addresses, web_config_file, textfile, config_file, interval_seconds,
                           read_timeout, max_connections, verbose)
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    signal.signal(signal.SIGINT, lambda *_: server.stop())
    signal.signal(signal.SIGHUP, lambda *_: server.request_reload())
    say(f"serving on {where}")
    server.serve_forever()
    say("stopped")


def _build(listen_addresses: tuple[str, ...], web_config_file: str | None, textfile: str | None,
           config_file: str | None, interval_seconds: float | None, read_timeout: float,
           max_connections: int, verbose: bool) -> tuple[Server, str]:
    config = load_config(config_file, default_scope())
    path = textfile or config.textfile_path
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
        f"stale after {3 * interval:g}s" + (", basic auth" if web.auth is not None else "") + ")"
    return server, where
