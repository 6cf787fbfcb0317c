"""The options shared by write, status and check, declared once.

cli.py builds click options from this table; the `write` fast path (__main__.py) parses the same
table without importing click, because the timer runs `write` every 10 seconds on every host and
click costs more to import than the rest of a run. Anything the fast parser does not recognise
(--help, a typo) falls through to click, which reports it.
"""

from __future__ import annotations

import os

from .config import Config
from .defaults import (
    SCOPES,
    STATE_DIRECTORY,
    SYSTEM_STATE_DIR,
    TEXTFILE_DIR,
    TEXTFILE_NAME,
    default_scope,
    default_state_dir,
    textfile_name_problem,
)
from .errors import ConfigError, shown
from .files import path_problem
from .records import NamedTuple
from .systemd import CEILING_SECONDS, PER_UNIT_SECONDS

DEFAULT_TIMEOUT = 5.0


class Option(NamedTuple):
    flag: str
    dest: str
    metavar: str
    help: str

    @property
    def env(self) -> str:
        return "AGENT_EXPORTER_" + self.dest.upper()


COMMON = (
    Option("--config", "config", "FILE",
           "YAML configuration (default: every agent-*.service of the scope, type primary)"),
    Option("--scope", "scope", "user|system",
           "which systemd manager to ask (default: the config's; else system for root, user "
           "for anybody else)"),
    Option("--textfile-dir", "textfile_dir", "DIR",
           f"directory node_exporter's textfile collector reads (default: the config's, else {TEXTFILE_DIR})"),
    Option("--textfile-name", "textfile_name", "NAME",
           f"file name in that directory, ending in .prom (default: {TEXTFILE_NAME})"),
    Option("--state-dir", "state_dir", "DIR",
           f"where the previous CPU counters are kept (default: $STATE_DIRECTORY, else {SYSTEM_STATE_DIR} "
           f"for root, else $XDG_STATE_HOME/{STATE_DIRECTORY}; status without it looks where the installed "
           "timer keeps them)"),
    Option("--timeout", "timeout", "SECONDS",
           f"how long waiting for the lock, and one systemctl call, may take; a call gets "
           f"{PER_UNIT_SECONDS * 1000:g} ms more per unit it asks about, and all of a run's calls end by "
           f"{CEILING_SECONDS:g} s, or SECONDS if longer (default: {DEFAULT_TIMEOUT:g})"),
)

TYPE_CHECKING = False  # typing, collections.abc: names for the type checker only
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from .configfile import PendingCache
# `write` only: the one switch of the fast path besides -v.
FULL_REFRESH_FLAG = "--full-refresh"
FULL_REFRESH_ENV = "AGENT_EXPORTER_FULL_REFRESH"
FULL_REFRESH_HELP = ("ask systemd about every unit with `systemctl show`, ignoring the unit cache (which this "
                     "run writes anew): what every run did before change-driven collection, to compare or "
                     "repair (the variable: 1 or 0)")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")
_BY_FLAG = {o.flag: o for o in COMMON}
_BY_DEST = {o.dest: o for o in COMMON}


class Settings(NamedTuple):
    config: Config
    state_dir: str
    timeout: float
    verbose: bool
    full_refresh: bool = False
    config_cache: PendingCache | None = None  # kept by the writer once it has written


def parse_fast(args: Sequence[str]) -> dict[str, str | None] | None:
    """Parse `write`'s arguments without click; None means "let click handle this"."""
    values: dict[str, str | None] = {"verbose": None, "full_refresh": None}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-v", "--verbose", FULL_REFRESH_FLAG):
            values["full_refresh" if arg == FULL_REFRESH_FLAG else "verbose"] = "1"
            i += 1
            continue
        flag, eq, inline = arg.partition("=")
        opt = _BY_FLAG.get(flag)
        if opt is None or opt.dest in values:
            return None
        if eq:
            values[opt.dest] = inline
            i += 1
        elif i + 1 < len(args):
            values[opt.dest] = args[i + 1]
            i += 2
        else:
            return None
    return values


def resolve(values: Mapping[str, str | bool | None], environ: Mapping[str, str] | None = None,
            use_cache: bool = True) -> Settings:
    """Command line over environment over config file over built-in defaults."""
    from .configfile import load_config_later

    env = os.environ if environ is None else environ

    def get(dest: str) -> str | None:
        value = values.get(dest)
        if value is None or value == "":
            value = env.get("AGENT_EXPORTER_" + dest.upper()) or None
        if value is None:
            return None
        problem = path_problem(str(value))  # no option value can hold a NUL byte
        if problem:
            raise ConfigError(_BY_DEST[dest].flag, None, None, problem)
        return str(value)

    scope = get("scope")
    if scope is not None and scope not in SCOPES:
        raise ConfigError("--scope", None, None, f"must be 'user' or 'system', got {scope!r}")
    timeout_text = get("timeout")
    try:
        timeout = DEFAULT_TIMEOUT if timeout_text is None else float(timeout_text)
    except ValueError:
        timeout = -1.0
    if not 0 < timeout <= 300:
        raise ConfigError("--timeout", None, None,
                          f"must be a number of seconds above 0 and at most 300, got {timeout_text!r}")
    state_dir = os.path.abspath(get("state_dir") or default_state_dir(env))
    config, config_cache = load_config_later(get("config"), default_scope(), state_dir if use_cache else None)
    if scope is not None:
        config = config._replace(scope=scope)
    textfile_dir = get("textfile_dir")
    if textfile_dir is not None:
        config = config._replace(textfile_dir=os.path.abspath(textfile_dir))
    textfile_name = get("textfile_name")
    if textfile_name is not None:
        problem = textfile_name_problem(textfile_name)
        if problem:
            raise ConfigError("--textfile-name", None, None, problem)
        config = config._replace(textfile_name=textfile_name)
    return Settings(config=config, state_dir=state_dir, timeout=timeout,
                    verbose=bool(values.get("verbose")), full_refresh=_full_refresh(values, env),
                    config_cache=config_cache)


def _full_refresh(values: Mapping[str, str | bool | None], env: Mapping[str, str]) -> bool:
    if values.get("full_refresh"):
        return True
    text = env.get(FULL_REFRESH_ENV, "").strip().lower()
    if text not in _TRUE + _FALSE:
        raise ConfigError(FULL_REFRESH_ENV, None, None,
                          f"must be 1 or 0 (true/false, yes/no, on/off), got {shown(text)}")
    return text in _TRUE
