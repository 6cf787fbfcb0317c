"""The writer at scale against a real systemd user manager (issue 10, group 9).

Thousands of units matched by a pattern take systemd seconds to list and show: each call's timeout
grows with the units it asks about, within the run's ceiling. Thousands of long explicit names
would overflow the kernel's argument limit in one `show`: they go in batches.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from devtools.harness import EXE, UserManager, parse_metrics, stop_quietly
from textfile_writer import systemd
from textfile_writer.proc import Completed

pytestmark = pytest.mark.integration

INSTALLED = 2500  # list-unit-files alone takes 7-8 s for these on 2 shared CPUs: over the old fixed 5 s
# Long names, absent: 9000 x ~250 bytes is 2.2 MB of argv, over Linux's ARG_MAX of 2 MiB.
ABSENT = [f"agent-absent-{'x' * 220}-{i:05d}.service" for i in range(9000)]


@pytest.fixture(scope="module")
def crowded(sandbox_prerequisites: None) -> Iterator[UserManager]:
    """A manager of its own with INSTALLED unit files (not started: the cost is in their files)."""
    manager = UserManager()
    try:
        manager.start()
        manager.unit_dir.mkdir(parents=True, exist_ok=True)
        for i in range(INSTALLED):
            (manager.unit_dir / f"agent-many{i:05d}.service").write_text("[Service]\nExecStart=/bin/sleep infinity\n")
        manager.systemctl("daemon-reload")
        yield manager
    finally:
        stop_quietly(manager)


def test_thousands_of_units_matched_by_a_pattern(crowded: UserManager, tmp_path: Path) -> None:
    textdir = tmp_path / "out"
    textdir.mkdir()
    config = tmp_path / "config.yml"
    config.write_text(f"scope: user\ntextfile_dir: {textdir}\nagents:\n  - pattern: 'agent-many*.service'\n")
    started = time.monotonic()
    done = crowded.run([EXE, "write", "--config", str(config), "--state-dir", str(tmp_path / "state")],
                       check=False, timeout=120)
    took = time.monotonic() - started
    print(f"write with {INSTALLED} units matched by a pattern: {took:.1f}s")
    assert done.returncode == 0, done.stderr
    metrics = parse_metrics((textdir / "agents.prom").read_text())
    assert metrics[("agents_total", frozenset())] == INSTALLED
    assert metrics[("agents_running_total", frozenset())] == 0
    assert took < systemd.CEILING_SECONDS + 10  # the ceiling, and the run's own work around the calls


def test_thousands_of_long_explicit_names_are_batched(crowded: UserManager) -> None:
    calls: list[tuple[Sequence[str], float]] = []
    answers: list[str] = []

    def recording(argv: Sequence[str], timeout: float) -> Completed:
        calls.append((list(argv), timeout))
        done = crowded.runner(argv, timeout)
        answers.append(done.stdout)
        return done

    started = time.monotonic()
    mine, found = systemd.query("user", ABSENT, [], recording, 5)
    print(f"show for {len(ABSENT)} absent names in {len(calls)} calls: {time.monotonic() - started:.1f}s")
    assert [b["Id"] for b in mine] == ABSENT and found == []
    assert {b["LoadState"] for b in mine} == {"not-found"}
    asked: list[str] = []
    for argv, timeout in calls:
        names = list(argv[argv.index("--") + 1:])
        asked += names
        assert len(names) <= systemd.SHOW_BATCH
        assert sum(len(n) + 1 for n in names) <= systemd.ARGV_BYTES
        assert timeout <= 5 + systemd.PER_UNIT_SECONDS * len(names)
    first_argv, first_timeout = calls[0]
    first_names = len(first_argv) - list(first_argv).index("--") - 1
    assert first_names > 500 and first_timeout == pytest.approx(5 + systemd.PER_UNIT_SECONDS * first_names)
    assert asked == ABSENT
    assert sum(len(n) + 1 for n in ABSENT) > 2 * 1024 * 1024  # one call would not have fit

    # Giving each name its block stays linear: three times the names, about three times the time
    # (a scan per name made it nine: 1.4 s for these 9000 on 2 CPUs; 0.02 s indexed).
    blocks = [b for text in answers for b in systemd.parse_show(text)]

    def matching(n: int) -> float:
        """This thread's CPU time (a loaded machine preempts, and wall time then says nothing about
        the work), best of five, with the collector off."""
        times = []
        gc.disable()
        try:
            for _ in range(5):
                started = time.thread_time()
                systemd.match_blocks(ABSENT[:n], blocks[:n])
                times.append(time.thread_time() - started)
        finally:
            gc.enable()
        return min(times)

    third, whole = matching(len(ABSENT) // 3), matching(len(ABSENT))
    print(f"matching names to their blocks: {third:.3f}s for {len(ABSENT) // 3}, {whole:.3f}s for {len(ABSENT)}")
    assert whole < 6 * third
