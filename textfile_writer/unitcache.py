"""The slow unit properties of the last run, kept in the state directory for change-driven runs.

changes.py answers a steady-state run from `list-units` and cgroupfs, and takes from here what
only `systemctl show` knows (NRestarts, the start timestamps, ControlGroup, Names, the InvocationID)
for units that have not changed since. The file is Python's marshal format (built in, nothing to
import) and is trusted as the configuration cache is: a regular file in the state directory, owned
by the writer's user and writable by nobody else (files.read_private), of this format, this boot and
this scope. Anything else about it (missing, foreign, corrupt, the wrong shape, too large) means a
full run that writes it again, never a number taken from it.

Layout: (FORMAT, boot_id, scope, unit_path, files_key, files, units), where units maps a unit name
to (properties without the measured ones, the PIDs in its cgroup, the measured properties systemd
knew). Only `marshal` and the package's own hot-path modules are imported.
"""

from __future__ import annotations

import marshal
from sys import intern

from .files import read_private
from .records import NamedTuple
from .unitfiles import DirsKey

TYPE_CHECKING = False  # typing itself costs the write path an import of `re`
if TYPE_CHECKING:
    from typing import Any

FORMAT = "agent-exporter-unit-cache/2"
# ~600 bytes a unit: room for 50000 units.
MAX_BYTES = 32 << 20
_SHORT = 16


# The patterns and unitfiles.dirs_key of the unit search path: what the installed-units answer
# belongs to.
FilesKey = tuple[tuple[str, ...], DirsKey] | None


class Entry(NamedTuple):
    props: dict[str, str]  # the unit's `show` block without systemd.MEASURED
    procs: tuple[int, ...]  # the PIDs in its cgroup when the block was taken (cgroups.procs)
    measured: tuple[str, ...]  # which of systemd.MEASURED systemd knew then


class Cache(NamedTuple):
    boot_id: str
    scope: str
    unit_path: tuple[str, ...]  # the manager's unit search path; () until it was asked
    files_key: FilesKey  # the patterns and the search path's state that `files` answers for
    files: tuple[str, ...]  # installed units matching the patterns
    units: dict[str, Entry]

    def dumps(self) -> bytes:
        # Property names and short values (states, "0", "infinity"...) interned: marshal writes each
        # once and refers to it after, so the next run's load makes 20 fewer strings a unit (a
        # third of the file, 40% of its load time at 1000 units).
        units = {name: ({intern(k): intern(v) if len(v) <= _SHORT else v for k, v in e.props.items()},
                        e.procs, e.measured) for name, e in self.units.items()}
        # Built-in values only (str, int, None, tuple, dict): marshal refuses anything else itself.
        return marshal.dumps((FORMAT, self.boot_id, self.scope, self.unit_path, self.files_key,  # type: ignore[arg-type]
                              self.files, units))


def load(path: str, boot_id: str, scope: str) -> tuple[Cache | None, str | None]:
    """The last run's cache, or (None, why it cannot be used)."""
    try:
        raw = read_private(path, MAX_BYTES)
    except FileNotFoundError:
        return None, "no unit cache yet"
    except OSError as exc:
        return None, f"unit cache {path} not used: {exc.strerror or exc}"
    try:
        fmt, found_boot, found_scope, unit_path, files_key, files, units = marshal.loads(raw)  # noqa: S302
        if fmt != FORMAT:
            return None, f"unit cache {path} has another format"
        if found_boot != boot_id or found_scope != scope:
            return None, f"unit cache {path} is from another boot or scope"
        cache = Cache(boot_id, scope, _strings(unit_path), files_key, _strings(files),
                      {_string(name): _entry(value) for name, value in units.items()})
    except (EOFError, ValueError, TypeError, AttributeError, MemoryError, RecursionError):
        return None, f"unit cache {path} is corrupt"
    return cache, None


def _entry(value: Any) -> Entry:
    """A cache entry rebuilt from its marshalled form; TypeError or ValueError when it is not one.
    Runs for every unit of every run: the checks are the C-level ones (str.join refuses anything
    but strings; a dict's keys and values, a tuple's items)."""
    props, procs, measured = value
    "".join(props.values())
    "".join(props)
    "".join(measured)
    if not (type(props) is dict and type(measured) is tuple and type(procs) is tuple
            and all(type(pid) is int for pid in procs)):
        raise TypeError("not a cache entry")
    return Entry(props, procs, measured)


def _strings(value: object) -> tuple[str, ...]:
    if not (isinstance(value, tuple) and all(isinstance(v, str) for v in value)):
        raise TypeError("not a tuple of strings")
    return value


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("not a string")
    return value
