"""Reading a unit's cgroup directly, for what systemd's own accounting does not report.

On hosts with the hybrid cgroup v1 layout systemd often reports CPUUsageNSec=[not set]; the unit
still has a cgroup2 directory under /sys/fs/cgroup/unified whose cpu.stat counts its CPU time.
The cgroupfs root is a parameter so tests can point it at a copy of real files.
"""

from __future__ import annotations

import os
from typing import NamedTuple

DEFAULT_ROOT = "/sys/fs/cgroup"


class Cgroupfs:
    def __init__(self, root: str = DEFAULT_ROOT) -> None:
        self.root = root
        if os.path.exists(os.path.join(root, "cgroup.controllers")):
            self.unified: str | None = root  # pure cgroup2
        elif os.path.isdir(os.path.join(root, "unified")):
            self.unified = os.path.join(root, "unified")  # hybrid
        else:
            self.unified = None  # legacy v1 only

    def _v2(self, cgroup: str, name: str) -> str | None:
        return None if self.unified is None else _join(self.unified, cgroup, name)

    def _v1(self, controller: str, cgroup: str, name: str) -> str:
        return _join(os.path.join(self.root, controller), cgroup, name)

    def cpu_ns(self, cgroup: str) -> int | None:
        """CPU time of the cgroup and its descendants, in nanoseconds."""
        stat = _read(self._v2(cgroup, "cpu.stat"))
        if stat is not None:
            for line in stat.splitlines():
                key, _, value = line.partition(" ")
                if key == "usage_usec":
                    return _int(value, 1000)
        return _int(_read(self._v1("cpuacct", cgroup, "cpuacct.usage")))

    def memory_bytes(self, cgroup: str) -> int | None:
        value = _int(_read(self._v2(cgroup, "memory.current")))
        if value is None:
            value = _int(_read(self._v1("memory", cgroup, "memory.usage_in_bytes")))
        return value

    def tasks(self, cgroup: str) -> int | None:
        value = _int(_read(self._v2(cgroup, "pids.current")))
        if value is None:
            value = _int(_read(self._v1("pids", cgroup, "pids.current")))
        return value

    def identity(self, cgroup: str) -> Identity | None:
        """What changes whenever the unit's processes are replaced: the cgroup directory's inode
        (systemd removes the directory when a unit stops and makes a new one when it starts), the
        processes directly in it (an automatic restart may keep the directory, never the PIDs), and
        the invocation ID systemd writes into the directory's extended attributes where this user
        may read them. None when the cgroup has no directory."""
        for base in (self.unified, os.path.join(self.root, "systemd")):
            if base is None:
                continue
            top = _join(base, cgroup, "")
            try:
                inode = os.stat(top).st_ino
            except OSError:
                continue
            text = _read(os.path.join(top, "cgroup.procs")) or ""
            procs = tuple(sorted(int(p) for p in text.split() if p.isdigit()))
            return Identity(inode, procs, _invocation(top))
        return None

    def pids(self, cgroup: str) -> list[int] | None:
        """Processes in the cgroup itself and below it, or None when the cgroup is not found."""
        for base in (self.unified, os.path.join(self.root, "systemd")):
            if base is None:
                continue
            top = _join(base, cgroup, "")
            if not os.path.isdir(top):
                continue
            found: list[int] = []
            for dirpath, _dirs, _files in os.walk(top):
                text = _read(os.path.join(dirpath, "cgroup.procs"))
                if text:
                    found.extend(int(p) for p in text.split() if p.isdigit())
            return found
        return None


class Identity(NamedTuple):
    inode: int
    procs: tuple[int, ...]
    invocation: str  # as systemctl prints InvocationID, or "" where the attribute is absent or not ours to read


def _invocation(directory: str) -> str:
    # trusted.* for the system manager (readable by root), user.* where systemd also sets it.
    for name in ("trusted.invocation_id", "user.invocation_id"):
        try:
            return os.getxattr(directory, name).decode("ascii")  # systemd writes it as 32 hex digits
        except (OSError, UnicodeDecodeError):
            continue
    return ""


def _join(base: str, cgroup: str, name: str) -> str:
    # ControlGroup is absolute within the hierarchy; never let it climb out of the root.
    parts = [p for p in cgroup.split("/") if p and p not in (".", "..")]
    return os.path.join(base, *parts, name)


def _read(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def _int(text: str | None, scale: int = 1) -> int | None:
    if text is None:
        return None
    try:
        return int(text.strip()) * scale
    except ValueError:
        return None


def rss_bytes(pids: list[int]) -> int | None:
    """Last resort for memory: RSS summed over the processes (psutil, imported only here)."""
    import psutil

    total = 0
    seen = False
    for pid in pids:
        try:
            total += int(psutil.Process(pid).memory_info().rss)
            seen = True
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return total if seen else None
