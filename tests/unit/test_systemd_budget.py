"""systemd.py's sizes (issue 10, group 9): names and patterns in batches that fit any argv, and a
timeout budget per call that grows with the units asked about, inside a ceiling that ends before
the writer unit's TimeoutStartSec= does."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from textfile_writer import systemd
from textfile_writer.errors import CommandError, SystemdError
from textfile_writer.install import units
from textfile_writer.options import DEFAULT_TIMEOUT
from textfile_writer.proc import run

NAMES = st.lists(st.text(min_size=1, max_size=300), max_size=3000)


@given(NAMES, st.integers(1, 1500), st.integers(1, 200_000))
def test_batches_keep_order_and_limits(names: list[str], size: int, max_bytes: int) -> None:
    got = list(systemd.batches(names, size, max_bytes))
    assert [n for batch in got for n in batch] == names
    for batch in got:
        assert 1 <= len(batch) <= size
        cost = sum(len(n.encode("utf-8", "surrogatepass")) + 1 for n in batch)
        assert cost <= max_bytes or len(batch) == 1  # a single name longer than the limit goes alone


def test_default_batches_fit_a_real_exec() -> None:
    """Batches of the longest unit names systemd takes, each passed to a real child: no E2BIG."""
    names = [f"a{i:06d}" + "x" * 241 + ".service" for i in range(12_000)]  # 255 characters each
    with pytest.raises(CommandError, match="Argument list too long"):
        run(["true", *names], 10)  # all at once: over ARG_MAX
    batches = list(systemd.batches(names))
    assert len(batches) > 20
    for batch in batches:
        done = run(["true", *batch], 10)
        assert done.returncode == 0


def test_each_call_gets_its_units_worth() -> None:
    now = [100.0]
    budget = systemd.Budget.start(5, lambda: now[0])
    assert budget.for_units(0) == 5
    assert budget.for_units(1000) == pytest.approx(5 + 1000 * systemd.PER_UNIT_SECONDS)
    now[0] += systemd.CEILING_SECONDS - 3  # late in the run: what is left, not more
    assert budget.for_units(1000) == pytest.approx(3)
    now[0] += 3
    with pytest.raises(SystemdError, match=r"^systemctl calls took more than 75s in this run"):
        budget.for_units(1)


def test_a_longer_timeout_raises_the_ceiling() -> None:
    budget = systemd.Budget.start(100, lambda: 0.0)
    assert budget.deadline == 100 and budget.for_units(10_000) == 100


def test_the_ceiling_ends_before_the_unit_kills_the_run() -> None:
    text = units.render(units.UnitParams(scope="system", command=("/usr/bin/agent-exporter",),
                                         textfile_dir="/var/lib/x"))[units.WRITER_SERVICE]
    found = re.search(r"^TimeoutStartSec=(\d+)s$", text, re.M)
    assert found
    # the lock wait, then every systemctl call, then collecting and writing (a few seconds at most)
    assert int(found.group(1)) >= DEFAULT_TIMEOUT + systemd.CEILING_SECONDS + 5
