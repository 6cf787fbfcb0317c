"""`make demo`: 16 demo agents under a real systemd user manager, the writer, the status table.

As root on a machine whose PID 1 is not systemd it starts a private manager (devtools.sandbox);
as an ordinary user on a systemd host it uses your own user manager with demo units that it
removes afterwards. Everything it starts is stopped, and its temporary directory removed, on exit.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from .fleet import DEMO_FLEET, config_yaml, install_fleet
from .sandbox import HostUserManager, Manager, ManagerError, SandboxManager, host_manager_available, sandbox_supported

EXE = str(Path(sys.executable).with_name("agent-exporter"))


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
        raise ManagerError(f"agent-exporter {args[0]} failed: {done.stderr.strip()}")
    if done.stderr.strip():
        print(done.stderr.strip())
    return done.stdout


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="agent-exporter-demo-"))
    textfile_dir = work / "textfile"
    textfile_dir.mkdir()
    config = work / "config.yml"
    config.write_text(config_yaml(str(textfile_dir)))
    common = ["--config", str(config), "--state-dir", str(work / "state")]
    manager: Manager | None = None
    try:
        manager = pick_manager()
        print(f"installing {len(DEMO_FLEET)} demo agents (13 primary, 3 support; 2 stopped, 1 failing, "
              "1 crash-looping)")
        install_fleet(manager)
        time.sleep(2.5)  # let the agents start and the crash-looping one restart once or twice
        print(f"\n$ agent-exporter check --config {config}")
        print(agent_exporter(manager, "check", "--config", str(config)), end="")
        print("\n$ agent-exporter write -v ...   (first run: no CPU % yet, nothing to compare with)")
        agent_exporter(manager, "write", "-v", *common)
        time.sleep(2)
        print("$ agent-exporter write -v ...   (second run: CPU % since the first)")
        agent_exporter(manager, "write", "-v", *common)
        print("\n$ agent-exporter status")
        print(agent_exporter(manager, "status", *common), end="")
        target = textfile_dir / "agents.prom"
        text = target.read_text()
        print(f"\nwritten: {target} ({len(text)} bytes, {sum(1 for x in text.splitlines() if x[:1] != '#')} samples)")
        for line in text.splitlines():
            if line.startswith(("agent_up{", "agents_", "agent_cpu_percent{agent=\"agent-codegen\"")):
                print("  " + line)
        return 0
    except ManagerError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    finally:
        if manager is not None:
            manager.stop()
        shutil.rmtree(work, ignore_errors=True)
        print("\ncleaned up: demo agents and manager stopped, temporary files removed")


if __name__ == "__main__":
    sys.exit(main())
