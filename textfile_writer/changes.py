"""Change-driven collection: a steady-state run asks systemd one cheap question and `show`s only
the units that changed, yet reports exactly what a full run (`systemctl show` of every unit) would.

Where each property comes from in a run with a usable cache (unitcache.py):
- load, active and sub state: one batched `list-units` of the configured names and patterns;
- CPU, memory and tasks: the unit's cgroup (cgroups.py), the files systemd itself reads them from;
- everything only `show` knows (NRestarts, ActiveEnterTimestampMonotonic, ControlGroup, Names,
  MainPID, InvocationID): the cache, for a unit that provably has not changed since the cache
  took its block; every other unit is asked with `show`, in one batch, as in a full run;
- installed units that are not loaded (patterns only): the manager's unit search path read
  directly (unitfiles.py gives the names `list-unit-files` would, without the manager reading
  every file), listed again only when one of its directories changed; the search path itself
  (`show --property=UnitPath`) is asked once per cache.

A unit is answered from the cache only when all of these hold, otherwise it is shown:
- `list-units` reports it loaded, active and running now, and it was so when cached;
- its NRestarts was 0 when cached: `systemctl reset-failed` zeroes NRestarts of a running unit and
  leaves no other trace, so a unit that has restarted automatically is shown on every run;
- the PIDs directly in its cgroup are the same (cgroups.procs): a manual restart, an automatic
  one, or `kill -9` under Restart= always replaces the processes, even when the directory stays.
  The PIDs are read after the `show` that filled the entry, and the entry is kept only if the
  shown MainPID is among them, so a restart between the two is caught (and a unit whose processes
  all sit in child cgroups is never cached);
- the cgroup still gives each of CPU, memory and tasks that systemd gave when cached.
A change of the unit search path (a unit file added or removed, an alias, a mask) empties the
cache: Names (aliases) are only as current as the last `show`.

`--full-refresh` runs without the cache (and writes a new one): today's full run, for comparison.
"""

from __future__ import annotations

import time

from . import systemd, unitfiles
from .cgroups import Cgroupfs
from .records import NamedTuple
from .unitcache import Cache, Entry, FilesKey
from .unitglob import any_match

TYPE_CHECKING = False  # typing, collections.abc: names for the type checker only
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from .proc import Runner

# What list-units says of a unit that may be answered from the cache.
STEADY = ("loaded", "active", "running")
# Measured at 1000 explicit agents: 38 ms of the manager's CPU for list-units of the 1000 names,
# 7 ms for one pattern that matches them all.
EXPLICIT_LISTED = 64
UnitProperties = dict[str, str]
# Kept with a unit's cached block (never a systemd property's name): the cgroup's own count of OOM
# kills, read after its PIDs. While the PIDs stay the same no process of the unit was killed, so the
# count cannot have moved either (collect reads it afresh for every unit that is shown).
OOM_KILLS = "x-oom-kills"


# A cached unit's figures read from its cgroup this run, in systemd.MEASURED's order (CPUUsageNSec,
# MemoryCurrent, TasksCurrent); None for one the cgroup does not give (then systemd did not know it
# either when the unit was cached, and collect.py tries its fallbacks as in a full run).
Measured = tuple[int | None, int | None, int | None]


class Answer(NamedTuple):
    explicit: list[UnitProperties]  # one block per explicit unit, in order
    discovered: list[tuple[str, UnitProperties]]  # (unit, block) for units the patterns found, by name
    cache: Cache  # what the next run may use
    shown: int  # units asked with `show` this run
    cached: int  # units answered from the cache
    # by Id: the cached units' figures. Their blocks are the cache's own (shared, never changed) and
    # lack systemd.MEASURED: no copy of each block and no figure made text only to be parsed again.
    measured: dict[str, Measured]


def query(scope: str, explicit: Sequence[str], patterns: Sequence[str], runner: Runner, timeout: float,
          cgroupfs: Cgroupfs, known: Cache | None, boot_id: str,
          clock: Callable[[], float] = time.monotonic) -> Answer:
    """The properties systemd.query would give, from as little work as the cache allows; `known`
    None makes it a full run."""
    budget = systemd.Budget.start(timeout, clock)
    listed = systemd.list_units(scope, _listing_words(explicit, patterns), runner, budget)
    unit_path, files_key, files = _installed(scope, patterns, runner, budget, known)
    if known is not None and patterns and not _same_search_path(known.files_key, files_key):
        known = None  # the search path changed: aliases may have too
    found = systemd.agent_units([*(u for u in listed if any_match(patterns, u)), *files]) if patterns else []
    wanted = set(explicit)
    names = [*explicit, *(u for u in found if u not in wanted)]

    entries = {} if known is None else known.units
    kept: dict[str, Entry] = {}
    cached: list[UnitProperties] = []
    measured: dict[str, Measured] = {}
    to_show: list[str] = []
    for name in names:
        entry = entries.get(name)
        figures = None if entry is None else _from_cache(entry, listed.get(name), cgroupfs)
        if entry is None or figures is None:
            to_show.append(name)
        else:
            kept[name] = entry
            cached.append(entry.props)
            measured[entry.props.get("Id", name)] = figures
    shown = systemd.show(scope, to_show, runner, budget) if to_show else []
    for block in shown:
        unit = block.get("Id", "")
        if unit and unit not in kept:
            entry = _to_cache(block, cgroupfs)
            if entry is not None:
                kept[unit] = entry
    if not to_show and len(wanted) == len(explicit):
        # Everything from the cache, each block under its own Id (an alias is never cached: it is
        # shown every run), the discovered names sorted and apart from the explicit ones already:
        # what match_blocks would pair, without indexing 1000 blocks by name.
        mine = cached[:len(explicit)]
        others = list(zip(names[len(explicit):], cached[len(explicit):], strict=True))
    else:
        # Shown blocks first: for a unit asked under an alias as well, the fresh block wins.
        mine, others = systemd.match_blocks(explicit, [*shown, *cached])
    return Answer(mine, others, Cache(boot_id, scope, unit_path, files_key, files, kept),
                  len(to_show), len(cached), measured)


def _listing_words(explicit: Sequence[str], patterns: Sequence[str]) -> list[str]:
    """What to give list-units. The manager tries every word on every unit it has (fnmatch), so a
    long explicit list costs it names x units: past EXPLICIT_LISTED names, list every unit instead
    (a few hundred on a typical host, filtered here) and no pattern at all."""
    if len(explicit) > EXPLICIT_LISTED:
        return []
    return [*explicit, *patterns]


def _same_search_path(a: FilesKey, b: FilesKey) -> bool:
    return a is not None and b is not None and a[0] == b[0] and unitfiles.same_directories(a[1], b[1])


def _installed(scope: str, patterns: Sequence[str], runner: Runner, budget: systemd.Budget,
               known: Cache | None) -> tuple[tuple[str, ...], FilesKey, tuple[str, ...]]:
    """(unit search path, the key `files` answers for, installed units matching the patterns).

    The key is taken before the listing: a file added in between makes the next run list again."""
    if not patterns:
        return (), None, ()
    unit_path = known.unit_path if known is not None and known.unit_path else systemd.unit_path(scope, runner, budget)
    key = (tuple(patterns), unitfiles.dirs_key(unit_path))
    if known is not None and known.files_key == key:
        return unit_path, key, known.files
    return unit_path, key, tuple(unitfiles.installed(unit_path, patterns))


def _from_cache(entry: Entry, listed: tuple[str, str, str] | None, cgroupfs: Cgroupfs) -> Measured | None:
    """What `show` would add to the cached block now (systemd.MEASURED, from the cgroup), or None
    when the cache cannot prove the unit unchanged."""
    if listed != STEADY:
        return None
    procs, cpu_ns, memory, tasks = cgroupfs.unit(entry.props.get("ControlGroup", ""))
    if procs != entry.procs:
        return None
    return _known((cpu_ns, memory, tasks), entry.measured)


def _to_cache(block: UnitProperties, cgroupfs: Cgroupfs) -> Entry | None:
    """A cache entry for a freshly shown block, or None when a later run could not trust it."""
    steady = (block.get("LoadState"), block.get("ActiveState"), block.get("SubState")) == STEADY
    main_pid = systemd.uint(block, "MainPID")
    cgroup = block.get("ControlGroup", "")
    if not steady or block.get("NRestarts") != "0" or not main_pid or not cgroup:
        return None
    procs = cgroupfs.procs(cgroup)
    if not procs or main_pid not in procs:
        return None
    measured = tuple(k for k in systemd.MEASURED if systemd.uint(block, k) is not None)
    if _figures(cgroupfs, cgroup, measured) is None:
        return None
    props = {k: v for k, v in block.items() if k not in systemd.MEASURED}
    ooms = cgroupfs.oom_kills(cgroup)
    if ooms is not None:
        props[OOM_KILLS] = str(ooms)
    return Entry(props, procs, measured)


def _figures(cgroupfs: Cgroupfs, cgroup: str, known: tuple[str, ...]) -> Measured | None:
    """The cgroup's figures, or None when it cannot give one of those systemd knew (`known`). The
    others are what a full run's fallback reads from the same files (collect.py), read here with them."""
    return _known(cgroupfs.figures(cgroup), known)


def _known(figures: Measured, known: tuple[str, ...]) -> Measured | None:
    """The figures, or None when one that systemd knew (`known`) is missing."""
    if any(v is None for k, v in zip(systemd.MEASURED, figures, strict=True) if k in known):
        return None
    return figures
