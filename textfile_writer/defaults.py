"""Paths, names and defaults that the writer, the server and the installer share, each rule written once.

Scopes and the default one, the textfile's directory and name (and the rule a name must follow),
the names the writer gives its lock and temporary files beside it, the state directory and the
files in it, the units' names, the writer's period and the server's listen address (with its
syntax). The writer's fast path imports this module: nothing but `os` (and errors.shown) here.
"""

from __future__ import annotations

import os

from .errors import shown

TYPE_CHECKING = False  # typing, collections.abc: names for the type checker only
if TYPE_CHECKING:
    from collections.abc import Mapping

SCOPES = ("user", "system")

TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"  # Debian's node_exporter reads this one
TEXTFILE_NAME = "agents.prom"
TEMP_SUFFIX = ".tmp"

INTERVAL_SECONDS = 10.0
MAX_INTERVAL_SECONDS = 86400.0
# The textfile, and the writer's state, are stale once older than this many intervals: the server's
# /health turns 503, `status` stops taking CPU % from the writer's last run.
STALE_FACTOR = 3

LISTEN_ADDRESS = "127.0.0.1:9200"

STATE_DIRECTORY = "agent-exporter"  # the units' StateDirectory=, under /var/lib or the user's state home
SYSTEM_STATE_DIR = f"/var/lib/{STATE_DIRECTORY}"
STATE_FILE = "cpu-state"  # the previous run's CPU counters (state.py)
CONFIG_CACHE_FILE = "config-cache.marshal"  # the validated configuration (configfile.py)
UNIT_CACHE_FILE = "unit-cache.marshal"  # the slow unit properties of the last run (unitcache.py)
STATE_FILES = (STATE_FILE, CONFIG_CACHE_FILE, UNIT_CACHE_FILE)
USERS_STATE_DIR = "users"  # config with users: each user's state in <state dir>/users/<name>/ (users.py)
USER_RUNTIME_DIR = "/run/user"  # each user's XDG_RUNTIME_DIR is here, /run/user/<uid>: its manager's sockets

WRITER_SERVICE = "agent-exporter.service"
WRITER_TIMER = "agent-exporter.timer"
SERVER_SERVICE = "agent-exporter-server.service"
SERVER_SOCKET = "agent-exporter-server.socket"


def default_scope() -> str:
    """root watches the system manager; anybody else their own user manager."""
    return "system" if os.geteuid() == 0 else "user"


def textfile_name_problem(name: str) -> str | None:
    """Why `name` cannot be the textfile's name, or None when it can."""
    if "/" in name or "\0" in name or name.startswith("."):
        return f"must be a plain file name (no '/' or NUL, not hidden), got {shown(name)}"
    if not name.endswith(".prom"):
        return f"must end in .prom (node_exporter reads only those), got {shown(name)}"
    return None


def lock_name(textfile_name: str) -> str:
    """The lock file beside the textfile: hidden, and not `*.prom`, so node_exporter never reads it."""
    return f".{textfile_name}.lock"


def temp_prefix(name: str) -> str:
    """How a temporary file for `name` begins (it ends in TEMP_SUFFIX): hidden, never `*.prom`."""
    return f".{name}."


def user_state_home(environ: Mapping[str, str]) -> str:
    return environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")


def user_config_home(environ: Mapping[str, str]) -> str:
    return environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")


def default_state_dir(environ: Mapping[str, str]) -> str:
    if environ.get("STATE_DIRECTORY"):  # set by systemd for StateDirectory=
        return environ["STATE_DIRECTORY"].split(":")[0]
    if os.geteuid() == 0:
        return SYSTEM_STATE_DIR
    return os.path.join(user_state_home(environ), STATE_DIRECTORY)


def writer_state_dirs(scope: str, environ: Mapping[str, str]) -> list[str]:
    """Where the installed writer of `scope` keeps its state (StateDirectory=), most likely first:
    $STATE_DIRECTORY inside a unit; /var/lib for the system manager; for a user manager
    $XDG_STATE_HOME (systemd 254 and later), else $XDG_CONFIG_HOME (before 254)."""
    if environ.get("STATE_DIRECTORY"):
        return [default_state_dir(environ)]
    if scope == "system":
        return [SYSTEM_STATE_DIR]
    return [os.path.join(home, STATE_DIRECTORY) for home in (user_state_home(environ), user_config_home(environ))]


def split_listen_address(address: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or `:port` (every interface) -> (host, port); ValueError says what is wrong."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit() or not port_text.isascii() or int(port_text) > 65535:
        raise ValueError("expected HOST:PORT, e.g. 127.0.0.1:9200")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError("write an IPv6 address in brackets, e.g. [::1]:9200")
    return host, int(port_text)

# An agent is crash-looping after CRASH_LOOP_STARTS starts within CRASH_LOOP_WINDOW seconds
# (health.py decides it; status and the landing page say "6 starts in 10 min").
CRASH_LOOP_STARTS = 5
CRASH_LOOP_WINDOW = 600.0
