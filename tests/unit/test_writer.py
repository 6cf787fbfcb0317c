"""writer.py: one run in-process on captured systemd answers and cgroup files: the textfile replaced
atomically, the CPU counters kept for the next run, and the last good file never lost."""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from captured import CGROUP_ROOT, Replay, fleet_blocks, fleet_replay, ok, text

from textfile_writer import state, unitcache, writer
from textfile_writer.cgroups import Cgroupfs
from textfile_writer.collect import Clock, Result
from textfile_writer.config import parse_config
from textfile_writer.defaults import STATE_FILE, TEMP_SUFFIX, UNIT_CACHE_FILE, lock_name, temp_prefix
from textfile_writer.errors import LockError, SystemdError, WriteError
from textfile_writer.metrics import render
from textfile_writer.options import Settings
from textfile_writer.proc import Completed

if TYPE_CHECKING:  # the alias exists for the type checker only (proc.py)
    from textfile_writer.proc import Runner

# The configuration the fleet capture answers: query("user", ["agent-absent.service"], ["agent-*.service"]).
CONFIG = parse_config("scope: user\nagents:\n  - unit: agent-absent\n  - pattern: 'agent-*'\n    type: support\n",
                      "c.yml")
RUNNING = "agent-running.service"
ENTER_US = int(fleet_blocks()[RUNNING]["ActiveEnterTimestampMonotonic"])
WALL = 1_800_000_000.0
LOCK = lock_name(CONFIG.textfile_name)


def clock(seconds: int) -> Clock:
    """`seconds` after the running agent started, on both clocks."""
    return Clock(wall=lambda: WALL + seconds, monotonic_ns=lambda: (ENTER_US + seconds * 10**6) * 1000)


def settings(tmp_path: Path, state_dir: Path | None = None, timeout: float = 5.0) -> Settings:
    config = CONFIG._replace(textfile_dir=str(tmp_path / "textfile"))
    return Settings(config=config, state_dir=str(state_dir or tmp_path / "state"), timeout=timeout, verbose=False)


def write(tmp_path: Path, seconds: int, runner: Runner | None = None, cgroup_root: Path = CGROUP_ROOT,
          state_dir: Path | None = None, timeout: float = 5.0) -> Result:
    return writer.write(settings(tmp_path, state_dir, timeout), runner=runner or fleet_replay(),
                        cgroupfs=Cgroupfs(str(cgroup_root)), clock=clock(seconds), proc_root="/proc")


def samples(exposition: str) -> dict[str, str]:
    """`name{labels}` -> value, for every sample line of a rendered textfile."""
    lines = (line.rpartition(" ") for line in exposition.splitlines() if line and not line.startswith("#"))
    return {series: value for series, _, value in lines}


def running_cpu_percent(exposition: str) -> str | None:
    return samples(exposition).get('agent_cpu_percent{agent="agent-running",type="support"}')


@pytest.fixture
def textfile_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "textfile"
    directory.mkdir()
    return directory


def test_run_replaces_the_textfile_atomically_and_keeps_the_counters(tmp_path: Path, textfile_dir: Path) -> None:
    target = textfile_dir / CONFIG.textfile_name
    target.write_bytes(b"# the previous run's file\n")
    os.link(target, tmp_path / "previous")  # a second name for the old inode: it must never change
    # a temporary file of a run that was killed before its rename, named as atomic_write names them
    stale = textfile_dir / f"{temp_prefix(CONFIG.textfile_name)}12345{TEMP_SUFFIX}"
    stale.write_bytes(b"agent_up{")

    result = write(tmp_path, 60)

    assert target.read_bytes() == render(result.snapshot).encode()
    assert target.stat().st_mode & 0o777 == 0o644
    # replaced by a rename, not rewritten in place: the old inode still holds the old bytes
    assert (tmp_path / "previous").read_bytes() == b"# the previous run's file\n"
    assert target.stat().st_ino != (tmp_path / "previous").stat().st_ino
    # every agent of the capture is in the file; a first run has no CPU % for a running agent
    assert samples(target.read_text())['agent_up{agent="agent-running",type="support"}'] == "1"
    assert samples(target.read_text())['agent_up{agent="agent-absent",type="primary"}'] == "0"
    assert len([s for s in samples(target.read_text()) if s.startswith("agent_up{")]) == 7
    assert running_cpu_percent(target.read_text()) is None
    # the lock stays (the next run takes it again); no temporary file, neither ours nor the stale one
    assert sorted(os.listdir(textfile_dir)) == sorted([LOCK, CONFIG.textfile_name])

    state_file = tmp_path / "state" / STATE_FILE
    assert sorted(os.listdir(tmp_path / "state")) == sorted([STATE_FILE, UNIT_CACHE_FILE])
    assert (tmp_path / "state" / UNIT_CACHE_FILE).stat().st_mode & 0o777 == 0o600
    assert result.units is not None
    assert unitcache.load(str(tmp_path / "state" / UNIT_CACHE_FILE), state.boot_id(), "user") == (
        result.units.cache, None)
    assert state_file.read_bytes() == result.state.dumps()
    assert state.load(str(state_file), state.boot_id(), "user") == (result.state, None)
    assert result.state.counters[RUNNING].active_enter_us == ENTER_US


def test_next_run_has_cpu_percent_from_the_kept_counters(tmp_path: Path, textfile_dir: Path) -> None:
    # a copy of the captured cgroup tree in which the running agent then uses 0.5 s of CPU in 10 s
    cgroups = tmp_path / "cgroup"
    shutil.copytree(CGROUP_ROOT, cgroups)
    cpu_stat = cgroups / "unified" / fleet_blocks()[RUNNING]["ControlGroup"].lstrip("/") / "cpu.stat"
    write(tmp_path, 60, cgroup_root=cgroups)
    usage = dict(line.split() for line in cpu_stat.read_text().splitlines())["usage_usec"]
    cpu_stat.write_text(cpu_stat.read_text().replace(f"usage_usec {usage}\n",
                                                     f"usage_usec {int(usage) + 500_000}\n"))

    result = write(tmp_path, 70, cgroup_root=cgroups)

    exposition = (textfile_dir / CONFIG.textfile_name).read_text()
    assert running_cpu_percent(exposition) == "5"
    assert (tmp_path / "state" / STATE_FILE).read_bytes() == result.state.dumps()
    assert sorted(os.listdir(textfile_dir)) == sorted([LOCK, CONFIG.textfile_name])


def test_missing_textfile_directory_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(WriteError, match=r"textfile directory .*/textfile does not exist"):
        write(tmp_path, 60)
    assert os.listdir(tmp_path) == []  # neither the state directory nor a lock


def test_textfile_written_but_counters_not_kept(tmp_path: Path, textfile_dir: Path) -> None:
    target = textfile_dir / CONFIG.textfile_name
    write(tmp_path, 60)
    before = target.read_bytes()
    # the state file's name is taken by a directory: its temporary file is written, the rename fails
    blocked = tmp_path / "blocked-state"
    (blocked / STATE_FILE).mkdir(parents=True)
    (blocked / STATE_FILE / "keep").write_text("not ours")

    with pytest.raises(WriteError) as info:
        write(tmp_path, 70, state_dir=blocked)

    message = str(info.value)
    assert message.startswith(f"wrote {target}, but could not keep the CPU counters (cannot write "
                              f"{blocked / STATE_FILE}: ")
    assert message.endswith("; the next run will have no agent_cpu_percent")
    # the textfile is this run's, whole
    after = target.read_bytes()
    assert after != before
    assert samples(after.decode())["agent_exporter_last_success_timestamp_seconds"] == str(int(WALL + 70))
    assert after.endswith(b"\n") and len(samples(after.decode())) == len(samples(before.decode()))
    assert sorted(os.listdir(textfile_dir)) == sorted([LOCK, CONFIG.textfile_name])
    assert os.listdir(blocked) == [STATE_FILE]  # no temporary file left beside it either
    assert (blocked / STATE_FILE / "keep").read_text() == "not ours"


def no_bus_at_show() -> Replay:
    """The manager goes away between the listings and `show` (each answer as captured)."""
    no_bus = Completed((), int(text("show_no_bus.rc")), "", text("show_no_bus.txt"))
    return Replay({"list-units": ok(text("list_units.txt")), "list-unit-files": ok(text("list_unit_files.txt")),
                   "show": no_bus})


def state_dir_under_a_file(tmp_path: Path) -> Path:
    (tmp_path / "a-file").write_text("")
    return tmp_path / "a-file" / "state"


@pytest.mark.parametrize("failure", ["systemctl fails", "lock held", "state dir cannot be created"])
def test_a_failed_run_leaves_the_last_good_file_byte_identical(tmp_path: Path, textfile_dir: Path,
                                                              failure: str) -> None:
    target = textfile_dir / CONFIG.textfile_name
    write(tmp_path, 60)
    good, good_inode = target.read_bytes(), target.stat().st_ino
    state_file = tmp_path / "state" / STATE_FILE
    kept = state_file.read_bytes()
    listing = sorted(os.listdir(textfile_dir))

    if failure == "systemctl fails":
        with pytest.raises(SystemdError, match="Failed to connect to bus"):
            write(tmp_path, 70, runner=no_bus_at_show())
    elif failure == "lock held":
        fd = os.open(textfile_dir / LOCK, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with pytest.raises(LockError):
                write(tmp_path, 70, timeout=0.1)
        finally:
            os.close(fd)
    else:
        with pytest.raises(WriteError, match="cannot create state directory"):
            write(tmp_path, 70, state_dir=state_dir_under_a_file(tmp_path))

    assert (target.read_bytes(), target.stat().st_ino) == (good, good_inode)
    assert sorted(os.listdir(textfile_dir)) == listing
    assert state_file.read_bytes() == kept

