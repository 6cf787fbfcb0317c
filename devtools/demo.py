"""`make demo`: the whole stack on loopback, live in the terminal.

- 20 demo agents in a real systemd user manager: the reference's 16 (13 primary, 3 support; two
  stopped, one failed, one crash-looping), and one each that is OOM-killed now and then, started by
  a timer, at its start limit, and probed over HTTP;
- `agent-exporter install --scope user --now` with a 2-second interval: the timer runs the hardened
  writer, the socket starts the server on a free loopback port;
- node_exporter reading the writer's textfile directory;
- Prometheus with the shipped deploy/prometheus/prometheus.yml (targets rewritten to the demo's
  ports, everything scraped and evaluated every 2 s) and the shipped alert rules (`for:` shortened
  to 10 s, so alerts go pending, then firing, while you watch);
- a live view: the URLs to open, `agent-exporter status`, and what Prometheus has (targets up,
  agents running, alerts), redrawn every 2 s in a terminal, printed as successive snapshots when
  stdout is not one.

It runs until Ctrl-C or SIGTERM, or for DEMO_SECONDS seconds of live view when that is set, and
then always cleans up: Prometheus and node_exporter stopped by PID, `agent-exporter uninstall`,
the agents and the manager stopped, the temporary directory removed.

As root on a machine whose PID 1 is not systemd it starts a private manager (devtools.sandbox);
as an ordinary user on a systemd host it uses your own user manager, with demo units that it
removes afterwards (and it leaves alone an agent-exporter you installed yourself).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from types import FrameType
from typing import Any

from textfile_writer.install.manifest import MANIFEST

from .fleet import DEMO_FLEET, config_yaml, install_fleet, with_ports
from .sandbox import HostUserManager, Manager, ManagerError, SandboxManager, host_manager_available, sandbox_supported
from .stack import (
    NODE_EXPORTER,
    PROMETHEUS_BIN,
    NodeExporter,
    Processes,
    PrometheusServer,
    StackError,
    free_port,
    prometheus_config,
    shortened_rules,
)

EXE = str(Path(sys.executable).with_name("agent-exporter"))
INTERVAL = 2  # seconds: the writer's timer, Prometheus's scrapes and rule evaluations, the live view
ALERT_FOR = "10s"  # the shipped rules wait minutes; long enough to see "pending", short enough to see "firing"
JOBS = ("agent-monitoring", "node")
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(BaseException):
    """Raised by the signal handler wherever the demo is. A BaseException, like KeyboardInterrupt:
    helpers that take any Exception for "not yet" (wait_until's predicate, while setting up) must not
    swallow it, or the demo, its signals now ignored, would run on forever."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def ignore_signals() -> None:
    """From here on nothing interrupts the clean-up (its children inherit SIGINT ignored too)."""
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    ignore_signals()  # once: a second Ctrl-C must not cut the clean-up short
    raise Interrupted(signum)


def demo_seconds() -> float | None:
    raw = os.environ.get("DEMO_SECONDS", "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1
    if not value >= 0:  # also NaN
        raise ValueError(f"DEMO_SECONDS must be a number of seconds, not {raw!r}")
    return value


def last_success(path: Path) -> float | None:
    try:
        found = re.search(r"^agent_exporter_last_success_timestamp_seconds (\S+)$", path.read_text(), re.M)
    except FileNotFoundError:
        return None
    return float(found.group(1)) if found else None


def summarize_alerts(alerts: Iterable[dict[str, Any]], state: str) -> str:
    """'AgentDown (agent-a, agent-b), AgentCrashLooping (agent-c)' for the alerts in that state."""
    by_name: dict[str, list[str]] = {}
    for a in alerts:
        if a["state"] == state:
            labels = a["labels"]
            by_name.setdefault(labels["alertname"], []).append(labels.get("agent") or labels.get("instance", ""))
    if not by_name:
        return "none"
    return ", ".join(f"{name} ({', '.join(sorted(who))})" for name, who in sorted(by_name.items()))


class Demo:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.textfile_dir = work / "textfile"
        self.textfile = self.textfile_dir / "agents.prom"
        self.config = work / "config.yml"
        self.procs = Processes(work)  # Prometheus and node_exporter; their logs in work/
        self.manager: Manager | None = None
        self.installed = False
        self.live_started = False
        self.server = ""  # host:port of the socket-activated server
        self.node: NodeExporter | None = None
        self.prom: PrometheusServer | None = None
        self.state_dir = ""

    # -- setting up ------------------------------------------------------------------------------

    def start_manager(self) -> Manager:
        if host_manager_available():
            print("using your own systemd user manager (demo units are removed afterwards)")
            self.manager = HostUserManager()
            return self.manager.start()
        why = sandbox_supported()
        if why:
            raise ManagerError(f"no user manager of yours is running and a private one {why}; run as root "
                               "on a machine without systemd as PID 1, or as a user on a systemd host")
        print("starting a private systemd user manager (unshare + systemd --user)")
        self.manager = SandboxManager(base=self.work)  # assigned before start(): clean-up knows it at once
        return self.manager.start()

    def agent_exporter(self, *args: str) -> str:
        assert self.manager is not None
        done = self.manager.run([EXE, *args], check=False)
        if done.returncode != 0:
            raise ManagerError(f"agent-exporter {args[0]} failed: {(done.stderr or done.stdout).strip()}")
        return done.stdout

    def set_up(self) -> None:
        for program in (PROMETHEUS_BIN, NODE_EXPORTER):
            if shutil.which(program) is None:
                raise StackError(f"{program} is not installed (apt-get install prometheus prometheus-node-exporter)")
        fleet = with_ports(DEMO_FLEET, free_port)
        self.config.write_text(config_yaml(str(self.textfile_dir), fleet, interval=INTERVAL))
        manager = self.start_manager()
        if (manager.unit_dir / MANIFEST).exists():
            raise ManagerError(f"agent-exporter is already installed in {manager.unit_dir}; the demo leaves it alone")
        print(f"installing {len(fleet)} demo agents (17 primary, 3 support; 2 stopped, 1 failing, 1 crash-looping, "
              "1 OOM-killed now and then, 1 started by a timer, 1 at its start limit, 1 probed over HTTP)")
        install_fleet(manager, fleet)

        port = free_port()
        install = ["install", "--scope", "user", "--now", "--config", str(self.config),  # its interval_seconds: 2
                   "--web.listen-address", f"127.0.0.1:{port}"]
        print(f"$ agent-exporter {' '.join(install)}")
        self.installed = True  # from here on, clean-up uninstalls (also what a failed install left)
        print(self.agent_exporter(*install), end="")
        self.server = f"127.0.0.1:{port}"
        self.state_dir = str(json.loads((manager.unit_dir / MANIFEST).read_text())["state_dir"])
        deadline = time.monotonic() + 10 * INTERVAL + 10
        while last_success(self.textfile) is None:
            if time.monotonic() > deadline:
                raise ManagerError(f"the timer did not write {self.textfile} in {10 * INTERVAL + 10}s")
            time.sleep(0.1)
        print(f"the timer wrote {self.textfile}")

        self.node = NodeExporter(self.procs, self.textfile_dir, host_collectors=True).start()
        print(f"node_exporter (pid {self.node.proc.pid if self.node.proc else '?'}) reads {self.textfile_dir} "
              f"on {self.node.address}")
        rules = shortened_rules(self.work, for_=ALERT_FOR, interval=f"{INTERVAL}s")
        config = prometheus_config(self.work, {"agent-monitoring": self.server, "node": self.node.address},
                                   None, rules, interval=f"{INTERVAL}s")
        self.prom = PrometheusServer(self.procs, PROMETHEUS_BIN, config, self.work / "tsdb")
        print(f"Prometheus (pid {self.prom.proc.pid}) with the shipped prometheus.yml and alert rules "
              f"(every {INTERVAL}s, for: {ALERT_FOR}) on {self.prom.address}")
        self.prom.wait_ready()
        self.prom.wait_targets_up({job: 1 for job in JOBS})
        print("Prometheus scrapes both targets")

    # -- the live view ----------------------------------------------------------------------------

    def urls(self) -> list[str]:
        assert self.prom is not None and self.node is not None
        graph = self.prom.page("graph", "g0.expr=agents_running_total&g0.tab=0&g0.range_input=5m")
        return [
            f"  server (landing page)  http://{self.server}/",
            f"  Prometheus graph       {graph}",
            f"  Prometheus alerts      {self.prom.page('alerts')}",
            f"  node_exporter          {self.node.url}",
        ]

    def status_table(self) -> list[str]:
        try:
            out = self.agent_exporter("status", "--config", str(self.config), "--state-dir", self.state_dir)
        except (ManagerError, OSError, subprocess.SubprocessError) as exc:
            return [f"(agent-exporter status failed: {exc})"]
        return out.rstrip("\n").splitlines()

    def prometheus_lines(self) -> list[str]:
        assert self.prom is not None
        try:
            targets = self.prom.targets()
            found = [(job, t["health"], t.get("lastError", "")) for job in JOBS for t in targets.get(job, [])]
            up = sum(1 for _, health, _ in found if health == "up")
            detail = ", ".join(f"{job} {health}" + (f": {err}" if err else "") for job, health, err in found)

            def value(expr: str) -> str:
                result = self.prom.query(expr) if self.prom else []
                return str(int(float(result[0]["value"][1]))) if result else "?"

            running = value('agents_running_total{job="agent-monitoring"}')
            total = value('agents_total{job="agent-monitoring"}')
            alerts = self.prom.alerts()
        except (StackError, OSError, ValueError, KeyError) as exc:
            return [f"Prometheus: not answering ({exc})"]
        return [
            f"Prometheus: targets up {up}/{len(found)} ({detail}); agents running {running}/{total}",
            f"Alerts firing: {summarize_alerts(alerts, 'firing')}",
            f"Alerts pending: {summarize_alerts(alerts, 'pending')}",
        ]

    def timer(self) -> str:
        stamp = last_success(self.textfile)
        if stamp is None:
            return "agents.prom not written yet"
        return f"the timer rewrote agents.prom {max(0.0, time.time() - stamp):.1f}s ago"

    def body(self) -> tuple[list[str], list[str]]:
        """(the status table under a line with the time, the lines after it)."""
        title = f"{time.strftime('%H:%M:%S')}  $ agent-exporter status   (every {INTERVAL}s; {self.timer()})"
        return [title, *self.status_table()], ["", *self.prometheus_lines()]

    def live(self, seconds: float | None) -> None:
        self.live_started = True
        tty = sys.stdout.isatty()
        stop = "Ctrl-C stops the demo and cleans up" + (f"; it stops by itself after {seconds:g}s"
                                                        if seconds is not None else "")
        header = ["agent-exporter demo, everything on 127.0.0.1. Open in a browser:", *self.urls(), stop]
        started = time.monotonic()
        if tty:
            sys.stdout.write("\033[?25l\033[2J")  # hide the cursor, clear the screen
        else:
            print("\n" + "\n".join(header))
        try:
            tick = 0
            while True:
                table, after = self.body()
                if tty:
                    self.redraw(header, table, after)
                else:
                    print(f"\n--- snapshot {tick + 1} ---", *table, *after, sep="\n", flush=True)
                tick += 1
                next_at = started + tick * INTERVAL
                if seconds is not None and next_at > started + seconds:
                    time.sleep(max(0.0, started + seconds - time.monotonic()))
                    return
                time.sleep(max(0.0, next_at - time.monotonic()))
        finally:
            if tty:
                sys.stdout.write("\033[?25h\n")  # the cursor back
                sys.stdout.flush()

    @staticmethod
    def redraw(header: list[str], table: list[str], after: list[str]) -> None:
        """Cursor home, the frame, the rest of the screen cleared: no flicker, no scrolling. The
        header (the URLs) is written whole, wrapped by the terminal when it is narrow; the other
        lines are cut at its width, and the table's rows cut when it is too short."""
        columns, rows = shutil.get_terminal_size()
        width = max(columns - 1, 1)  # never the last column: erasing there would eat the character
        header_rows = sum(max(1, -(-len(line) // columns)) for line in header)
        room = rows - 1 - header_rows - 1 - len(after)
        if len(table) > room:
            keep = max(room - 1, 1)
            table = [*table[:keep], f"... {len(table) - keep} more lines: enlarge the terminal"]
        lines = [f"\033[K{line}" + ("\033[K" if len(line) % columns else "") for line in header]
        lines += [f"{line[:width]}\033[K" for line in ["", *table, *after]]
        sys.stdout.write("\033[H" + "".join(line + "\n" for line in lines) + "\033[J")
        sys.stdout.flush()

    # -- cleaning up ------------------------------------------------------------------------------

    def clean_up(self) -> bool:
        """Stop and remove everything the demo started or made, each step even when one before
        failed. True when all of it went."""
        ok = True
        say("\ncleaning up:")
        try:
            stopped = self.procs.stop_all()
            if stopped:
                say("  stopped " + ", ".join(f"{name.split('-')[0]} (pid {pid})" for pid, name in stopped))
        except Exception as exc:
            say(f"  stopping Prometheus and node_exporter failed: {exc}")
            ok = False
        manager = self.manager
        if manager is not None and self.installed:
            try:
                done = manager.run([EXE, "uninstall", "--scope", "user"], check=False)
                say("  $ agent-exporter uninstall --scope user",
                    *(f"  {line}" for line in (done.stdout + done.stderr).strip().splitlines()))
                ok &= done.returncode == 0
            except Exception as exc:
                say(f"  agent-exporter uninstall failed: {exc}")
                ok = False
        if manager is not None:
            try:
                pid = manager.proc.pid if isinstance(manager, SandboxManager) and manager.proc else None
                manager.stop()
                if isinstance(manager, SandboxManager):
                    left = manager.unit_pids()
                    if left:
                        say(f"  processes left in the manager's cgroups: {sorted(left)}")
                        ok = False
                    say(f"  stopped the demo agents and systemd --user (pid {pid})")
                else:
                    say("  stopped the demo agents and removed their units")
            except Exception as exc:
                say(f"  stopping the user manager failed: {exc}")
                ok = False
        shutil.rmtree(self.work, ignore_errors=True)
        if self.work.exists():
            say(f"  could not remove {self.work}")
            ok = False
        else:
            say(f"  removed {self.work}")
        say("cleaned up: nothing of the demo is left running" if ok else "clean-up was incomplete (above)")
        return ok


def say(*lines: str) -> None:
    """print() that cannot fail: clean-up goes on when stdout is gone (a closed pipe)."""
    try:
        print(*lines, sep="\n", flush=True)
    except OSError:
        pass


def main() -> int:
    try:
        seconds = demo_seconds()
    except ValueError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    for sig in SIGNALS:
        signal.signal(sig, _interrupt)
    status = 1
    # the directory and the Demo that removes it come together: a signal waits until both exist
    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    demo = Demo(Path(tempfile.mkdtemp(prefix="agent-exporter-demo-")))
    try:
        try:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
            demo.work.chmod(0o755)
            print(f"work directory: {demo.work}")
            demo.set_up()
            demo.live(seconds)
            status = 0
        finally:
            ignore_signals()
    except Interrupted as exc:
        say(f"\n{exc}: stopping")
        # Ctrl-C / SIGTERM is how the live view ends; during setting up it is an interruption
        status = 0 if demo.live_started else 128 + exc.signum
    except (ManagerError, StackError, OSError, TimeoutError, subprocess.SubprocessError) as exc:
        print(f"demo: {exc}", file=sys.stderr)
    finally:
        if not demo.clean_up():
            status = status or 1
    return status


if __name__ == "__main__":
    sys.exit(main())
