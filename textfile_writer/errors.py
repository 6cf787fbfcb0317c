"""Every typed error the three programs raise; only console.run turns one into an exit code."""

from __future__ import annotations

TYPE_CHECKING = False  # typing, collections.abc: names for the type checker only
if TYPE_CHECKING:
    from collections.abc import Sequence


SHOWN_CHARACTERS = 60


def shown(value: object) -> str:
    """A value as a message quotes it: the repr of a string or bytes cut at SHOWN_CHARACTERS, a
    container by its type only. A value comes from a file that may hold megabytes in one string, or
    a YAML alias bomb whose repr would be gigabytes: never format the whole of it."""
    if isinstance(value, str | bytes):
        if len(value) <= SHOWN_CHARACTERS:
            return repr(value)
        return f"{value[:SHOWN_CHARACTERS]!r}... ({len(value)} characters)"
    if isinstance(value, list | tuple | dict | set):
        return f"a {type(value).__name__}"
    return repr(value)[:SHOWN_CHARACTERS]


class AgentExporterError(Exception):
    """Base class: a problem the user can act on, reported as one line."""

    exit_code = 1

    def lines(self) -> tuple[str, ...]:
        """What the console prints, one `error:` line each."""
        return (str(self),)


class UsageError(AgentExporterError):
    """The command line itself is wrong: an unknown option or command, a missing or bad value."""

    exit_code = 2


class Interrupted(AgentExporterError):
    """Stopped by the user (Ctrl-C at a prompt)."""

    exit_code = 130


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


# --- the writer -----------------------------------------------------------------------------------

class CommandError(AgentExporterError):
    """A child process could not be run, timed out, or failed."""


class SystemdError(AgentExporterError):
    """systemctl gave an answer we cannot use (the whole run depends on it)."""


class HostError(AgentExporterError):
    """A host figure (memory, disk, load) cannot be read; the run reports it and goes on."""


class WriteError(AgentExporterError):
    """The textfile or the state could not be written. When the textfile could not, the previous
    one is intact; when only the state could not, the message says the textfile was written."""


class LockError(AgentExporterError):
    """Another run holds the lock for longer than we are willing to wait."""


class CheckFailed(AgentExporterError):
    """`agent-exporter check` found problems; each is its own line."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))

    def lines(self) -> tuple[str, ...]:
        return self.problems


# --- the server -----------------------------------------------------------------------------------

class ServeError(AgentExporterError):
    """The server cannot start: an address that cannot be bound, a bad socket from systemd."""


class TextfileUnavailable(AgentExporterError):
    """The served textfile is missing, unreadable or too large; the reason is one line."""


# --- the installer --------------------------------------------------------------------------------

class InstallError(AgentExporterError):
    """Install or uninstall cannot go on: systemd unreachable, no permission, a directory in the way."""


class UnitError(AgentExporterError):
    """A value cannot be put into a unit file (a relative or unusual path, a bad address); names
    the option or directive it came from."""

    exit_code = 2

    def __init__(self, what: str, message: str) -> None:
        super().__init__(f"{what}: {message}")
