"""The host's cgroup hierarchies, read from the mount table (what the sandbox and the throwaway host join).

A hierarchy is a cgroup or cgroup2 filesystem mounted at or under /sys/fs/cgroup, never a directory
that merely sits there: /sys/fs/cgroup is itself a tmpfs on a hybrid host, and a plain directory
in it (left by some other tool) is no cgroup. Making a directory inside one would write to that
tmpfs, which the host may have made read-only (EROFS) and must never be changed by the tests.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
MOUNTINFO = "/proc/self/mountinfo"
PROC_CGROUPS = "/proc/cgroups"


@dataclass(frozen=True)
class Mount:
    """One line of /proc/<pid>/mountinfo (proc(5))."""

    device: str  # major:minor of the filesystem: two mounts of one hierarchy share it
    root: str  # what of that filesystem is mounted here
    mount_point: str
    options: str
    fstype: str
    super_options: str


@dataclass(frozen=True)
class CgroupMount:
    """A cgroup hierarchy as mounted here."""

    mount_point: Path
    fstype: str  # cgroup (v1) or cgroup2
    root: str  # the cgroup mounted there, as a path within its hierarchy ("/" unless a bind or a namespace)
    controllers: frozenset[str]  # v1: its controllers and its name= option; cgroup2: empty


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[Mount]:
    """mountinfo text -> its mounts, in the order listed (the order they were mounted in)."""
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        head, _, tail = line.partition(" - ")
        fields, rest = head.split(), tail.split()
        out.append(Mount(device=fields[2], root=_unescape(fields[3]), mount_point=_unescape(fields[4]),
                         options=fields[5], fstype=rest[0], super_options=rest[2] if len(rest) > 2 else ""))
    return out


def mounts(mountinfo: str = MOUNTINFO) -> list[Mount]:
    with open(mountinfo) as f:
        return parse_mountinfo(f.read())


def subsystems(proc_cgroups: str = PROC_CGROUPS) -> frozenset[str]:
    """The kernel's cgroup controllers (the names a v1 mount's options may contain)."""
    with open(proc_cgroups) as f:
        return frozenset(line.split()[0] for line in f if line.strip() and not line.startswith("#"))


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def cgroup_mounts(table: Iterable[Mount] | None = None, root: Path = CGROUP_ROOT,
                  known: Iterable[str] | None = None) -> list[CgroupMount]:
    """The cgroup and cgroup2 mounts at or under root, one per hierarchy, in mount order.

    table defaults to this process's mount table and known (the controller names) to /proc/cgroups.
    """
    table = mounts() if table is None else table
    names = subsystems() if known is None else frozenset(known)
    out = []
    seen: set[object] = set()
    for m in table:
        if m.fstype not in ("cgroup", "cgroup2") or not _under(m.mount_point, str(root)):
            continue
        # one entry per place and per cgroup (a hierarchy mounted twice is one hierarchy)
        if m.mount_point in seen or (m.device, m.root) in seen:
            continue
        seen.update((m.mount_point, (m.device, m.root)))
        controllers = frozenset() if m.fstype == "cgroup2" else frozenset(
            o for o in m.super_options.split(",") if o in names or o.startswith("name="))
        out.append(CgroupMount(Path(m.mount_point), m.fstype, m.root, controllers))
    return out
