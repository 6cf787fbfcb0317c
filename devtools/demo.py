"""`make demo`: 16 demo agents under a real systemd user manager, watched by the installed timer.

It runs `agent-exporter install --user --now` with a 2-second interval in that manager: the timer
runs the hardened writer, the socket starts the server on a free loopback port on the first
request. It shows the writes coming, the status table and the server's /metrics, then runs
`agent-exporter uninstall` and stops everything it started.

As root on a machine whose PID 1 is not systemd it starts a private manager (devtools.sandbox);
as an ordinary user on a systemd host it uses your own user manager, with demo units that it
removes afterwards (and it leaves alone an agent-exporter you installed yourself).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from textfile_writer.install import MANIFEST

from .fleet import DEMO_FLEET, config_yaml, install_fleet
from .sandbox import HostUserManager, Manager, ManagerError, SandboxManager, host_manager_available, sandbox_supported

EXE = str(Path(sys.executable).with_name("agent-exporter"))
INTERVAL = 2


def pick_manager() -> Manager:
    if host_manager_available():
        print("using your own systemd user manager (demo units are removed afterwards)")
        return HostUserManager().start()
    why = sandbox_supported()
    if why:
        raise ManagerError(f"no user manager of yours is running and a private one {why}; run as root "
                           "on a machine without systemd as PID 1, or as a user on a systemd host")
    print("starting a private systemd user manager (unshare + systemd --user)")
    return SandboxManager().start()


def agent_exporter(manager: Manager, *args: str) -> str:
    done = manager.run([EXE, *args], check=False)
    if done.returncode != 0:
        raise ManagerError(f"agent-exporter {args[0]} failed: {(done.stderr or done.stdout).strip()}")
    if done.stderr.strip():
        print(done.stderr.strip())
    return done.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def last_success(path: Path) -> float | None:
    try:
        found = re.search(r"^agent_exporter_last_success_timestamp_seconds (\S+)$", path.read_text(), re.M)
    except FileNotFoundError:
        return None
    return float(found.group(1)) if found else None


def wait_for_writes(path: Path, count: int, timeout: float) -> None:
    seen: list[float] = []
    deadline = time.monotonic() + timeout
    while len(seen) < count:
        if time.monotonic() > deadline:
            raise ManagerError(f"the timer wrote {path} {len(seen)} times in {timeout:g}s, expected {count}")
        stamp = last_success(path)
        if stamp is not None and (not seen or stamp != seen[-1]):
            seen.append(stamp)
            print(f"  {time.strftime('%H:%M:%S')}  {path.name} rewritten by the timer "
                  f"(agent_exporter_last_success_timestamp_seconds {stamp:.3f})")
        time.sleep(0.05)


def state_dir(manager: Manager) -> str:
    """Where the installed writer keeps its CPU counters (its StateDirectory=), as install recorded it."""
    return str(json.loads((manager.unit_dir / MANIFEST).read_text())["state_dir"])


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="agent-exporter-demo-"))
    work.chmod(0o755)
    textfile_dir = work / "textfile"
    config = work / "config.yml"
    config.write_text(config_yaml(str(textfile_dir), interval=INTERVAL))
    manager: Manager | None = None
    installed = False
    try:
        manager = pick_manager()
        if (manager.unit_dir / MANIFEST).exists():
            raise ManagerError(f"agent-exporter is already installed in {manager.unit_dir}; the demo leaves it alone")
        print(f"installing {len(DEMO_FLEET)} demo agents (13 primary, 3 support; 2 stopped, 1 failing, "
              "1 crash-looping)")
        install_fleet(manager)
        port = free_port()
        install = ["install", "--user", "--now", "--config", str(config),  # its interval_seconds: 2
                   "--web.listen-address", f"127.0.0.1:{port}"]
        print(f"\n$ agent-exporter {' '.join(install)}")
        installed = True
        print(agent_exporter(manager, *install), end="")
        print(f"\nwaiting for the timer (every {INTERVAL}s):")
        wait_for_writes(textfile_dir / "agents.prom", 3, timeout=10 * INTERVAL + 10)
        print("\n$ systemctl --user list-timers agent-exporter.timer")
        print(manager.systemctl("list-timers", "--no-pager", "agent-exporter.timer", check=False).stdout.rstrip())
        print("\n$ agent-exporter status   (CPU % since the timer's previous run)")
        print(agent_exporter(manager, "status", "--config", str(config), "--state-dir", state_dir(manager)), end="")
        url = f"http://127.0.0.1:{port}/metrics"
        print(f"\nthe server (socket-activated, started by this request): {url}")
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = resp.read().decode()
        for line in body.splitlines():
            if line.startswith(("agents_", "agent_exporter_textfile_age_seconds",
                                'agent_up{agent="agent-codegen"', 'agent_cpu_percent{agent="agent-codegen"')):
                print("  " + line)
        if sys.stdin.isatty():
            input(f"\n{url} is live; press Enter to uninstall and clean up ")
        return 0
    except (ManagerError, OSError) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    finally:
        if manager is not None:
            if installed:
                done = manager.run([EXE, "uninstall", "--user"], check=False)
                print("\n$ agent-exporter uninstall --user\n" + done.stdout.rstrip()
                      + (f"\n{done.stderr.strip()}" if done.stderr.strip() else ""))
            manager.stop()
        shutil.rmtree(work, ignore_errors=True)
        print("\ncleaned up: units uninstalled, demo agents and manager stopped, temporary files removed")


if __name__ == "__main__":
    sys.exit(main())
