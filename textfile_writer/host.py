"""Host metrics: memory from /proc/meminfo, the disk at disk_path, load from /proc/loadavg."""

from __future__ import annotations

import os

from .errors import HostError
from .model import HostSample


def read_host(disk_path: str, proc_root: str = "/proc") -> tuple[HostSample, list[str]]:
    """The host sample and a list of problems met (each a log line and a collect error)."""
    problems: list[str] = []
    mem_total = mem_used = disk_total = disk_used = swap_total = None
    load = None
    try:
        mem_total, mem_used, swap_total = memory(os.path.join(proc_root, "meminfo"))
    except (OSError, HostError) as exc:
        problems.append(f"host memory: {exc}")
    try:
        disk_total, disk_used = disk(disk_path)
    except OSError as exc:
        problems.append(f"disk {disk_path}: {exc.strerror or exc}")
    try:
        load = loadavg(os.path.join(proc_root, "loadavg"))
    except (OSError, ValueError) as exc:
        problems.append(f"load average: {exc}")
    return HostSample(mem_total, mem_used, disk_total, disk_used, load, swap_total), problems


def memory(meminfo_path: str) -> tuple[int, int, int | None]:
    """(total, used, swap total) in bytes, used = MemTotal - MemAvailable as `free` counts it. A swap
    total of 0 says no agent can use any swap; None that meminfo did not tell."""
    fields: dict[str, int] = {}
    with open(meminfo_path, encoding="utf-8") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("MemTotal", "MemAvailable", "SwapTotal"):
                fields[key] = int(rest.split()[0]) * 1024
    if "MemTotal" not in fields or "MemAvailable" not in fields:
        raise HostError(f"{meminfo_path} lacks MemTotal or MemAvailable")
    return fields["MemTotal"], fields["MemTotal"] - fields["MemAvailable"], fields.get("SwapTotal")


def disk(path: str) -> tuple[int, int]:
    """(total, used) in bytes for the filesystem holding path, as `df` counts them."""
    st = os.statvfs(path)
    return st.f_blocks * st.f_frsize, (st.f_blocks - st.f_bfree) * st.f_frsize


def loadavg(path: str) -> tuple[float, float, float]:
    with open(path, encoding="utf-8") as f:
        one, five, fifteen = f.read().split()[:3]
    return float(one), float(five), float(fifteen)
