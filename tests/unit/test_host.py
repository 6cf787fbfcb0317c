"""host.py: host memory, disk and load as the kernel reports them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from textfile_writer.host import disk, loadavg, memory, read_host


def test_memory_matches_proc_meminfo() -> None:
    total, used, swap = memory("/proc/meminfo")
    with open("/proc/meminfo") as f:
        fields = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f}
    assert total == fields["MemTotal"] and swap == fields["SwapTotal"]
    # MemAvailable moves between the two reads; a few MiB of slack
    assert abs((total - used) - fields["MemAvailable"]) < 64 * 2**20


def test_disk_matches_shutil_disk_usage() -> None:
    total, used = disk("/")
    usage = shutil.disk_usage("/")
    assert total == usage.total
    assert abs(used - usage.used) < 64 * 2**20


def test_load_matches_os_getloadavg() -> None:
    ours = loadavg("/proc/loadavg")
    theirs = os.getloadavg()
    assert all(abs(a - b) < 0.5 for a, b in zip(ours, theirs, strict=True))


def test_problems_are_reported_not_raised(tmp_path: Path) -> None:
    sample, problems = read_host(str(tmp_path / "no-such-disk"), proc_root=str(tmp_path))
    assert sample.memory_total_bytes is None and sample.disk_total_bytes is None and sample.load is None
    assert len(problems) == 3
    assert any("no-such-disk" in p for p in problems)
