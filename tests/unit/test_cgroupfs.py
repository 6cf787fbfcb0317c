"""Which cgroup hierarchies the sandbox and the throwaway host use: the cgroup mounts in the mount
table, never a plain directory under /sys/fs/cgroup (one there made SandboxManager.start() fail
with EROFS: it took the directory for a hierarchy and tried to make its cgroup in the tmpfs).

tests/fixtures/cgroupfs holds /proc/self/mountinfo and /proc/cgroups captured on a hybrid-layout
Debian machine (one unrelated mount of the machine's own tooling left out of the mountinfo).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from procs import need

from devtools.cgroupfs import CGROUP_ROOT, cgroup_mounts, mounts, parse_mountinfo, subsystems
from devtools.sandbox import cgroup_hierarchies
from devtools.throwaway import hierarchies

CAPTURED = Path(__file__).resolve().parents[1] / "fixtures" / "cgroupfs"
MOUNTINFO = (CAPTURED / "mountinfo").read_text()
KNOWN = subsystems(str(CAPTURED / "cgroups"))
# What the sandbox joins in a v1 or hybrid layout (devtools/sandbox.py)
JOINED = {"memory", "pids", "cpu", "cpuacct", "name=systemd"}


def test_captured_mountinfo_gives_every_cgroup_mount_and_nothing_else() -> None:
    found = cgroup_mounts(parse_mountinfo(MOUNTINFO), known=KNOWN)
    assert [(str(m.mount_point), m.fstype, sorted(m.controllers)) for m in found] == [
        ("/sys/fs/cgroup/cpu", "cgroup", ["cpu"]),
        ("/sys/fs/cgroup/cpuacct", "cgroup", ["cpuacct"]),
        ("/sys/fs/cgroup/cpuset", "cgroup", ["cpuset"]),
        ("/sys/fs/cgroup/memory", "cgroup", ["memory"]),
        ("/sys/fs/cgroup/devices", "cgroup", ["devices"]),
        ("/sys/fs/cgroup/freezer", "cgroup", ["freezer"]),
        ("/sys/fs/cgroup/blkio", "cgroup", ["blkio"]),
        ("/sys/fs/cgroup/pids", "cgroup", ["pids"]),
        ("/sys/fs/cgroup/systemd", "cgroup", ["name=systemd"]),
        ("/sys/fs/cgroup/unified", "cgroup2", []),
    ]
    assert all(m.root == "/" for m in found)


def test_sandbox_joins_the_mounted_hierarchies_it_needs() -> None:
    joined = cgroup_hierarchies(parse_mountinfo(MOUNTINFO), known=KNOWN)
    assert [str(h) for h in joined] == [f"/sys/fs/cgroup/{n}" for n in
                                        ("cpu", "cpuacct", "memory", "pids", "systemd", "unified")]


def test_a_plain_directory_is_not_a_hierarchy(tmp_path: Path) -> None:
    """The old rule took every one of these directories; only the two mounted ones are hierarchies."""
    root = tmp_path / "cgroup"
    for name in ("unified", "systemd", "memory", "pids", "cpu,cpuacct", "cpu", "cpuacct"):
        (root / name).mkdir(parents=True)
        (root / name / "cgroup.procs").touch()
    (root / "cgroup.controllers").touch()  # a file in a tmpfs does not make it cgroup2 either
    table = parse_mountinfo(
        f"31 23 0:28 / {root} rw,relatime - tmpfs tmpfs rw,mode=755\n"
        f"35 31 0:32 / {root}/memory rw,relatime - cgroup cgroup rw,memory\n"
        f"41 31 0:38 / {root}/unified rw,relatime - cgroup2 cgroup2 rw\n")
    assert cgroup_hierarchies(table, root=root, known=KNOWN) == [root / "memory", root / "unified"]


def test_pure_cgroup2_is_the_whole_root() -> None:
    table = parse_mountinfo("29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 "
                            "rw,nsdelegate,memory_recursiveprot\n")
    assert cgroup_hierarchies(table, known=KNOWN) == [CGROUP_ROOT]


def test_one_hierarchy_mounted_twice_and_escaped_paths() -> None:
    table = parse_mountinfo(
        "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
        "33 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu,cpuacct\n"
        "34 31 0:30 /a\\040b /sys/fs/cgroup/my\\040pids rw - cgroup cgroup rw,pids\n"
        "35 27 0:31 / /elsewhere/memory rw - cgroup cgroup rw,memory\n")
    found = cgroup_mounts(table, known=KNOWN)
    assert [(str(m.mount_point), m.root, sorted(m.controllers)) for m in found] == [
        ("/sys/fs/cgroup/cpu,cpuacct", "/", ["cpu", "cpuacct"]),
        ("/sys/fs/cgroup/my pids", "/a b", ["pids"]),
    ]


def test_this_machines_hierarchies_are_its_cgroup_mounts() -> None:
    """Against findmnt's reading of /proc/self/mountinfo (util-linux, not our parser)."""
    listed = subprocess.run([need("findmnt"), "--raw", "--noheadings", "--types", "cgroup,cgroup2",
                             "--output", "TARGET,FSTYPE,FS-OPTIONS"], capture_output=True, text=True,
                            check=False, timeout=30).stdout
    cgroup_mounts_here = {}
    for line in listed.splitlines():
        target, fstype, options = line.split(" ")
        if target == str(CGROUP_ROOT) or target.startswith(f"{CGROUP_ROOT}/"):
            cgroup_mounts_here[Path(target)] = (fstype, set(options.split(",")))
    assert {m.mount_point for m in cgroup_mounts(mounts())} == set(cgroup_mounts_here)
    assert {h.mount_point for h in hierarchies()} == set(cgroup_mounts_here)
    if cgroup_mounts_here.get(CGROUP_ROOT, ("",))[0] == "cgroup2":
        wanted = {CGROUP_ROOT}
    else:
        wanted = {p for p, (fstype, options) in cgroup_mounts_here.items() if fstype == "cgroup2" or options & JOINED}
    joined = cgroup_hierarchies()
    assert set(joined) == wanted
    assert all(os.path.ismount(h) for h in joined)
