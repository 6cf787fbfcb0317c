"""What `agent-exporter status` collects, CPU % included when it is run by hand.

CPU % is a difference of two readings of each agent's CPU counter. The writer keeps its last reading
in its state directory; status never writes one. So status takes, in this order:
- the installed writer's last reading, when it is fresh (at most STALE_FACTOR intervals old): status
  finds it where the timer's StateDirectory= is for the scope (defaults.writer_state_dirs), or in
  --state-dir; it waits until that reading is SAMPLE_SECONDS old, so the window is never a blink;
- otherwise (no writer installed, or its state stale or not readable by this user), a sample of its
  own: two collections SAMPLE_SECONDS apart, the second one cheap (the first one's unit cache:
  list-units and cgroupfs).
The window says which it was. An agent that (re)started within it has no CPU % (a new cgroup: its
counter began again); that is shown as unknown, never as 0.
"""

from __future__ import annotations

import os
import time

from . import state, unitcache
from .collect import ChangeDriven, Result, collect
from .defaults import STALE_FACTOR, STATE_FILE, UNIT_CACHE_FILE, writer_state_dirs
from .records import NamedTuple

TYPE_CHECKING = False  # typing, collections.abc: names for the type checker only
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from .options import Settings
    from .proc import Runner

SAMPLE_SECONDS = 0.5


class CpuWindow(NamedTuple):
    """What CPU % is measured over: `seconds` ending now, since the writer's reading in `state_dir`,
    or (state_dir None) status's own sample."""

    seconds: float
    state_dir: str | None

    def describe(self) -> str:
        if self.state_dir is None:
            return f"CPU% over the last {self.seconds:.1f} s, sampled by status (no fresh state of the writer's)"
        return f"CPU% since the writer's run {self.seconds:.1f} s ago (its state in {self.state_dir})"


class Clock(NamedTuple):
    monotonic_ns: Callable[[], int] = time.monotonic_ns
    sleep: Callable[[float], None] = time.sleep


def look(settings: Settings, explicit_state_dir: bool, runner: Runner, environ: Mapping[str, str] = os.environ,
         clock: Clock | None = None, proc_root: str = "/proc") -> tuple[Result, CpuWindow]:
    """One collection for people, with a CPU % for every running agent whose counter can be read."""
    clock = clock or Clock()
    config = settings.config
    dirs = [settings.state_dir] if explicit_state_dir else writer_state_dirs(config.scope, environ)
    boot = state.boot_id(proc_root)
    previous, where = freshest_state(dirs, boot, config.scope)
    cache = None
    if where is not None:
        cache, _why = unitcache.load(os.path.join(where, UNIT_CACHE_FILE), boot, config.scope)
    fresh = previous is not None and clock.monotonic_ns() - previous.taken_ns <= \
        STALE_FACTOR * config.interval_seconds * 1e9
    if previous is not None and fresh:
        _wait_until(previous.taken_ns + SAMPLE_SECONDS * 1e9, clock)
    result = collect(config, previous, runner, settings.timeout, change_driven=ChangeDriven(cache),
                     proc_root=proc_root)
    if previous is not None and fresh:
        return result, CpuWindow((result.state.taken_ns - previous.taken_ns) / 1e9, where)
    # The first collection's reading is the start of status's own sample.
    _wait_until(result.state.taken_ns + SAMPLE_SECONDS * 1e9, clock)
    again = collect(config, result.state, runner, settings.timeout,
                    change_driven=ChangeDriven(None if result.units is None else result.units.cache),
                    proc_root=proc_root)
    return again, CpuWindow((again.state.taken_ns - result.state.taken_ns) / 1e9, None)


def freshest_state(dirs: list[str], boot: str, scope: str) -> tuple[state.State | None, str | None]:
    """The most recent usable state of this boot and scope among `dirs` (one this user cannot read,
    such as the system writer's 0700 directory for anybody but root, is passed over)."""
    found: list[tuple[int, state.State, str]] = []
    for directory in dict.fromkeys(os.path.abspath(d) for d in dirs):
        previous, why = state.load(os.path.join(directory, STATE_FILE), boot, scope)
        if previous is not None and why is None:
            found.append((previous.taken_ns, previous, directory))
    if not found:
        return None, None
    _taken, previous, directory = max(found, key=lambda f: f[0])
    return previous, directory


def _wait_until(deadline_ns: float, clock: Clock) -> None:
    left = (deadline_ns - clock.monotonic_ns()) / 1e9
    if left > 0:
        clock.sleep(left)
