"""Typed errors raised by the core; only the CLI catches them and turns them into an exit code."""

from __future__ import annotations


class AgentExporterError(Exception):
    """Base class: a problem the user can act on, reported as one line."""

    exit_code = 1


class ConfigError(AgentExporterError):
    """The configuration is invalid: names the file, the line and the key."""

    exit_code = 2

    def __init__(self, source: str, line: int | None, key: str | None, message: str) -> None:
        self.source = source
        self.line = line
        self.key = key
        self.message = message
        where = source if line is None else f"{source}:{line}"
        what = f"{key}: " if key else ""
        super().__init__(f"{where}: {what}{message}")


class CommandError(AgentExporterError):
    """A child process could not be run, timed out, or failed."""


class SystemdError(AgentExporterError):
    """systemctl gave an answer we cannot use (the whole run depends on it)."""


class WriteError(AgentExporterError):
    """The textfile or the state could not be written; the previous file is intact."""


class LockError(AgentExporterError):
    """Another run holds the lock for longer than we are willing to wait."""
