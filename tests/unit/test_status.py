"""status.py's choice of a starting reading for CPU %: where the installed writer keeps its state for
each scope, and the freshest usable state among those places. (status by hand against a real
systemd: tests/integration/test_writer_systemd.py and tests/integration/install/test_install_systemd.py.)"""

from __future__ import annotations

from pathlib import Path

from textfile_writer import state
from textfile_writer.defaults import STATE_FILE, writer_state_dirs
from textfile_writer.status import CpuWindow, freshest_state

BOOT = state.boot_id()


def test_where_the_timer_keeps_its_state() -> None:
    env = {"XDG_STATE_HOME": "/h/state", "XDG_CONFIG_HOME": "/h/config"}
    assert writer_state_dirs("system", env) == ["/var/lib/agent-exporter"]
    # StateDirectory= of a user unit: $XDG_STATE_HOME from systemd 254, $XDG_CONFIG_HOME before
    assert writer_state_dirs("user", env) == ["/h/state/agent-exporter", "/h/config/agent-exporter"]
    assert writer_state_dirs("user", {**env, "STATE_DIRECTORY": "/run/x:/run/y"}) == ["/run/x"]


def keep(directory: Path, taken_ns: int, scope: str = "user", boot: str = BOOT) -> str:
    directory.mkdir(parents=True)
    counters = {"agent-a.service": state.Counter(10**9, 5)}
    (directory / STATE_FILE).write_bytes(state.State(boot, scope, taken_ns, counters).dumps())
    return str(directory)


def test_the_freshest_usable_state_wins(tmp_path: Path) -> None:
    older = keep(tmp_path / "older", 100)
    newer = keep(tmp_path / "newer", 200)
    other_scope = keep(tmp_path / "system", 300, scope="system")
    other_boot = keep(tmp_path / "boot", 400, boot="another-boot")
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / STATE_FILE).write_text("not a state\n")
    dirs = [older, str(tmp_path / "absent"), other_scope, newer, other_boot, str(tmp_path / "garbage")]
    previous, where = freshest_state(dirs, BOOT, "user")
    assert where == newer and previous is not None and previous.taken_ns == 200
    assert freshest_state([str(tmp_path / "absent"), other_scope], BOOT, "user") == (None, None)


def test_the_window_says_where_cpu_comes_from() -> None:
    assert CpuWindow(0.5123, None).describe() == \
        "CPU% over the last 0.5 s, sampled by status (no fresh state of the writer's)"
    assert CpuWindow(4.25, "/var/lib/agent-exporter").describe() == \
        "CPU% since the writer's run 4.2 s ago (its state in /var/lib/agent-exporter)"
