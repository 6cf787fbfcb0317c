"""Change-driven runs against a real user manager: a steady-state run answers from list-units, the
cgroups and the unit cache, shows only what changed, and writes what a full run writes; the write
path imports neither `re` nor click nor PyYAML (an installed wheel, as users run it)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from devtools.harness import Fleet, MetricKey, UserManager, parse_metrics
from devtools.stack import wait_until
from devtools.wheels import Venv
from tests.cli_checks import EXE

# Measured between the two reads of one comparison: allowed to differ.
MOVING = ("agent_memory_kb", "agent_cpu_seconds_total", "agent_cpu_percent", "agent_tasks", "agent_uptime_seconds",
          "agent_start_time_seconds", "agent_exporter_", "system_")
COUNTS = re.compile(r"(\d+) units shown, (\d+) from the cache")


def config(base: Path, body: str) -> Path:
    (base / "textfile").mkdir(parents=True, exist_ok=True)
    path = base / "config.yml"
    path.write_text(f"scope: user\ntextfile_dir: {base / 'textfile'}\nagents:\n{body}")
    return path


def write(manager: UserManager, conf: Path, state: Path, *extra: str) -> tuple[dict[MetricKey, float], int, int]:
    done = manager.run([*EXE, "write", "-v", "--config", str(conf), "--state-dir", str(state), *extra],
                       check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    counts = COUNTS.search(done.stderr)
    assert counts, done.stderr
    return parse_metrics((conf.parent / "textfile" / "agents.prom").read_text()), int(counts[1]), int(counts[2])


def steady_part(metrics: dict[MetricKey, float]) -> dict[MetricKey, float]:
    return {k: v for k, v in metrics.items() if not k[0].startswith(MOVING)}


def test_steady_state_is_answered_from_the_cache_exactly(user_manager: UserManager, fleet: Fleet,
                                                        tmp_path: Path) -> None:
    body = "".join(f"  - unit: {u}\n    type: primary\n" for u in fleet.long_running)
    cheap, full = config(tmp_path / "cheap", body), config(tmp_path / "full", body)
    _, shown, cached = write(user_manager, cheap, tmp_path / "cheap-state")
    assert (shown, cached) == (len(fleet.long_running), 0)  # first run: no cache yet
    for _ in range(2):
        metrics, shown, cached = write(user_manager, cheap, tmp_path / "cheap-state")
        assert (shown, cached) == (0, len(fleet.long_running))
        reference, shown, _ = write(user_manager, full, tmp_path / "full-state", "--full-refresh")
        assert shown == len(fleet.long_running)
        assert steady_part(metrics) == steady_part(reference)
        assert {k for k in metrics if k[0] == "agent_memory_kb"} == {k for k in reference if k[0] == "agent_memory_kb"}


def test_units_that_are_not_steady_are_always_shown(user_manager: UserManager, fleet: Fleet, tmp_path: Path) -> None:
    """Failed, stopped, absent and crash-looping units (NRestarts > 0) are asked every run."""
    conf = config(tmp_path, f"  - unit: {fleet.absent}\n    type: primary\n  - pattern: 'agent-*.service'\n"
                            "    type: support\n")
    write(user_manager, conf, tmp_path / "state")
    _, shown, cached = write(user_manager, conf, tmp_path / "state")
    assert cached == len(fleet.long_running)
    assert shown == len(fleet.units) - len(fleet.long_running)


def test_a_restart_between_two_runs_is_seen(user_manager: UserManager, fleet: Fleet, tmp_path: Path) -> None:
    conf = config(tmp_path, f"  - unit: {fleet.running}\n    type: primary\n")
    before, _, _ = write(user_manager, conf, tmp_path / "state")
    user_manager.systemctl("restart", fleet.running)
    after, shown, cached = write(user_manager, conf, tmp_path / "state")
    assert (shown, cached) == (1, 0)
    start = next(k for k in after if k[0] == "agent_start_time_seconds")
    assert after[start] > before[start]


def test_write_imports_neither_re_nor_collections_nor_click_nor_yaml(
        public_venv: Venv, user_manager: UserManager, fleet: Fleet, tmp_path: Path) -> None:
    """The installed command, as the timer runs it (the script, not `python -m`), in a steady run."""
    conf = config(tmp_path, "  - pattern: 'agent-*.service'\n    type: support\n")
    timed = {"PYTHONPROFILEIMPORTTIME": "1"}

    def imported(args: list[str]) -> set[str]:
        done = user_manager.run(args, check=False, timeout=60, env=timed)
        assert done.returncode == 0, done.stderr
        return {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}

    bare = imported([public_venv.python, "-c", "pass"])
    assert not {"re", "collections"} & bare and bare  # else the check below proves nothing
    argv = [public_venv.exe, "write", "--config", str(conf), "--state-dir", str(tmp_path / "state")]
    imported(argv)  # the first run parses the config (PyYAML) and fills the caches
    steady = imported(argv)
    assert "textfile_writer.changes" in steady and "textfile_writer.unitfiles" in steady
    ours = {m for m in steady if m.startswith("textfile_writer")}
    # collections: 2-3 ms with what it imports (records.py builds the NamedTuples without it)
    unwanted = {"re", "fnmatch", "typing", "collections", "runpy", "click", "yaml", "json", "subprocess",
                "textfile_writer.probe", "_socket", "socket"}  # no probe configured: nothing of it loaded
    assert not unwanted & steady, sorted(steady - bare - ours)


def test_full_refresh_is_documented_in_help(user_manager: UserManager) -> None:
    done = subprocess.run([*EXE, "write", "--help"], capture_output=True, text=True, check=True, timeout=60)
    assert "--full-refresh" in done.stdout and "AGENT_EXPORTER_FULL_REFRESH" in done.stdout


def test_reset_failed_on_a_running_unit_is_reported(user_manager: UserManager, tmp_path: Path) -> None:
    """`systemctl reset-failed` sets a running unit's NRestarts to 0 and leaves no other trace: a unit
    that has restarted is shown on every run, so the drop is reported as a full run reports it."""
    flag = user_manager.base / "restarted-once"
    unit = "solo-once-restarted.service"  # not agent-*: the session's other tests list every agent-* unit
    user_manager.install_unit(unit, "[Unit]\nStartLimitIntervalSec=0\n[Service]\nRestart=always\nRestartSec=0.2\n"
                                    f"ExecStart=/bin/sh -c 'if [ -e {flag} ]; then exec sleep infinity; fi; "
                                    f"touch {flag}; exit 1'\n")
    try:
        user_manager.systemctl("start", unit)
        once = {"NRestarts": "1", "SubState": "running"}
        wait_until(lambda: user_manager.show(unit, "NRestarts", "SubState") == once, 30, f"{unit} to restart once")
        conf = config(tmp_path, f"  - unit: {unit}\n    type: primary\n")
        key = ("agent_restart_count", frozenset({("agent", "solo-once-restarted"), ("type", "primary")}))
        write(user_manager, conf, tmp_path / "state")
        metrics, shown, cached = write(user_manager, conf, tmp_path / "state")
        assert (metrics[key], shown, cached) == (1, 1, 0)
        user_manager.systemctl("reset-failed", unit)  # not every unit: the shared fleet has a failed one
        assert user_manager.show(unit, "NRestarts", "ActiveState") == {"NRestarts": "0", "ActiveState": "active"}
        metrics, shown, _ = write(user_manager, conf, tmp_path / "state")
        assert (metrics[key], shown) == (0, 1)
        metrics, shown, cached = write(user_manager, conf, tmp_path / "state")  # now it may be cached
        assert (metrics[key], shown, cached) == (0, 0, 1)
    finally:
        user_manager.systemctl("stop", unit, check=False)
        (user_manager.unit_dir / unit).unlink(missing_ok=True)
        user_manager.systemctl("daemon-reload")


def test_a_long_explicit_list_is_listed_whole(user_manager: UserManager, fleet: Fleet, tmp_path: Path) -> None:
    """Past EXPLICIT_LISTED names list-units gets no words (the manager would try each on each unit);
    the answer is the same as for a short list: the absent and the alias-free units as a full run says."""
    from textfile_writer.changes import EXPLICIT_LISTED

    fillers = [f"agent-not-there-{i}.service" for i in range(EXPLICIT_LISTED)]
    body = "".join(f"  - unit: {u}\n    type: primary\n" for u in [*fleet.long_running, fleet.failed, *fillers])
    cheap, full = config(tmp_path / "cheap", body), config(tmp_path / "full", body)
    write(user_manager, cheap, tmp_path / "cheap-state")
    metrics, shown, cached = write(user_manager, cheap, tmp_path / "cheap-state")
    assert cached == len(fleet.long_running) and shown == 1 + len(fillers)
    reference, _, _ = write(user_manager, full, tmp_path / "full-state", "--full-refresh")
    assert steady_part(metrics) == steady_part(reference)
