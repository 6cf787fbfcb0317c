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
    previous file untouched; a state file that cannot be kept afterwards raises one that says the
    textfile was written."""
    config = settings.config
    directory = config.textfile_dir
    if not os.path.isdir(directory):
        raise WriteError(f"textfile directory {directory} does not exist (create it, or set "
                         "textfile_dir / --textfile-dir)")
    try:
        os.makedirs(settings.state_dir, mode=0o755, exist_ok=True)
    except OSError as exc:
        raise WriteError(f"cannot create state directory {settings.state_dir}: "
                         f"{exc.strerror or exc}") from exc
    lock = os.path.join(directory, lock_name(config.textfile_name))
    with RunLock(lock, settings.timeout):
        # Killed runs leave temporary files in both directories; one rule sweeps them.
        remove_stale_temps(directory, config.textfile_name)
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
        result = collect(config, previous, runner, settings.timeout, cgroupfs, clock, proc_root,
                         ChangeDriven(known))
        atomic_write(directory, config.textfile_name, render(result.snapshot).encode("utf-8"))
        try:
            atomic_write(settings.state_dir, STATE_FILE, result.state.to_text().encode())
        except WriteError as exc:
            raise WriteError(f"wrote {config.textfile_path}, but could not keep the CPU counters "
                             f"({exc}); the next run will have no agent_cpu_percent") from exc
        if result.units is not None and result.units.cache != known:
            try:
                atomic_write(settings.state_dir, UNIT_CACHE_FILE, result.units.cache.dumps(), 0o600)
            except WriteError as exc:
                note(f"could not keep the unit cache ({exc}); the next run asks systemd about every unit")
    return result


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
