"""Reading the configuration file, with a validated cache for the writer's hot path.

Parsing YAML costs more than the rest of a run (PyYAML alone takes ~15 ms to import), and the
file changes rarely. The validated result is kept as JSON in the state directory, keyed on the
file's identity (device, inode, size, mtime, ctime), the default scope and our version; any change
to the file makes the next run parse it again.
"""

from __future__ import annotations

import json
import os

from . import __version__
from .config import Config, builtin_config, parse_config
from .errors import ConfigError, WriteError
from .textfile import atomic_write

CACHE_NAME = "config-cache.json"


def load_config(path: str | None, default_scope: str, cache_dir: str | None = None) -> Config:
    if path is None:
        return builtin_config(default_scope)
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ConfigError(path, None, None, f"cannot read the file: {exc.strerror}") from None
    key = [os.path.abspath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns,
           st.st_ctime_ns, default_scope, __version__]
    if cache_dir is not None:
        cached = _read_cache(os.path.join(cache_dir, CACHE_NAME), key)
        if cached is not None:
            return cached
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ConfigError(path, None, None, f"cannot read the file: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(path, None, None, f"not UTF-8 text: {exc.reason}") from None
    config = parse_config(text, path, default_scope)
    if cache_dir is not None:
        try:
            payload = json.dumps({"key": key, "config": config.to_dict()})
            atomic_write(cache_dir, CACHE_NAME, payload.encode(), 0o600)
        except (WriteError, OSError):
            pass  # the cache only saves time; the run does not depend on it
    return config


def _read_cache(path: str, key: list[object]) -> Config | None:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if data.get("key") != key:
            return None
        return Config.from_dict(data["config"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
