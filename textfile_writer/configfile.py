"""Reading the configuration file, with a validated cache for the writer's hot path.

Parsing YAML costs more than the rest of a run (PyYAML alone takes ~15 ms to import), and the
file changes rarely. The validated result is kept in the state directory in Python's marshal
format (built in: no import to pay for), keyed on the file's identity (device, inode, size, mtime,
ctime), the default scope, our version and the interpreter's; any change to the file makes the
next run parse it again, and an unreadable cache is simply ignored.

Both are read through files.py: a FIFO or a device in their place is refused at once, and a
configuration file larger than MAX_CONFIG_BYTES is an error (a bigger one is no configuration of
ours, and PyYAML would take seconds over it). A cache that is not a regular file of ours, is larger
than MAX_CACHE_BYTES or whose contents claim more than they hold is ignored and written again.
"""

from __future__ import annotations

import marshal
import os
import sys

from . import __version__
from .config import Config, builtin_config, parse_config
from .defaults import CONFIG_CACHE_FILE
from .errors import ConfigError, WriteError
from .files import path_problem, read_private, read_regular
from .records import NamedTuple
from .textfile import atomic_write

MAX_CONFIG_BYTES = 1 << 20  # thousands of agents fit in a few hundred KiB
MAX_CACHE_BYTES = 4 << 20


class PendingCache(NamedTuple):
    """The validated copy of a configuration parsed this run, to keep once the run has written (a
    run that fails leaves the state directory as it found it)."""

    cache_dir: str
    payload: bytes

    def keep(self) -> None:
        try:
            os.makedirs(self.cache_dir, mode=0o755, exist_ok=True)
            atomic_write(self.cache_dir, CONFIG_CACHE_FILE, self.payload, 0o600)
        except (WriteError, OSError):
            pass  # the cache only saves time; the run does not depend on it


def load_config(path: str | None, default_scope: str, cache_dir: str | None = None) -> Config:
    config, pending = load_config_later(path, default_scope, cache_dir)
    if pending is not None:
        pending.keep()
    return config


def load_config_later(path: str | None, default_scope: str, cache_dir: str | None = None
                      ) -> tuple[Config, PendingCache | None]:
    """The configuration, and its validated copy still to be kept in cache_dir (None when it was
    read from there, or there is no cache)."""
    if path is None:
        return builtin_config(default_scope), None
    problem = path_problem(path)
    if problem:
        raise ConfigError(repr(path), None, None, problem)
    try:
        st = os.stat(path)
    except OSError as exc:
        raise unreadable(path, exc) from None
    key = (os.path.abspath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns,
           st.st_ctime_ns, default_scope, __version__, sys.hexversion)
    if cache_dir is not None:
        cached = _read_cache(os.path.join(cache_dir, CONFIG_CACHE_FILE), key)
        if cached is not None:
            return cached, None
    config = parse_config(read_text(path), path, default_scope)
    if cache_dir is None:
        return config, None
    try:
        return config, PendingCache(cache_dir, marshal.dumps((key, config.to_dict())))
    except ValueError:  # (marshal refuses what it cannot write: no cache then)
        return config, None


def read_text(path: str) -> str:
    """A configuration file's text, or a ConfigError that names it."""
    problem = path_problem(path)
    if problem:
        raise ConfigError(repr(path), None, None, problem)
    try:
        return read_regular(path, MAX_CONFIG_BYTES).decode("utf-8")
    except OSError as exc:
        raise unreadable(path, exc) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(path, None, None, f"not UTF-8 text: {exc.reason}") from None


def unreadable(path: str, exc: OSError) -> ConfigError:
    """The error for a configuration file that cannot be read; when permissions are why, it says
    who is reading (the installed writer runs as a system user, not as the admin who wrote the file)
    and how to let them."""
    reason = f"cannot read the file: {exc.strerror}"
    if isinstance(exc, PermissionError):
        import grp  # only on this error: not on the writer's path
        import pwd

        uid, gid = os.geteuid(), os.getegid()
        try:
            user = pwd.getpwuid(uid).pw_name
        except KeyError:
            user = str(uid)
        try:
            group = grp.getgrgid(gid).gr_name
        except KeyError:
            group = str(gid)
        reason += (f"; agent-exporter runs as user {user} (group {group}) here: make the file and its directories "
                   f"readable by it (chmod 0644 {path}, or chgrp {group} {path} and chmod 0640 {path})")
    return ConfigError(path, None, None, reason)


def _read_cache(path: str, key: tuple[object, ...]) -> Config | None:
    try:
        # Bytes first, then loads: marshal.load on a file allocates what a header claims.
        cached_key, data = marshal.loads(read_private(path, MAX_CACHE_BYTES))  # noqa: S302 - our own file
        if cached_key != key:
            return None
        return Config.from_dict(data)
    except (OSError, EOFError, ValueError, KeyError, TypeError, AttributeError, MemoryError, RecursionError):
        return None
