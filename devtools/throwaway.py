"""A throwaway host: a real systemd booted as PID 1 in private namespaces, for system-scope units.

As root on a machine whose PID 1 is not systemd (containers, CI), ThrowawayHost boots
`/lib/systemd/systemd --system` inside `unshare --pid --fork --kill-child --mount --uts --ipc --net
--cgroup`. Before it execs systemd, the boot script (run as PID 1 of the new PID namespace):
- mounts an overlayfs whose lower layer is the real `/` and whose upper and work directories are on
  a tmpfs of the private mount namespace, and pivots into it: units, users, groups and /etc changes
  vanish with the host (an upper directory on the root filesystem would be inside the lower layer,
  where overlayfs answers ELOOP for it);
- gives it a fresh proc (/proc/sys and the other kernel knobs bound read-only), a read-only sysfs
  of its network namespace, fresh tmpfs on /run and /tmp, a /dev tmpfs with the harmless device
  nodes bound in, a devpts instance of its own and a /dev/shm;
- mounts a new tmpfs on /sys/fs/cgroup holding, per real hierarchy, a bind of a private cgroup of
  this host, then makes that tmpfs read-only (on a pure cgroup2 machine the private cgroup is bound
  straight onto /sys/fs/cgroup). The unshare process was moved into those private cgroups before
  it made the cgroup namespace, so systemd sees them as the roots of the hierarchies;
- writes a random /etc/machine-id, sets the hostname, brings `lo` up, binds the harness's share/
  directory read-only at SHARE_MOUNT, and masks the units that touch the kernel, devices or the
  clock; systemd starts throwaway-host.target (sysinit.target + sockets.target: journald, D-Bus).

Without the tmpfs of its own on /sys/fs/cgroup systemd damages the real host: it creates
controller directories in the host's cgroup tmpfs and remounts it read-only for the whole machine.
Nothing here creates, removes or remounts anything in the host's /sys/fs/cgroup but the private
cgroups, which are children of the caller's own cgroup in each hierarchy (so the caller's limits
keep applying):

    <caller's cgroup>/<name>/host     the host's cgroup-namespace root (systemd and its units)
    <caller's cgroup>/<name>/outside  the unshare process and every command run() starts

Commands reach the host through `nsenter -t <PID 1> -a` with a clean environment. stop() powers
the host off, SIGKILLs its PID 1 and the unshare process by PID after a bounded wait, kills any
PID left in the private cgroups, removes them depth-first and deletes the base directory.
host_snapshot() is what must be the same on the real host before and after.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import tty
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .cgroupfs import CGROUP_ROOT, cgroup_mounts, mounts

SYSTEMD = "/lib/systemd/systemd"
# An interpreter a host's services can run: from the root the host shares (its /tmp is its own, so a
# checkout's venv under /tmp is not there), Debian's own.
HOST_PYTHON = "/usr/bin/python3"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Where the harness's share/ directory appears, read-only, inside every host.
SHARE_MOUNT = "/mnt/host-share"
TARGET = "throwaway-host.target"
_TOOLS = ("unshare", "nsenter", "setpriv", "ip", "mount", "pivot_root", "hostname")
# Units that touch the kernel, devices, the clock or a console, or that fail in a container without
# real devices: masked (a symlink to /dev/null in the host's /etc/systemd/system).
MASKED = (
    "systemd-sysctl.service",
    "systemd-udevd.service",
    "systemd-udevd-control.socket",
    "systemd-udevd-kernel.socket",
    "systemd-udev-trigger.service",
    "systemd-udev-settle.service",
    "systemd-modules-load.service",
    "kmod-static-nodes.service",
    "systemd-timesyncd.service",
    "systemd-binfmt.service",
    "proc-sys-fs-binfmt_misc.automount",
    "proc-sys-fs-binfmt_misc.mount",
    "sys-kernel-config.mount",
    "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount",
    "sys-fs-fuse-connections.mount",
    "dev-hugepages.mount",
    "dev-mqueue.mount",
    "systemd-remount-fs.service",
    "getty.target",
    "getty@tty1.service",
    "console-getty.service",
    "systemd-firstboot.service",
    "systemd-hwdb-update.service",
    "ldconfig.service",
    "systemd-pstore.service",
    "systemd-journald-audit.socket",
)
_TARGET_UNIT = """[Unit]
Description=Throwaway host (devtools/throwaway.py)
Requires=sysinit.target sockets.target
After=sysinit.target sockets.target
AllowIsolate=yes
"""
# Log lines worth quoting when a boot fails, and what every boot here says (harmless: systemd wants
# cpu,cpuacct and net_cls,net_prio joined, and cannot make them in the read-only /sys/fs/cgroup tmpfs;
# there are no kernel modules to load)
_NOTABLE = re.compile(r"(?i)fail|error|not found|falling back|refus|denied|freez")
_NOISE = re.compile(r"Failed to create symlink /sys/fs/cgroup/|Failed to find module 'autofs4'")
_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


class HostError(RuntimeError):
    pass


@dataclass(frozen=True)
class Hierarchy:
    """A real cgroup hierarchy: where it is mounted and the caller's own cgroup in it."""

    mount_point: Path
    fstype: str
    own: Path


def hierarchies() -> list[Hierarchy]:
    """The cgroup and cgroup2 mounts at or under /sys/fs/cgroup (never a plain directory there)."""
    own: dict[frozenset[str], str] = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            own[frozenset(controllers.split(",")) if controllers else frozenset()] = path
    found = []
    for m in cgroup_mounts():
        path = own.get(m.controllers, "/")
        # the caller's cgroup relative to what is mounted there (the mount's root, "/" unless the
        # caller is itself in a cgroup namespace or a bind of a subtree)
        rel = os.path.relpath(path, m.root) if (path + "/").startswith(m.root.rstrip("/") + "/") else "."
        found.append(Hierarchy(m.mount_point, m.fstype, Path(os.path.normpath(m.mount_point / rel))))
    return found


def throwaway_supported() -> str | None:
    """None when a ThrowawayHost can run here, else why not."""
    if os.geteuid() != 0:
        return "needs root (namespaces, overlayfs, cgroups)"
    for tool in _TOOLS:
        if shutil.which(tool, path=DEFAULT_PATH) is None:
            return f"{tool} is not installed"
    if not os.path.exists(SYSTEMD):
        return f"{SYSTEMD} is missing (apt-get install systemd)"
    with open("/proc/filesystems") as f:
        if not any(line.split()[-1:] == ["overlay"] for line in f):
            return "the kernel has no overlay filesystem (modprobe overlay)"
    if not hierarchies():
        return f"no cgroup hierarchy is mounted under {CGROUP_ROOT}"
    return None


@dataclass(frozen=True)
class HostSnapshot:
    """What a ThrowawayHost must leave as it found on the real host."""

    # mount point, fstype, mount options, superblock options (not IDs, which are not reused)
    mounts: tuple[tuple[str, str, str, str], ...]
    # /sys/fs/cgroup and each hierarchy's top directory -> its entries
    cgroup_entries: tuple[tuple[str, tuple[str, ...]], ...]
    # /proc/cgroups: subsystem, hierarchy, enabled (not num_cgroups: other processes change it)
    cgroup_table: tuple[tuple[str, int, int], ...]


def host_snapshot() -> HostSnapshot:
    table = tuple(sorted((m.mount_point, m.fstype, m.options, m.super_options) for m in mounts()))
    dirs = [CGROUP_ROOT, *(h.mount_point for h in hierarchies() if h.mount_point != CGROUP_ROOT)]
    entries = tuple((str(d), tuple(sorted(os.listdir(d)))) for d in dirs)
    rows = []
    with open("/proc/cgroups") as f:
        for line in f:
            if not line.startswith("#"):
                name, hierarchy, _num, enabled = line.split()
                rows.append((name, int(hierarchy), int(enabled)))
    return HostSnapshot(table, entries, tuple(sorted(rows)))


def _q(value: object) -> str:
    return shlex.quote(str(value))


class ThrowawayHost:
    def __init__(self, name: str | None = None, masked: Sequence[str] = MASKED, target: str = TARGET) -> None:
        self.name = name or f"ae-host-{uuid.uuid4().hex[:8]}"
        if not _NAME.fullmatch(self.name):
            raise HostError(f"{self.name!r} is not a usable host name (lowercase letters, digits, -; at most 63)")
        self.base = Path(tempfile.mkdtemp(prefix=f"{self.name}-", dir="/tmp"))
        self.masked = tuple(masked)
        self.target = target
        self.share = self.base / "share"
        self.share.mkdir()
        self.share.chmod(0o755)
        self.log_path = self.base / "host.log"
        self.hierarchies = hierarchies()
        self.cgroups = [h.own / self.name for h in self.hierarchies]
        self._made: list[Path] = []
        self.unified = any(h.mount_point == CGROUP_ROOT for h in self.hierarchies)
        self.proc: subprocess.Popen[bytes] | None = None
        self._pid1: int | None = None
        self.console_proc: subprocess.Popen[bytes] | None = None
        self._console: int | None = None
        self.boot_seconds: float | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        """The host's PID 1, as seen from outside."""
        if self._pid1 is None:
            raise HostError(f"host {self.name} is not running")
        return self._pid1

    def start(self, timeout: float = 60) -> ThrowawayHost:
        why = throwaway_supported()
        if why:
            raise HostError(f"cannot boot a throwaway host: {why}")
        if self.proc is not None:
            raise HostError(f"host {self.name} was already started")
        try:
            return self._start(timeout)
        except BaseException:
            self.stop()  # never leave a half-booted host, cgroups or mounts behind
            raise

    def _start(self, timeout: float) -> ThrowawayHost:
        began = time.monotonic()
        for cg in self.cgroups:
            try:
                cg.mkdir()
            except FileExistsError:
                raise HostError(f"{cg} exists: another host is called {self.name}") from None
            self._made.append(cg)  # stop() empties and removes only these
            _init_cpuset(cg)
            if (cg / "cgroup.subtree_control").exists():
                self._delegate_controllers(cg)
            _make_cgroup(cg / "host")
            _make_cgroup(cg / "outside")
        console = self._start_console()
        boot = self.base / "boot.sh"
        boot.write_text(self._boot_script(console))
        join = "".join(f"echo $$ > {_q(cg / 'host' / 'cgroup.procs')}\n" for cg in self.cgroups)
        script = (
            "set -e\n" + join +
            "exec unshare --pid --fork --kill-child --mount --propagation private --uts --ipc --net --cgroup "
            f"sh {_q(boot)}\n"
        )
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                ["sh", "-c", script], env={"PATH": DEFAULT_PATH, "LC_ALL": "C"},
                # a session of its own: Ctrl-C in a terminal reaches the caller, which stops the host
                stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = began + timeout
        pid1 = self._wait_for_child(deadline)
        # unshare leaves the host's cgroups (systemd's roots hold only what it starts); the boot
        # script waits for this line (or end of file) before it does anything
        self._join_outside(self.proc.pid)
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(b"go\n")
            self.proc.stdin.close()
        except BrokenPipeError:  # the boot script already failed: the loop below reports it
            pass
        self._pid1 = pid1
        state = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HostError(f"host {self.name} exited {self.proc.returncode} while booting:\n{self.log_tail()}")
            if _comm(pid1) == "systemd":
                done = self._run(["systemctl", "is-system-running"], timeout=10)
                state = done.stdout.decode(errors="replace").strip()
                if not state:  # not answering yet: say why, should it never answer
                    state = done.stderr.decode(errors="replace").strip()
                if state in ("running", "degraded"):
                    self.boot_seconds = time.monotonic() - began
                    return self
                # ("offline" is also what systemctl says before the manager's socket is up: wait on)
                if state in ("maintenance", "stopping"):
                    break
            time.sleep(0.05)
        failed = ""
        if _comm(pid1) == "systemd":
            failed = self._run(["systemctl", "--no-pager", "--failed", "--no-legend"], timeout=10).stdout.decode(
                errors="replace")
        waited = time.monotonic() - began
        raise HostError(f"host {self.name} did not come up (state {state!r} after {waited:.1f}s of {timeout}s; "
                        f"failed units: {failed.strip() or 'none'}):\n{self.log_tail()}")

    def _start_console(self) -> str:
        """A pty for the host's /dev/console, its output copied to the log by `cat`; returns its path.

        The harness keeps the terminal end open until stop(): closing it ends the copy once all is in."""
        master, slave = os.openpty()
        try:
            tty.setraw(slave)  # no \r\n for \n, no echo
            with open(self.log_path, "ab") as log:
                self.console_proc = subprocess.Popen(["cat"], stdin=master, stdout=log, stderr=subprocess.DEVNULL,
                                                     start_new_session=True, env={"PATH": DEFAULT_PATH})
        except BaseException:
            os.close(slave)
            raise
        finally:
            os.close(master)
        self._console = slave
        self._join_outside(self.console_proc.pid)
        return os.ttyname(slave)

    def _delegate_controllers(self, cg: Path) -> None:
        """Pure cgroup2: enable in <name>/ the controllers it has, so host/ (systemd's root) gets them."""
        available = (cg / "cgroup.controllers").read_text().split()
        for controller in available:
            try:
                (cg / "cgroup.subtree_control").write_text(f"+{controller}\n")
            except OSError:
                pass

    def _wait_for_child(self, deadline: float) -> int:
        assert self.proc is not None
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HostError(f"unshare exited {self.proc.returncode}:\n{self.log_tail()}")
            try:
                pids = children.read_text().split()
            except OSError:
                pids = []
            # the `sh -c` execs unshare, which forks the host's PID 1 (its only child)
            if pids and _comm(self.proc.pid) == "unshare":
                return int(pids[0])
            time.sleep(0.005)
        raise HostError(f"unshare did not fork the host's PID 1:\n{self.log_tail()}")

    def _join_outside(self, pid: int) -> None:
        for cg in self.cgroups:
            (cg / "outside" / "cgroup.procs").write_text(f"{pid}\n")

    def _boot_script(self, console: str) -> str:
        r = self.base / "root" / "merged"
        layers = self.base / "root"
        lines = [
            "set -eu",
            # wait until the harness has moved the unshare process out of the host's cgroups
            "read -r _ || true",
            f"mkdir -p {_q(layers)}",
            f"mount -t tmpfs -o mode=0755 throwaway-layers {_q(layers)}",
            f"mkdir {_q(layers / 'upper')} {_q(layers / 'work')} {_q(r)}",
            f"mount -t overlay -o lowerdir=/,upperdir={_q(layers / 'upper')},workdir={_q(layers / 'work')} "
            f"throwaway-root {_q(r)}",
            # proc of the new PID namespace; the kernel's knobs read-only
            f"mount -t proc -o nosuid,nodev,noexec proc {_q(r / 'proc')}",
            "for p in sys sysrq-trigger irq bus fs; do",
            f"  if [ -e {_q(r / 'proc')}/$p ]; then",
            f"    mount --bind {_q(r / 'proc')}/$p {_q(r / 'proc')}/$p",
            f"    mount -o remount,bind,ro {_q(r / 'proc')}/$p",
            "  fi",
            "done",
            # sysfs of the new network namespace, read-only
            f"mount -t sysfs -o ro,nosuid,nodev,noexec sysfs {_q(r / 'sys')}",
            *self._cgroup_lines(r),
            # /dev: the harmless nodes, a devpts instance of its own, shm
            f"mount -t tmpfs -o mode=0755,nosuid,size=4m throwaway-dev {_q(r / 'dev')}",
            "for n in null zero full random urandom tty; do",
            f"  touch {_q(r / 'dev')}/$n",
            f"  mount --bind /dev/$n {_q(r / 'dev')}/$n",
            "done",
            # PID 1 logs to /dev/console only, and only if it is a terminal: a pty the harness copies
            # into the log
            f"touch {_q(r / 'dev/console')}",
            f"mount --bind {_q(console)} {_q(r / 'dev/console')}",
            f"mkdir {_q(r / 'dev/pts')} {_q(r / 'dev/shm')}",
            f"mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5,nosuid,noexec devpts {_q(r / 'dev/pts')}",
            f"ln -s pts/ptmx {_q(r / 'dev/ptmx')}",
            f"mount -t tmpfs -o mode=1777,nosuid,nodev throwaway-shm {_q(r / 'dev/shm')}",
            f"ln -s /proc/self/fd {_q(r / 'dev/fd')}",
            f"ln -s /proc/self/fd/0 {_q(r / 'dev/stdin')}",
            f"ln -s /proc/self/fd/1 {_q(r / 'dev/stdout')}",
            f"ln -s /proc/self/fd/2 {_q(r / 'dev/stderr')}",
            f"mount -t tmpfs -o mode=0755,nosuid,nodev throwaway-run {_q(r / 'run')}",
            f"mount -t tmpfs -o mode=1777,nosuid,nodev throwaway-tmp {_q(r / 'tmp')}",
            # the share, read-only
            f"mkdir -p {_q(str(r) + SHARE_MOUNT)}",
            f"mount --bind {_q(self.share)} {_q(str(r) + SHARE_MOUNT)}",
            f"mount -o remount,bind,ro {_q(str(r) + SHARE_MOUNT)}",
            # identity
            f"printf '%s\\n' {uuid.uuid4().hex} > {_q(r / 'etc/machine-id')}",
            f"printf '%s\\n' {_q(self.name)} > {_q(r / 'etc/hostname')}",
            f"hostname {_q(self.name)}",
            "ip link set lo up",
            # units
            f"mkdir -p {_q(r / 'etc/systemd/system')}",
            f"cat > {_q(r / 'etc/systemd/system' / TARGET)} <<'EOF'\n{_TARGET_UNIT}EOF",
            *(f"ln -sfn /dev/null {_q(r / 'etc/systemd/system' / u)}" for u in self.masked),
            # into the new root; the old one is detached
            f"cd {_q(r)}",
            "mkdir .throwaway-old-root",
            "pivot_root . .throwaway-old-root",
            "cd /",
            "umount -l /.throwaway-old-root",
            "rmdir /.throwaway-old-root",
            f"exec env -i container=throwaway PATH={DEFAULT_PATH} LC_ALL=C SYSTEMD_LOG_TARGET=console "
            f"SYSTEMD_LOG_COLOR=0 {SYSTEMD} --system --unit={_q(self.target)} </dev/null",
        ]
        return "\n".join(lines) + "\n"

    def _cgroup_lines(self, r: Path) -> list[str]:
        target = r / "sys/fs/cgroup"
        if self.unified:  # pure cgroup2: the private cgroup is the whole of /sys/fs/cgroup
            cg = next(c for c, h in zip(self.cgroups, self.hierarchies, strict=True) if h.mount_point == CGROUP_ROOT)
            return [f"mount --bind {_q(cg / 'host')} {_q(target)}"]
        lines = [f"mount -t tmpfs -o mode=0755,nosuid,nodev,noexec throwaway-cgroup {_q(target)}"]
        for h, cg in zip(self.hierarchies, self.cgroups, strict=True):
            inside = target / h.mount_point.relative_to(CGROUP_ROOT)
            lines += [f"mkdir -p {_q(inside)}", f"mount --bind {_q(cg / 'host')} {_q(inside)}"]
        # the host's symlinks between hierarchies (cpu -> cpu,cpuacct and the like)
        for entry in sorted(CGROUP_ROOT.iterdir()):
            if entry.is_symlink():
                lines.append(f"ln -s {_q(os.readlink(entry))} {_q(target / entry.name)}")
        lines.append(f"mount -o remount,ro {_q(target)}")
        return lines

    # -- commands inside -------------------------------------------------------------------------

    def command(self, argv: Sequence[str], user: str | None = None, env: Mapping[str, str] | None = None) -> list[str]:
        """The argv that runs argv inside the host (all its namespaces), as root or as user."""
        extra = [f"{k}={v}" for k, v in (env or {}).items()]
        inner = ["env", "-i", f"PATH={DEFAULT_PATH}", "LC_ALL=C", *extra, *argv]
        if user is not None:
            # setpriv --reset-env leaves HOME, USER, LOGNAME and SHELL (from the user's entry) only
            inner.remove("-i")
            # the user's uid, primary group and supplementary groups, from the host's own databases
            inner = ["sh", "-c", 'u=$1; shift; exec setpriv --reuid="$u" --regid="$(id -g -- "$u")" --init-groups '
                     '--reset-env "$@"', "sh", user, *inner]
        join = "".join(f"echo $$ > {_q(cg / 'outside' / 'cgroup.procs')}\n" for cg in self.cgroups)
        # in the private cgroups first, so stop() kills whatever a command leaves behind
        return ["sh", "-c", join + 'exec "$@"', "sh", "nsenter", "-t", str(self.pid), "-a", "--", *inner]

    def _run(self, argv: Sequence[str], timeout: float = 60, input: bytes | None = None,
             user: str | None = None, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(self.command(argv, user, env), capture_output=True, timeout=timeout, check=False,
                              input=input, env={"PATH": DEFAULT_PATH, "LC_ALL": "C"})

    def run(self, argv: Sequence[str], check: bool = True, timeout: float = 60, input: str | bytes | None = None,
            user: str | None = None, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        data = input.encode() if isinstance(input, str) else input
        raw = self._run(argv, timeout, data, user, env)
        done = subprocess.CompletedProcess(list(argv), raw.returncode, raw.stdout.decode(errors="replace"),
                                           raw.stderr.decode(errors="replace"))
        if check and done.returncode != 0:
            who = f" (as {user})" if user else ""
            raise HostError(f"{shlex.join(argv)}{who} in host {self.name} exited {done.returncode}: "
                            f"{done.stderr.strip() or done.stdout.strip()}")
        return done

    def systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(["systemctl", "--no-pager", *args], check=check)

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.systemctl("show", "--property=" + ",".join(props), "--", unit).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def write_file(self, path: str, data: bytes | str, mode: int = 0o644) -> None:
        """Write a file inside the host (its parent directories are made)."""
        raw = data.encode() if isinstance(data, str) else data
        script = 'mkdir -p -- "$(dirname -- "$1")" && cat > "$1" && chmod "$2" "$1"'
        done = self._run(["sh", "-c", script, "sh", path, f"{mode:o}"], timeout=30, input=raw)
        if done.returncode != 0:
            raise HostError(f"writing {path} in host {self.name} failed: {done.stderr.decode(errors='replace')}")

    def read_file(self, path: str) -> bytes:
        done = self._run(["cat", "--", path], timeout=30)
        if done.returncode != 0:
            raise HostError(f"reading {path} in host {self.name} failed: {done.stderr.decode(errors='replace')}")
        return done.stdout

    def log(self) -> str:
        """What PID 1 wrote to its console (and the boot script's errors), while the base dir exists."""
        if not self.log_path.exists():
            return ""
        # systemd writes \r\n to a terminal, which the pty's output processing makes \r\r\n
        return self.log_path.read_bytes().decode(errors="replace").replace("\r", "")

    def log_tail(self, lines: int = 30) -> str:
        """The log's lines that say something failed, then its last lines: for error messages."""
        text = self.log().splitlines()
        failed = [line for line in text[:-lines] if _NOTABLE.search(line) and not _NOISE.search(line)]
        head = ["[failures earlier in the log:]", *failed[-15:], "[last lines:]"] if failed else []
        return "\n".join([*head, *text[-lines:]])

    def pids(self) -> set[int]:
        """Every process in the host's private cgroups: the unshare process, PID 1, its units, commands."""
        pids: set[int] = set()
        for cg in self._made:
            for procs in cg.rglob("cgroup.procs") if cg.exists() else []:
                try:
                    pids.update(int(p) for p in procs.read_text().split())
                except OSError:
                    pass
        return pids

    # -- teardown --------------------------------------------------------------------------------

    def stop(self, timeout: float = 10) -> None:
        """Power off, then kill by PID what is left and remove the cgroups and the base directory.

        Idempotent, and safe after a failed or partial start()."""
        proc, self.proc = self.proc, None
        pid1, self._pid1 = self._pid1, None
        if proc is not None:
            if pid1 is not None and proc.poll() is None and _comm(pid1) == "systemd":
                try:
                    subprocess.run(["nsenter", "-t", str(pid1), "-a", "--", "systemctl", "poweroff", "--no-block"],
                                   capture_output=True, timeout=timeout, check=False,
                                   env={"PATH": DEFAULT_PATH, "LC_ALL": "C"})
                except subprocess.TimeoutExpired:
                    pass
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    pass
            for pid in (pid1, proc.pid):
                if pid is not None and proc.poll() is None:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
            if proc.stdin is not None:
                proc.stdin.close()
        console, self._console = self._console, None
        if console is not None:
            os.close(console)  # the copy ends when it has read what the host wrote
        copier, self.console_proc = self.console_proc, None
        if copier is not None:
            try:
                copier.wait(timeout=2)
            except subprocess.TimeoutExpired:
                copier.kill()
                copier.wait(timeout=timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            left = self.pids()
            if not left:
                break
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
        for cg in self._made:
            self._remove_cgroup(cg, deadline)
        self._made = [cg for cg in self._made if cg.exists()]
        shutil.rmtree(self.base, ignore_errors=True)

    @staticmethod
    def _remove_cgroup(cg: Path, deadline: float) -> None:
        while cg.exists():
            dirs = sorted((p for p in cg.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
            for d in [*dirs, cg]:
                try:
                    d.rmdir()
                except OSError:
                    pass
            if not cg.exists() or time.monotonic() > deadline:
                break
            time.sleep(0.05)  # a killed process leaves its cgroup a moment after it is reaped

    def __enter__(self) -> ThrowawayHost:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _make_cgroup(path: Path) -> None:
    path.mkdir()
    _init_cpuset(path)


def _init_cpuset(path: Path) -> None:
    # a v1 cpuset starts with no CPUs and no memory nodes, and refuses processes until given some
    for knob in ("cpuset.cpus", "cpuset.mems"):
        if (path / knob).exists() and not (path / knob).read_text().strip():
            (path / knob).write_text((path.parent / knob).read_text())


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""
