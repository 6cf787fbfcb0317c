"""Reading a unit's cgroup directly, for what systemd's own accounting does not report.

On hosts with the hybrid cgroup v1 layout systemd often reports CPUUsageNSec=[not set]; the unit
still has a cgroup2 directory under /sys/fs/cgroup/unified whose cpu.stat counts its CPU time.
The cgroupfs root is a parameter so tests can point it at a copy of real files.
"""

from __future__ import annotations

import os

DEFAULT_ROOT = "/sys/fs/cgroup"


class Cgroupfs:
    """A cgroupfs (pure cgroup2, hybrid or v1-only), and where each figure is read on it.

    The layout is looked at once: a controller's v2 file is read only where the unified hierarchy
    has that controller (hybrid hosts have none there but CPU's always-present cpu.stat), its v1
    file only where that hierarchy is mounted. A change-driven run reads these files for every
    running agent, so each read is one open, one read, one close, with no buffered-I/O layer."""

    def __init__(self, root: str = DEFAULT_ROOT) -> None:
        self.root = root
        if os.path.exists(os.path.join(root, "cgroup.controllers")):
            self.unified: str | None = root  # pure cgroup2
        elif os.path.isdir(os.path.join(root, "unified")):
            self.unified = os.path.join(root, "unified")  # hybrid
        else:
            self.unified = None  # legacy v1 only
        v2 = set((_read(os.path.join(self.unified, "cgroup.controllers")) or "").split()) if self.unified else set()

        def places(controller: str, v2_file: str, v1_file: str, v2_always: bool = False) -> tuple[tuple[str, str], ...]:
            found = []
            if self.unified is not None and (v2_always or controller in v2):
                found.append((self.unified, v2_file))
            v1 = os.path.join(root, controller)
            if os.path.isdir(v1):
                found.append((v1, v1_file))
            return tuple(found)

        self._cpu = places("cpuacct", "cpu.stat", "cpuacct.usage", v2_always=True)
        self._memory = places("memory", "memory.current", "memory.usage_in_bytes")
        self._tasks = places("pids", "pids.current", "pids.current")
        self._peak = places("memory", "memory.peak", "memory.max_usage_in_bytes")
        # swap: cgroup2's own figure; on v1 memory+swap less memory (only with swap accounting)
        self._swap = places("memory", "memory.swap.current", "memory.memsw.usage_in_bytes")
        self._ooms = places("memory", "memory.events", "memory.oom_control")
        # ControlGroup -> (its parent directory, its own name), both within the hierarchy's root
        self._where: dict[str, tuple[str, str]] = {}
        # Directories that hold units' cgroups (app.slice, system.slice...), one descriptor each per
        # hierarchy: a unit's files are opened relative to them (two path steps instead of ~8, 15%
        # of a read here). A run lives seconds; the descriptors are closed with this object.
        self._parents: dict[str, int] = {}
        # Where a unit's processes are listed: cgroup2, else the v1 name=systemd hierarchy.
        self._process_trees = tuple(b for b in (self.unified, os.path.join(root, "systemd")) if b is not None)
        self._procs = tuple((base, "cgroup.procs") for base in self._process_trees)

    def _first(self, places: tuple[tuple[str, str], ...], where: tuple[str, str]) -> bytes | None:
        """The cgroup's file (where: _locate) from the first place that has it, or None."""
        for base, name in places:
            data = self._read(base, where, name)
            if data is not None:
                return data
        return None

    def _read(self, base: str, where: tuple[str, str], name: str) -> bytes | None:
        """_read of the cgroup's file `name` in hierarchy `base`, opened relative to the unit's
        parent directory."""
        parent, leaf = where
        if not leaf:
            return _read(f"{base}/{name}")
        key = f"{base}/{parent}"
        fd = self._parents.get(key)
        if fd is None:
            fd = self._parents[key] = _open_directory(key)
        data = None if fd < 0 else _read(f"{leaf}/{name}", fd)
        # by the whole path too when that failed: the parent may have been made anew since it was opened
        return _read(f"{key}/{leaf}/{name}") if data is None else data

    def unit(self, cgroup: str) -> tuple[tuple[int, ...] | None, int | None, int | None, int | None]:
        """(procs(), cpu_ns(), memory_bytes(), tasks()) at once: what a change-driven run reads of
        every cached agent."""
        return (self.procs(cgroup), *self.figures(cgroup))

    def close(self) -> None:
        parents = getattr(self, "_parents", {})  # also when __init__ did not get that far
        for fd in parents.values():
            if fd >= 0:
                os.close(fd)
        parents.clear()

    def __del__(self) -> None:
        self.close()

    def _locate(self, cgroup: str) -> tuple[str, str]:
        """(the parent directory, the cgroup's own name), within the hierarchy: ControlGroup is
        absolute within it, and never climbs out of its root."""
        where = self._where.get(cgroup)
        if where is None:
            parts = [p for p in cgroup.split("/") if p and p not in (".", "..")]
            where = self._where[cgroup] = ("/".join(parts[:-1]), parts[-1] if parts else "")
        return where

    def cpu_ns(self, cgroup: str) -> int | None:
        """CPU time of the cgroup and its descendants, in nanoseconds: cgroup2's cpu.stat
        (usage_usec), else v1's cpuacct.usage (a number)."""
        return _cpu(self._first(self._cpu, self._locate(cgroup)))

    def memory_bytes(self, cgroup: str) -> int | None:
        return _int(self._first(self._memory, self._locate(cgroup)))

    def tasks(self, cgroup: str) -> int | None:
        return _int(self._first(self._tasks, self._locate(cgroup)))

    def figures(self, cgroup: str) -> tuple[int | None, int | None, int | None]:
        """(cpu_ns, memory_bytes, tasks) at once: a change-driven run reads them for every agent."""
        where = self._locate(cgroup)
        first = self._first
        return (_cpu(first(self._cpu, where)), _int(first(self._memory, where)),
                _int(first(self._tasks, where)))

    def memory_peak(self, cgroup: str) -> int | None:
        """The most memory the cgroup has used (cgroup2 memory.peak, kernel 5.19 and later; v1
        memory.max_usage_in_bytes), or None where the cgroup does not keep it."""
        return _int(self._first(self._peak, self._locate(cgroup)))

    def swap_bytes(self, cgroup: str) -> int | None:
        """Swap used by the cgroup: cgroup2 memory.swap.current, or v1 memory.memsw.usage_in_bytes
        less memory.usage_in_bytes (the memory+swap figure exists only with swap accounting)."""
        where = self._locate(cgroup)
        for base, name in self._swap:
            value = _int(self._read(base, where, name))
            if value is None:
                continue
            if base == self.unified:
                return value
            memory = _int(self._read(base, where, "memory.usage_in_bytes"))
            return None if memory is None else max(0, value - memory)
        return None

    @property
    def counts_ooms(self) -> bool:
        """Whether this host's cgroups count OOM kills at all (a memory controller is mounted)."""
        return bool(self._ooms)

    def oom_kills(self, cgroup: str) -> int | None:
        """Processes of the cgroup the kernel's OOM killer has killed: the `oom_kill` line of
        cgroup2 memory.events or of v1 memory.oom_control (kernel 4.13 and later); None where
        neither tells."""
        return _field(self._first(self._ooms, self._locate(cgroup)), b"oom_kill")

    def procs(self, cgroup: str) -> tuple[int, ...] | None:
        """The PIDs directly in the unit's cgroup, sorted; None when it has no cgroup directory.

        This is what tells a change-driven run that a unit was restarted although it is active at
        both runs: a restart never keeps the processes (an automatic restart may keep the
        directory), and the kernel hands out PIDs in increasing order up to pid_max (4194304 on
        64-bit systemd hosts) before it wraps. A unit whose processes all sit in child cgroups
        (Delegate=) has none here: changes.py never caches it. systemd also writes the invocation
        ID into the directory's extended attributes, but only root may read trusted.*, and two more
        system calls per unit would add nothing the PIDs do not already tell."""
        return _pids(self._first(self._procs, self._locate(cgroup)))

    def pids(self, cgroup: str) -> list[int] | None:
        """Processes in the cgroup itself and below it, or None when the cgroup is not found."""
        parent, leaf = self._locate(cgroup)
        for base in self._process_trees:
            top = f"{base}/{parent}/{leaf}"
            if not os.path.isdir(top):
                continue
            found: list[int] = []
            for dirpath, _dirs, _files in os.walk(top):
                data = _read(os.path.join(dirpath, "cgroup.procs"))
                if data:
                    found.extend(int(p) for p in data.split() if p.isdigit())
            return found
        return None


# A cgroup's file is small, cgroup.procs aside (~8 bytes a process); past this it is not read on.
_MAX_READ = 1 << 20


_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK


def _read(path: str, dir_fd: int | None = None) -> bytes | None:
    """A cgroupfs file's bytes (at most _MAX_READ of them), or None when it cannot be read."""
    try:
        fd = os.open(path, _FLAGS, dir_fd=dir_fd)
    except (OSError, ValueError):
        return None
    try:
        data = os.read(fd, 65536)
        if len(data) == 65536:  # cgroupfs sizes are 0: read on to the end or the limit
            chunks = [data]
            while sum(map(len, chunks)) < _MAX_READ and (chunk := os.read(fd, 65536)):
                chunks.append(chunk)
            data = b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data


def _open_directory(path: str) -> int:
    """An O_PATH descriptor of the directory, or -1."""
    try:
        return os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except (OSError, ValueError):
        return -1


def _pids(data: bytes | None) -> tuple[int, ...] | None:
    """cgroup.procs' PIDs, sorted; () for a listing that is not one."""
    if data is None:
        return None
    try:
        return tuple(sorted(map(int, data.split())))
    except ValueError:
        return ()


def _int(data: bytes | None, scale: int = 1) -> int | None:
    """A file that holds one number (int() takes bytes and ignores the newline)."""
    if data is None:
        return None
    try:
        return int(data) * scale
    except ValueError:
        return None


def _cpu(data: bytes | None) -> int | None:
    """CPU time in ns from cgroup2's cpu.stat (usage_usec: its first line on every kernel so far,
    looked for further down all the same) or v1's cpuacct.usage (a number)."""
    if data is None or not data.startswith(b"usage_usec"):
        return _int(data)
    if data.startswith(b"usage_usec "):
        return _int(data[11:].partition(b"\n")[0], 1000)
    return _field(data, b"usage_usec", 1000)


def _field(data: bytes | None, key: bytes, scale: int = 1) -> int | None:
    """The number on a flat-keyed file's line `key N` (cpu.stat, memory.events, memory.oom_control)."""
    if data is None:
        return None
    for line in data.splitlines():
        name, _, value = line.partition(b" ")
        if name == key:
            return _int(value, scale)
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
