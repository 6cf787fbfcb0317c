"""devtools.throwaway: a real systemd booted as PID 1 in private namespaces (a throwaway host).

Every host is made by the `hosts` fixture, which stops them all (poweroff, then kill by PID, cgroups
removed) when the test ends, passed or failed. The real host must come out unchanged: same mounts,
same /sys/fs/cgroup and hierarchy top directories, same /proc/cgroups, no process left.

Outside CI a machine that cannot boot one (not root, a tool or overlayfs missing) skips these tests
with the reason; with CI=true they fail instead.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest
from procs import IN_CI

from devtools.throwaway import (
    SHARE_MOUNT,
    TARGET,
    HostError,
    HostSnapshot,
    ThrowawayHost,
    host_snapshot,
    throwaway_supported,
)

pytestmark = pytest.mark.integration

# What systemd names its cgroups: if one of these appears in a real hierarchy's top directory, a
# host's systemd escaped its private cgroups.
_SYSTEMD_CGROUP_SUFFIXES = (".slice", ".scope", ".service", ".socket", ".mount", ".swap")

NewHost = Callable[..., ThrowawayHost]


@pytest.fixture
def hosts() -> Iterator[NewHost]:
    """new_host(**kwargs) -> an unstarted ThrowawayHost; every one is stopped when the test ends."""
    why = throwaway_supported()
    if why:
        if IN_CI:
            pytest.fail(f"throwaway host prerequisite missing under CI=true: {why}", pytrace=False)
        pytest.skip(why)
    with contextlib.ExitStack() as stack:

        def new_host(name: str | None = None, target: str = TARGET) -> ThrowawayHost:
            host = ThrowawayHost(name, target=target)
            stack.callback(host.stop)
            return host

        yield new_host


def identities(pids: Iterable[int]) -> set[tuple[int, str]]:
    """(pid, start time) of each live process: a recorded process is gone even if its PID is reused."""
    out = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            out.add((pid, stat.rsplit(")", 1)[1].split()[19]))
    return out


def processes_in_cgroup(name: str) -> list[int]:
    """Every process on the machine whose cgroup path has a component `name`."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if f"/{name}/" in Path(f"/proc/{entry}/cgroup").read_text().replace("\n", "/\n"):
                    found.append(int(entry))
    return found


def changes(before: HostSnapshot, after: HostSnapshot, ours: Iterable[str]) -> list[str]:
    """What differs between two snapshots, less other users' cgroups on this shared machine.

    Other test sessions start and stop sandboxes beside us, each with a cgroup of its own in the
    hierarchies' top directories: an entry appearing or going there is ours to explain only if it is
    one of our hosts' names or a name systemd gives its cgroups."""
    ours = set(ours)
    out = []
    if before.mounts != after.mounts:
        out += [f"mount gone: {m}" for m in sorted(set(before.mounts) - set(after.mounts))]
        out += [f"mount new: {m}" for m in sorted(set(after.mounts) - set(before.mounts))]
    if before.cgroup_table != after.cgroup_table:
        out.append(f"/proc/cgroups: {before.cgroup_table} -> {after.cgroup_table}")
    was, now = dict(before.cgroup_entries), dict(after.cgroup_entries)
    if was.keys() != now.keys():
        out.append(f"hierarchies: {sorted(was)} -> {sorted(now)}")
    for directory in sorted(was.keys() & now.keys()):
        for entry in sorted(set(was[directory]) ^ set(now[directory])):
            foreign = (entry not in ours and not entry.endswith(_SYSTEMD_CGROUP_SUFFIXES)
                       and directory != "/sys/fs/cgroup")
            if not foreign:
                out.append(f"{directory}: {'new' if entry in now[directory] else 'gone'} {entry}")
    return out


def assert_gone(host: ThrowawayHost, recorded: Iterable[tuple[int, str]] = ()) -> None:
    """The host's cgroups, processes (by PID and start time) and base directory are gone."""
    recorded = set(recorded)
    assert not [cg for cg in host.cgroups if cg.exists()], "private cgroups left behind"
    assert processes_in_cgroup(host.name) == [], "processes left in the host's cgroups"
    assert identities(pid for pid, _ in recorded) & recorded == set(), "recorded processes still alive"
    assert not host.base.exists()


def test_boot_run_files_and_unprivileged_dbus(hosts: NewHost) -> None:
    host = hosts().start()
    assert host.boot_seconds is not None and host.boot_seconds < 20
    assert host.systemctl("is-system-running").stdout.strip() == "running"
    assert host.read_file("/proc/1/comm") == b"systemd\n"
    assert host.run(["hostname"]).stdout.strip() == host.name
    # systemd's cgroups are its private ones, seen as the roots through the cgroup namespace
    assert "0::/init.scope\n" in host.read_file("/proc/1/cgroup").decode()
    assert host.run(["ip", "-o", "link", "show"]).stdout.count(": lo:") == 1

    path = f"/etc/{host.name}/made-inside.conf"
    payload = b"\x00binary\xffdata\n"
    host.write_file(path, payload, mode=0o600)
    assert host.read_file(path) == payload
    assert host.run(["stat", "-c", "%a %U", path]).stdout.strip() == "600 root"
    assert not os.path.exists(f"/etc/{host.name}")

    (host.share / "from-outside.txt").write_text("shared\n")
    assert host.read_file(f"{SHARE_MOUNT}/from-outside.txt") == b"shared\n"
    assert host.run(["touch", f"{SHARE_MOUNT}/from-inside"], check=False).returncode != 0  # read-only

    with pytest.raises(HostError, match=r"exited 3: oops"):
        host.run(["sh", "-c", "echo oops >&2; exit 3"])

    # a non-root user talks to PID 1 over D-Bus, directly and from a static-user service
    assert host.run(["id", "-un"], user="nobody").stdout.strip() == "nobody"
    listed = host.run(["systemctl", "list-units", "--no-legend", "--plain"], user="nobody").stdout
    assert "throwaway-host.target" in listed
    assert host.systemctl("is-active", "dbus.socket").stdout.strip() == "active"
    done = host.run(["systemd-run", "--wait", "--pipe", "--quiet", "-p", "User=nobody", "--",
                     "sh", "-c", "id -un; systemctl is-system-running"])
    assert done.stdout.split() == ["nobody", "running"]
    assert host.systemctl("--failed", "--no-legend").stdout.strip() == ""


def test_two_hosts_are_apart(hosts: NewHost) -> None:
    a, b = hosts().start(), hosts().start()
    assert a.pid != b.pid
    assert a.read_file("/etc/machine-id") != b.read_file("/etc/machine-id")
    unit = "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n"
    a.write_file("/etc/systemd/system/only-in-a.service", unit)
    a.systemctl("daemon-reload")
    a.systemctl("start", "only-in-a.service")
    b.write_file("/etc/only-in-b", "b\n")

    assert a.show("only-in-a.service", "ActiveState")["ActiveState"] == "active"
    assert b.show("only-in-a.service", "LoadState")["LoadState"] == "not-found"
    assert a.run(["test", "-e", "/etc/only-in-b"], check=False).returncode == 1
    assert b.run(["hostname"]).stdout.strip() == b.name

    a.stop()
    assert_gone(a)
    assert b.systemctl("is-system-running").stdout.strip() == "running"
    assert b.read_file("/etc/only-in-b") == b"b\n"
    assert b.show("only-in-a.service", "LoadState")["LoadState"] == "not-found"


def test_real_host_unchanged_after_boot_and_stop(hosts: NewHost) -> None:
    before = host_snapshot()
    host = hosts().start()
    host.write_file("/etc/systemd/system/sleeper.service", "[Service]\nExecStart=/bin/sleep infinity\n")
    host.systemctl("daemon-reload")
    host.systemctl("start", "sleeper.service")
    host.run(["systemd-run", "--unit=transient-sleeper", "-p", "User=nobody", "/bin/sleep", "infinity"])
    # a command that leaves a process behind (it is in the host's PID namespace and cgroups)
    host.run(["sh", "-c", "sleep 1000 >/dev/null 2>&1 </dev/null &"])
    assert host.proc is not None and host.console_proc is not None
    recorded = identities({*host.pids(), host.pid, host.proc.pid, host.console_proc.pid})
    assert len(recorded) >= 7  # unshare, systemd, journald, 3 sleeps, the console copier
    # while it runs, the real host shows only its private cgroups (those in a top directory:
    # the others are under the caller's own cgroup)
    tops = dict(before.cgroup_entries)
    expected = sorted(f"{cg.parent}: new {host.name}" for cg in host.cgroups if str(cg.parent) in tops)
    assert sorted(changes(before, host_snapshot(), [host.name])) == expected

    host.stop()
    assert_gone(host, recorded)
    assert changes(before, host_snapshot(), [host.name]) == []
    host.stop()  # idempotent


def test_stop_cleans_after_failure_mid_test(hosts: NewHost) -> None:
    before = host_snapshot()
    host = hosts()
    recorded: set[tuple[int, str]] = set()
    with pytest.raises(RuntimeError, match="the test failed here"), host:
        host.systemctl("start", "dbus.service")
        assert host.proc is not None
        recorded = identities({*host.pids(), host.pid, host.proc.pid})
        raise RuntimeError("the test failed here")
    assert len(recorded) >= 4
    assert_gone(host, recorded)
    assert changes(before, host_snapshot(), [host.name]) == []


def test_failed_start_leaves_nothing(hosts: NewHost) -> None:
    before = host_snapshot()
    host = hosts(target="no-such-unit.target")
    with pytest.raises(HostError, match=r"(?s)state 'maintenance'.*Unit no-such-unit.target not found"):
        host.start(timeout=30)
    assert_gone(host)
    host.stop()  # again, after a failed start
    assert_gone(host)

    # a name already in use: refused before anything runs, and the running host is left alone
    first = hosts().start()
    clash = hosts(name=first.name)
    with pytest.raises(HostError, match="another host is called"):
        clash.start()
    clash.stop()
    assert first.systemctl("is-system-running").stdout.strip() == "running"
    assert all(cg.exists() for cg in first.cgroups)
    first.stop()
    assert_gone(first)

    with pytest.raises(HostError, match="not a usable host name"):
        ThrowawayHost(name="Not A Hostname")
    assert changes(before, host_snapshot(), [host.name, first.name]) == []
