"""A real systemd user manager for the tests, the demo and the benchmarks.

Two kinds, one interface:
- SandboxManager: as root on a machine whose PID 1 is not systemd (containers, CI). `systemd --user`
  runs inside `unshare -m` with a tmpfs on /run/systemd (so it believes systemd is the init system),
  a private 0700 XDG_RUNTIME_DIR and XDG_CONFIG_HOME, in a cgroup subtree of its own (so two
  sandboxes, or a sandbox and the host, never share cgroups). Commands reach it through
  `nsenter -t <pid> -m` with the same environment.
- HostUserManager: an ordinary user's own manager on a systemd host (`systemctl --user`).

stop() ends every unit process and the manager, by PID, and removes what start() made.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from .cgroupfs import CGROUP_ROOT, Mount, cgroup_mounts

# v1 hierarchies the sandbox joins so systemd can account memory and tasks per unit; cgroup2
# ("unified", or the root on a pure cgroup2 host) and the named systemd hierarchy hold the units.
_V1_JOINED = frozenset({"memory", "pids", "cpu", "cpuacct", "name=systemd"})
_SYSTEMD = "/lib/systemd/systemd"


class ManagerError(RuntimeError):
    pass


def host_runtime_script(runtime_dir: Path, uid: int | None = None) -> str:
    """Shell, run as root in the sandbox's mount namespace, giving /run what a systemd host has there.

    PID 1 creates /run/systemd/inaccessible/ (empty nodes that ProtectKernelLogs=, PrivateDevices=
    and friends mount over what they hide) and /run/systemd/unit-root (where a unit's mount
    namespace is put together); an unprivileged user's units look for their manager's own
    inaccessible nodes under /run/user/UID. The sandbox's fresh tmpfs on /run/systemd and its
    XDG_RUNTIME_DIR elsewhere lack these, and units with those sandboxing directives would fail
    with 226/NAMESPACE where a real host runs them. Idempotent.
    """
    nodes = "/run/systemd/inaccessible"
    sock = f"import socket; socket.socket(socket.AF_UNIX).bind('{nodes}/sock')"
    script = (
        f"mkdir -p -m 0700 /run/systemd/unit-root\n"
        f"mkdir -p -m 0755 {nodes}\n"
        f"[ -e {nodes}/dir ] || mkdir -m 0000 {nodes}/dir\n"
        f"[ -e {nodes}/reg ] || install -m 0000 /dev/null {nodes}/reg\n"
        f"[ -e {nodes}/fifo ] || mkfifo -m 0000 {nodes}/fifo\n"
        f"[ -e {nodes}/sock ] || {{ {sys.executable} -c \"{sock}\" && chmod 0000 {nodes}/sock; }}\n"
        f"[ -e {nodes}/chr ] || mknod -m 0000 {nodes}/chr c 0 0\n"
        f"[ -e {nodes}/blk ] || mknod -m 0000 {nodes}/blk b 0 0\n"
    )
    if uid is not None and uid != 0:
        script += (
            "mountpoint -q /run/user || mount -t tmpfs -o mode=0755 tmpfs /run/user\n"
            f"if [ ! -e /run/user/{uid} ]; then mkdir -m 0700 /run/user/{uid} && "
            f'mount --bind "{runtime_dir}" /run/user/{uid}; fi\n'
        )
    return script


def cgroup_hierarchies(table: Sequence[Mount] | None = None, root: Path = CGROUP_ROOT,
                       known: Iterable[str] | None = None) -> list[Path]:
    """Where a sandbox makes its cgroups: the mount points of the hierarchies it joins.

    Only mounted hierarchies (devtools.cgroupfs: from the mount table, never a plain directory
    under root); all of cgroup2 on a pure cgroup2 host. The arguments are cgroup_mounts'.
    """
    found = cgroup_mounts(table, root, known)
    if any(m.mount_point == root and m.fstype == "cgroup2" for m in found):
        return [root]
    return [m.mount_point for m in found if m.fstype == "cgroup2" or m.controllers & _V1_JOINED]


def sandbox_supported(extra_tools: Sequence[str] = ()) -> str | None:
    """None when a SandboxManager (and the extra tools its user wants) can run here, else why not."""
    if os.geteuid() != 0:
        return "needs root (mount namespaces, cgroups)"
    for tool in ("unshare", "nsenter", "systemctl", *extra_tools):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not os.path.exists(_SYSTEMD):
        return f"{_SYSTEMD} is missing (apt-get install systemd)"
    return None


def host_manager_available() -> bool:
    """An ordinary user on a systemd host, with a user manager of their own."""
    if os.geteuid() == 0 or not os.path.isdir("/run/systemd/system"):
        return False
    done = subprocess.run(["systemctl", "--user", "is-system-running"], capture_output=True, text=True,
                          check=False, timeout=10)
    return done.stdout.strip() in ("running", "degraded", "starting")


class Manager:
    """What the tests, the demo and the benchmarks need from a user manager."""

    env: dict[str, str]
    unit_dir: Path
    transient_only = False

    def command(self, argv: Sequence[str]) -> list[str]:
        raise NotImplementedError

    def run(self, argv: Sequence[str], check: bool = True, timeout: float = 60,
            env: Mapping[str, str] | None = None, input: str | None = None) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, **self.env, "LC_ALL": "C", "SYSTEMD_PAGER": "", **(env or {})}
        done = subprocess.run(self.command(argv), capture_output=True, text=True, env=full_env,
                              timeout=timeout, check=False, input=input)
        if check and done.returncode != 0:
            raise ManagerError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
        return done

    def systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(["systemctl", "--user", "--no-pager", *args], check=check)

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.systemctl("show", "--property=" + ",".join(props), "--", unit).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def install_unit(self, name: str, text: str, reload: bool = True) -> Path:
        self.unit_dir.mkdir(parents=True, exist_ok=True)
        path = self.unit_dir / name
        path.write_text(text)
        if reload:
            self.systemctl("daemon-reload")
        return path

    def stop(self) -> None:
        raise NotImplementedError


class SandboxManager(Manager):
    def __init__(self, base: Path | None = None) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="agent-exporter-manager-", dir=base))
        self.name = f"agent-exporter-sandbox-{uuid.uuid4().hex[:10]}"
        self.runtime_dir = self.base / "runtime"
        self.config_home = self.base / "config"
        self.unit_dir = self.config_home / "systemd" / "user"
        self.env = {"XDG_RUNTIME_DIR": str(self.runtime_dir), "XDG_CONFIG_HOME": str(self.config_home)}
        self.cgroups = [h / self.name for h in cgroup_hierarchies()]
        self.proc: subprocess.Popen[bytes] | None = None
        # systemd --user binds sockets under $XDG_RUNTIME_DIR/systemd/: an AF_UNIX path has at most 107
        # bytes, and past that the manager exits 1 without a word. pytest's tmp_path can be that deep.
        longest = len(str(self.runtime_dir)) + len("/systemd/inaccessible/sock")
        if longest > 107:
            shutil.rmtree(self.base, ignore_errors=True)
            raise ManagerError(f"{self.runtime_dir} is too long for the manager's sockets ({longest} > 107 "
                               "bytes); use a shorter base directory (the default is in /tmp)")

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise ManagerError("the manager is not running")
        return self.proc.pid

    def start(self, timeout: float = 30) -> SandboxManager:
        why = sandbox_supported()
        if why:
            raise ManagerError(f"cannot start a sandboxed systemd user manager: {why}")
        try:
            return self._start(timeout)
        except BaseException:
            self.stop()  # never leave cgroups or a half-started manager behind
            raise

    def _start(self, timeout: float) -> SandboxManager:
        self.runtime_dir.mkdir(mode=0o700)
        self.unit_dir.mkdir(parents=True)
        for cg in self.cgroups:
            cg.mkdir()
        join = "".join(f'echo $$ > "{cg}/cgroup.procs"\n' for cg in self.cgroups)
        script = (
            "set -e\n" + join +
            "mount -t tmpfs -o mode=0755 tmpfs /run/systemd\n"
            "mkdir -p /run/systemd/system\n"
            + host_runtime_script(self.runtime_dir) +
            f'mount -t tmpfs -o mode=0700 tmpfs "{self.runtime_dir}"\n'
            f"exec {_SYSTEMD} --user\n"
        )
        log = open(self.base / "manager.log", "wb")  # noqa: SIM115 - handed to the child
        try:
            self.proc = subprocess.Popen(
                ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                env={**os.environ, **self.env, "SYSTEMD_LOG_TARGET": "console"},
                # a session of its own: Ctrl-C in a terminal reaches the caller, which stops the
                # manager itself (stop()), not the manager directly (it would begin exiting)
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ManagerError(f"systemd --user exited {self.proc.returncode}: {self.log()[-2000:]}")
            state = self.run(["systemctl", "--user", "is-system-running"], check=False, timeout=10).stdout.strip()
            if state in ("running", "degraded"):
                return self
            time.sleep(0.1)
        raise ManagerError(f"systemd --user did not come up in {timeout}s (state {state!r}): {self.log()[-2000:]}")

    def provide_host_runtime(self, uid: int | None = None) -> None:
        """host_runtime_script for a manager that is already running (one started without it)."""
        done = subprocess.run(["nsenter", "-t", str(self.pid), "-m", "--", "sh", "-ec",
                               host_runtime_script(self.runtime_dir, uid)],
                              capture_output=True, text=True, timeout=30, check=False)
        if done.returncode != 0:
            raise ManagerError(f"preparing /run in the sandbox failed: {done.stderr.strip()}")

    def log(self) -> str:
        path = self.base / "manager.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def command(self, argv: Sequence[str]) -> list[str]:
        return ["nsenter", "-t", str(self.pid), "-m", "--", *argv]

    def unit_pids(self) -> set[int]:
        """Every process in the sandbox's cgroups (the manager and all its units)."""
        pids: set[int] = set()
        for cg in self.cgroups:
            for procs in cg.rglob("cgroup.procs") if cg.exists() else []:
                with contextlib.suppress(OSError):
                    pids.update(int(p) for p in procs.read_text().split())
        return pids

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.run(["systemctl", "--user", "stop", "--no-block", "*"], check=False, timeout=10)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for _ in range(50):
            pids = self.unit_pids()
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        for cg in self.cgroups:
            if cg.exists():
                for d in sorted((p for p in cg.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                    with contextlib.suppress(OSError):
                        d.rmdir()
                with contextlib.suppress(OSError):
                    cg.rmdir()
        shutil.rmtree(self.base, ignore_errors=True)


class HostUserManager(Manager):
    """The calling user's own manager. Units are transient (systemd-run) or files it removes."""

    transient_only = True

    def __init__(self) -> None:
        config_home = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
        self.unit_dir = Path(config_home) / "systemd" / "user"
        self.env = {}
        self.created: list[Path] = []

    def start(self) -> HostUserManager:
        if not host_manager_available():
            raise ManagerError("no user manager of yours is running (systemctl --user)")
        return self

    def command(self, argv: Sequence[str]) -> list[str]:
        return list(argv)

    def install_unit(self, name: str, text: str, reload: bool = True) -> Path:
        path = super().install_unit(name, text, reload)
        self.created.append(path)
        return path

    def stop(self) -> None:
        for path in self.created:
            self.systemctl("stop", path.name, check=False)
            with contextlib.suppress(OSError):
                path.unlink()
            self.systemctl("reset-failed", path.name, check=False)
        if self.created:
            self.systemctl("daemon-reload", check=False)
        self.created.clear()
