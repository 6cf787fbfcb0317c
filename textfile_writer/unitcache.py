"""The slow unit properties of the last run, kept in the state directory for change-driven runs.

changes.py answers a steady-state run from `list-units` and cgroupfs, and takes from here what
only `systemctl show` knows (NRestarts, the start timestamps, ControlGroup, Names, the InvocationID)
for units that have not changed since. The file is Python's marshal format (built in) and is
trusted as the configuration cache is: a regular file in the state directory, owned by the writer's
user and writable by nobody else (files.read_private), of this format, this boot and this scope,
and the writer's own: its payload carries its CRC-32. Anything else about it (missing, foreign,
corrupt, too large) means a full run that writes it again, never a number taken from it.

Layout, sealed (sealed.py): (boot_id, scope, unit_path, files_key, files, units), where units maps a
unit name to (properties without the measured ones, the PIDs in its cgroup, the measured properties
systemd knew). The checksum is why its ~25 values a unit are not each checked again on every run.
Only the package's own hot-path modules are imported.
"""

from __future__ import annotations

from sys import intern

from .files import read_private
from .records import NamedTuple
from .sealed import UNREADABLE, seal, unseal
from .unitfiles import DirsKey

FORMAT = "agent-exporter-unit-cache/3"
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
        return seal(FORMAT, (self.boot_id, self.scope, self.unit_path, self.files_key, self.files, units))


def load(path: str, boot_id: str, scope: str) -> tuple[Cache | None, str | None]:
    """The last run's cache, or (None, why it cannot be used)."""
    try:
        raw = read_private(path, MAX_BYTES)
    except FileNotFoundError:
        return None, "no unit cache yet"
    except OSError as exc:
        return None, f"unit cache {path} not used: {exc.strerror or exc}"
    value, why = unseal(raw, FORMAT)
    if why is not None:
        return None, f"unit cache {path} {why}"
    try:
        found_boot, found_scope, unit_path, files_key, files, units = value
        if found_boot != boot_id or found_scope != scope:
            return None, f"unit cache {path} is from another boot or scope"
        new = tuple.__new__
        cache = Cache(boot_id, scope, unit_path, files_key, files,
                      {name: new(Entry, value) for name, value in units.items()})
    except UNREADABLE:
        return None, f"unit cache {path} is corrupt"
    return cache, None
