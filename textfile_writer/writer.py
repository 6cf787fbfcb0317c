"""One writer run: lock, collect, render, replace the textfile atomically, keep the CPU counters;
and `agent-exporter write` at the console (warnings, the -v summary)."""

from __future__ import annotations

import os

from . import state, unitcache
from .cgroups import Cgroupfs
from .collect import ChangeDriven, Clock, Result, collect
from .console import say, warn
from .defaults import STATE_FILE, STATE_FILES, UNIT_CACHE_FILE, lock_name
from .errors import WriteError
from .files import not_a_directory
from .metrics import render
from .options import Settings, resolve
from .proc import run
from .textfile import RunLock, atomic_write, remove_stale_temps

TYPE_CHECKING = False  # typing, collections.abc: names for the type checker only
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from .proc import Runner
    Log = Callable[[str], None]


def _ignore(_message: str) -> None:
    pass


def load_previous(settings: Settings, proc_root: str = "/proc") -> tuple[state.State | None, str | None]:
    return state.load(os.path.join(settings.state_dir, STATE_FILE), state.boot_id(proc_root),
                      settings.config.scope)


def write(settings: Settings, runner: Runner = run, cgroupfs: Cgroupfs | None = None,
          clock: Clock | None = None, proc_root: str = "/proc", note: Log = _ignore) -> Result:
    """Collect and replace the textfile. A failure before the rename raises a typed error with the
    previous file untouched and nothing of this run left behind: no state directory, no lock file
    it made, no cache. A state file that cannot be kept afterwards raises one that says the textfile
    was written."""
    config = settings.config
    directory = config.textfile_dir
    what = not_a_directory(directory)
    if what:
        raise WriteError(f"textfile directory {directory} {what} (create it, or set "
                         "textfile_dir / --textfile-dir)")
    why = _unmakeable(settings.state_dir)
    if why:
        raise WriteError(f"cannot create state directory {settings.state_dir}: {why}")
    lock = RunLock(os.path.join(directory, lock_name(config.textfile_name)), settings.timeout)
    with lock:
        try:
            if config.users:  # several users' managers (users.py): each user's run sweeps its own state
                from .users import collect_users

                remove_stale_temps(settings.state_dir, *STATE_FILES)
                result, parts = collect_users(settings, _collect, cgroupfs, clock, proc_root, note)
            else:
                result, known = _collect(settings, runner, cgroupfs, clock, proc_root, note)
        except BaseException:
            lock.forget()
            raise
        atomic_write(directory, config.textfile_name, render(result.snapshot).encode("utf-8"))
        if config.users:
            for part in parts:
                _keep_state(part.settings, part.result, part.known, note)
            if settings.config_cache is not None:
                settings.config_cache.keep()
        else:
            _keep_state(settings, result, known, note)
    return result


def _unmakeable(path: str) -> str | None:
    """Why the state directory could not be made, found without making it (a run that fails makes
    nothing; one that would fail to keep its counters is stopped before it replaces the textfile)."""
    found = path
    while not os.path.lexists(found) and os.path.dirname(found) != found:
        found = os.path.dirname(found)
    if not os.path.isdir(found):
        return f"{found} is not a directory"
    if found != path and not os.access(found, os.W_OK | os.X_OK):
        return f"{found} is not writable"
    return None


def _collect(settings: Settings, runner: Runner, cgroupfs: Cgroupfs | None, clock: Clock | None,
             proc_root: str, note: Log) -> tuple[Result, unitcache.Cache | None]:
    """The run's collection from the last run's state and unit cache (and that cache)."""
    config = settings.config
    # Killed runs leave temporary files in both directories; one rule sweeps them.
    remove_stale_temps(config.textfile_dir, config.textfile_name)
    remove_stale_temps(settings.state_dir, *STATE_FILES)
    previous, why = load_previous(settings, proc_root)
    if why:
        note(f"{why}; agent_cpu_percent is left out for running agents this run")
    known = None
    if settings.full_refresh:
        note("--full-refresh: every unit is asked with systemctl show")
    else:
        known, why = unitcache.load(os.path.join(settings.state_dir, UNIT_CACHE_FILE),
                                    state.boot_id(proc_root), config.scope)
        if why:
            note(f"{why}; every unit is asked with systemctl show this run")
    result = collect(config, previous, runner, settings.timeout, cgroupfs, clock, proc_root, ChangeDriven(known))
    return result, known


def _keep_state(settings: Settings, result: Result, known: unitcache.Cache | None, note: Log) -> None:
    """After the textfile, into the state directory (made now): the counters, the unit cache when it
    changed, and the configuration's validated copy when this run parsed the file."""
    state_dir = settings.state_dir
    try:
        os.makedirs(state_dir, mode=0o755, exist_ok=True)
        atomic_write(state_dir, STATE_FILE, result.state.dumps())
    except (OSError, WriteError) as exc:
        why = exc if isinstance(exc, WriteError) else f"cannot create {state_dir}: {exc.strerror or exc}"
        raise WriteError(f"wrote {settings.config.textfile_path}, but could not keep the CPU counters "
                         f"({why}); the next run will have no agent_cpu_percent") from exc
    if result.units is not None and result.units.cache != known:
        try:
            atomic_write(state_dir, UNIT_CACHE_FILE, result.units.cache.dumps(), 0o600)
        except WriteError as exc:
            note(f"could not keep the unit cache ({exc}); the next run asks systemd about every unit")
    if settings.config_cache is not None:
        settings.config_cache.keep()


def command(values: Mapping[str, str | bool | None]) -> None:
    """`agent-exporter write`: quiet on success unless verbose; a failure raises a typed error, which
    the console turns into one line on stderr and the exit code."""
    settings = resolve(values)
    result = write(settings, note=say if settings.verbose else _ignore)
    for problem in result.problems:
        warn(problem)
    if settings.verbose:
        snap = result.snapshot
        units = result.units
        asked = "" if units is None else f", {units.shown} units shown, {units.cached} from the cache"
        say(f"wrote {settings.config.textfile_path}: {len(snap.agents)} agents, {snap.running} running, "
            f"{len(result.problems)} problems{asked}, {snap.duration_seconds * 1000:.1f} ms")
