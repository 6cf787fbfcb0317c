"""A fleet of agents that changes under a seeded random sequence of operations, for the writer's
differential test (tests/integration/test_writer_differential.py).

About 60 agents of every kind the writer meets, in a private user manager (devtools.harness):
installed `sleep infinity` services with and without Restart=always, services that crash-loop
while a flag file exists, oneshots (remaining, done, failed), transient units from systemd-run,
unit files that come and go, an alias that an explicit config entry names, and a symlink that
only the pattern sees. Unit files live in the manager's XDG_DATA_HOME, so `mask` and `enable`
(which write into XDG_CONFIG_HOME) never collide with them.

Every choice comes from the caller's random.Random and from the fleet's own model of its files,
never from what systemd answers, so one seed always gives the same sequence of operations (their
outcome, a kill racing a restart, may differ between runs). Each operation returns the line the
test's log keeps.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from textfile_writer.systemd import parse_show

from .harness import UserManager
from .stack import wait_until

# What a unit looks like to systemd at one moment: equal before and after a writer run means the
# unit did not move while the writer read it.
WATCHED = ("Id", "Names", "LoadState", "ActiveState", "SubState", "NRestarts", "MainPID",
           "ActiveEnterTimestampMonotonic", "InactiveEnterTimestampMonotonic", "InvocationID",
           "ControlGroup")
ACCOUNTING = "CPUAccounting=yes\nMemoryAccounting=yes\nTasksAccounting=yes\n"
PATTERN = "agent-*.service"
# Explicit entries of the config: an alias of agent-s00 (while it is enabled), a unit the pattern
# does not match, and a unit that never exists.
NICK = "nick-s00.service"
WORKER = "worker-explicit.service"
GHOST = "agent-ghost.service"
HIDDEN = "svc-hidden.service"  # found by the pattern only through its symlink LINK
LINK = "agent-link.service"

STEADY = [f"agent-s{i:02d}.service" for i in range(30)]  # even: Restart=always
CRASHERS = [f"agent-c{i:02d}.service" for i in range(6)]
ONESHOTS = [f"agent-o{i:02d}.service" for i in range(6)]
DYNAMIC = [f"agent-d{i:02d}.service" for i in range(8)]
TRANSIENT = [f"agent-t{i:02d}.service" for i in range(6)]
ALIASED = STEADY[:6]  # [Install] Alias=: nick-sNN for the first four, agent-also-sNN (the pattern's) after


def alias_of(unit: str) -> str:
    index = STEADY.index(unit)
    stem = unit.removeprefix("agent-").removesuffix(".service")
    return f"nick-{stem}.service" if index < 4 else f"agent-also-{stem}.service"


def config_text(textfile_dir: Path) -> str:
    return (
        "scope: user\n"
        f"textfile_dir: {textfile_dir}\n"
        "interval_seconds: 10\n"
        "agents:\n"
        f"  - unit: {NICK}\n"
        "    name: nick\n"
        f"  - unit: {WORKER.removesuffix('.service')}\n"
        "    type: support\n"
        "    name: worker\n"
        f"  - unit: {GHOST}\n"
        f'  - pattern: "{PATTERN}"\n'
        "    type: support\n"
    )


@dataclass
class Model:
    """What the fleet's files are now (the operations' own record; systemd is never asked)."""

    dynamic: dict[str, bool] = field(default_factory=dict)  # present unit file -> Restart=always
    masked: set[str] = field(default_factory=set)
    enabled: set[str] = field(default_factory=set)
    linked: bool = False
    crashing: set[str] = field(default_factory=set)
    killed: list[str] = field(default_factory=list)  # chosen for kill -9 and a wait for the restart


class ScenarioFleet:
    """The units, the operations on them, and a look at what systemd says about them."""

    def __init__(self, manager: UserManager, base: Path) -> None:
        self.manager = manager
        self.data_dir = base / "data" / "systemd" / "user"
        self.flags = base / "flags"
        self.model = Model()

    @staticmethod
    def prepare(manager: UserManager, base: Path) -> None:
        """Before manager.start(): unit files are read from base/data (XDG_DATA_HOME)."""
        manager.env["XDG_DATA_HOME"] = str(base / "data")

    # -- unit files ------------------------------------------------------------------------

    def flag(self, unit: str) -> Path:
        return self.flags / unit

    def steady_text(self, unit: str, restart_always: bool, alias: str | None = None) -> str:
        install = f"\n[Install]\nAlias={alias}\n" if alias else ""
        return ("[Unit]\nDescription=differential agent\nStartLimitIntervalSec=0\n\n[Service]\n"
                f"ExecStart=/bin/sleep infinity\nRestart={'always' if restart_always else 'no'}\n"
                f"RestartSec=200ms\n{ACCOUNTING}{install}")

    def crasher_text(self, unit: str) -> str:
        flag = self.flag(unit)
        return ("[Unit]\nDescription=differential agent, crash-looping while its flag exists\n"
                "StartLimitIntervalSec=0\n\n[Service]\n"
                f"ExecStart=/bin/sh -c 'if [ -e {flag} ]; then sleep 0.3; exit 1; fi; exec sleep infinity'\n"
                f"Restart=always\nRestartSec=1\n{ACCOUNTING}")

    @staticmethod
    def oneshot_text(index: int) -> str:
        command = "/bin/false" if index == 5 else "/bin/true"
        remain = "yes" if index < 3 else "no"
        return (f"[Unit]\nDescription=differential oneshot\n\n[Service]\nType=oneshot\nExecStart={command}\n"
                f"RemainAfterExit={remain}\n{ACCOUNTING}")

    def install(self, rng: random.Random) -> None:
        """Write every unit file, start the initial fleet and wait until it is up."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.flags.mkdir(parents=True, exist_ok=True)
        for i, unit in enumerate(STEADY):
            self._write(unit, self.steady_text(unit, i % 2 == 0, alias_of(unit) if unit in ALIASED else None))
        for unit in CRASHERS:
            self._write(unit, self.crasher_text(unit))
        for i, unit in enumerate(ONESHOTS):
            self._write(unit, self.oneshot_text(i))
        for unit in DYNAMIC[::2]:
            always = rng.random() < 0.5
            self._write(unit, self.steady_text(unit, always))
            self.model.dynamic[unit] = always
        self._write(HIDDEN, self.steady_text(HIDDEN, False))
        self._write(WORKER, self.steady_text(WORKER, True))
        for unit in CRASHERS[:2]:
            self.flag(unit).touch()
            self.model.crashing.add(unit)
        self.manager.systemctl("daemon-reload")
        self.manager.systemctl("enable", ALIASED[0])  # the explicit nick-s00 names agent-s00
        self.model.enabled.add(ALIASED[0])
        started = [*STEADY[:24], *CRASHERS, *ONESHOTS[:2], ONESHOTS[5], *self.model.dynamic, HIDDEN, WORKER]
        self.manager.systemctl("start", "--no-block", "--", *started)
        for unit in TRANSIENT[:3]:
            self._transient(unit, TRANSIENT.index(unit))
        steady = [*STEADY[:24], HIDDEN, WORKER]

        def up() -> bool:
            props = self.manager.show_units(steady, ["ActiveState"])
            return all(p["ActiveState"] == "active" for p in props)

        wait_until(up, 30, "the scenario's steady agents to be active", step=0.1)

    def _write(self, unit: str, text: str) -> None:
        (self.data_dir / unit).write_text(text)

    def _transient(self, unit: str, index: int) -> str:
        props = ["-p", "CPUAccounting=yes", "-p", "MemoryAccounting=yes", "-p", "TasksAccounting=yes"]
        if index % 3 == 0:
            argv = [*props, "-p", "Restart=always", "-p", "RestartSec=200ms", "--", "/bin/sleep", "infinity"]
        elif index % 3 == 1:
            argv = [*props, "--", "/bin/sleep", "infinity"]
        else:
            argv = [*props, "--", "/bin/sh", "-c", "sleep 0.5; exit 3"]  # fails, stays failed until reset
        done = self.manager.run(["systemd-run", "--user", "--quiet", f"--unit={unit}", *argv], check=False)
        return "ran" if done.returncode == 0 else f"systemd-run refused: {done.stderr.strip()[:120]}"

    # -- looking ---------------------------------------------------------------------------

    def observe(self) -> dict[str, tuple[str, ...]]:
        """What the writer can find, in one call into the manager: every loaded unit of ours by Id,
        the explicit names by name (an alias answers with its unit), and the unit files; a unit
        file is ("file", state). Units that come or go show as a difference too.

        `show` with patterns reads loaded units only: naming an unloaded unit would load it, and a
        writer's list-units running next could then see a unit it would not have seen otherwise."""
        props = ",".join(WATCHED)
        script = (f"systemctl --user --no-pager show --property={props} -- 'agent-*' 'svc-*' 'worker-*' && echo @ && "
                  f"systemctl --user --no-pager show --property={props} -- {NICK} {WORKER} {GHOST} && echo @ && "
                  "{ systemctl --user --no-pager list-unit-files --no-legend --full -- "
                  "'agent-*' 'svc-*' 'nick-*' 'worker-*' || true; }")
        loaded, explicit, files = self.manager.run(["sh", "-c", script]).stdout.split("@\n")
        seen: dict[str, tuple[str, ...]] = {}
        for block in parse_show(loaded):
            seen[block.get("Id", "")] = tuple(block.get(p, "") for p in WATCHED)
        for name, block in zip((NICK, WORKER, GHOST), parse_show(explicit), strict=True):
            seen[name] = tuple(block.get(p, "") for p in WATCHED)
        for line in files.splitlines():
            fields = line.split()
            if len(fields) >= 2:
                seen[f"file:{fields[0]}"] = ("file", *fields[1:])
        return seen

    def main_pid(self, unit: str) -> int:
        value = self.manager.show(unit, "MainPID").get("MainPID", "0")
        return int(value) if value.isdigit() else 0

    # -- operations ------------------------------------------------------------------------

    def startable(self) -> list[str]:
        return [*STEADY, *CRASHERS, *ONESHOTS, *sorted(self.model.dynamic), HIDDEN, WORKER]

    def restart_always(self) -> list[str]:
        return [*STEADY[::2], *CRASHERS, *(u for u, a in sorted(self.model.dynamic.items()) if a), WORKER,
                TRANSIENT[0], TRANSIENT[3]]

    def restart_no(self) -> list[str]:
        return [*STEADY[1::2], *(u for u, a in sorted(self.model.dynamic.items()) if not a), HIDDEN,
                TRANSIENT[1], TRANSIENT[4]]

    def step(self, rng: random.Random) -> str:
        """One operation chosen by rng; returns its log line ("settle" does nothing)."""
        ops: Sequence[tuple[int, Callable[[random.Random], str]]] = (
            (10, self.op_start), (8, self.op_stop), (8, self.op_restart), (8, self.op_kill_restarting),
            (4, self.op_kill_fail), (5, self.op_crash_toggle), (4, self.op_double_restart),
            (3, self.op_daemon_reload), (4, self.op_add_file), (4, self.op_remove_file), (2, self.op_edit_file),
            (3, self.op_alias), (3, self.op_link), (3, self.op_mask), (5, self.op_reset_failed),
            (5, self.op_transient), (6, self.op_settle),
        )
        op = rng.choices([o for _w, o in ops], weights=[w for w, _o in ops])[0]
        return op(rng)

    def _systemctl(self, *args: str) -> str:
        done = self.manager.systemctl(*args, check=False)
        return "ok" if done.returncode == 0 else f"exit {done.returncode}: {done.stderr.strip()[:120]}"

    def _blocking(self, rng: random.Random) -> list[str]:
        return ["--no-block"] if rng.random() < 0.3 else []

    def op_start(self, rng: random.Random) -> str:
        unit, block = rng.choice(self.startable()), self._blocking(rng)
        return f"start {' '.join(block)} {unit}: {self._systemctl('start', *block, '--', unit)}"

    def op_stop(self, rng: random.Random) -> str:
        unit, block = rng.choice([*self.startable(), *TRANSIENT]), self._blocking(rng)
        return f"stop {' '.join(block)} {unit}: {self._systemctl('stop', *block, '--', unit)}"

    def op_restart(self, rng: random.Random) -> str:
        unit, block = rng.choice(self.startable()), self._blocking(rng)
        return f"restart {' '.join(block)} {unit}: {self._systemctl('restart', *block, '--', unit)}"

    def op_double_restart(self, rng: random.Random) -> str:
        unit = rng.choice(self.startable())
        first = self._systemctl("restart", "--", unit)
        return f"restart twice in one interval {unit}: {first}, {self._systemctl('restart', '--', unit)}"

    def _kill(self, unit: str) -> tuple[int, str]:
        pid = self.main_pid(unit)
        if pid <= 0:
            return 0, "no main process"
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        return pid, f"killed MainPID {pid}"

    def op_kill_restarting(self, rng: random.Random) -> str:
        unit, wait = rng.choice(self.restart_always()), rng.random() < 0.5
        if wait:
            self.model.killed.append(unit)
        before = self.manager.show(unit, "NRestarts").get("NRestarts", "")
        pid, what = self._kill(unit)
        if pid and wait:
            def restarted() -> bool:
                now = self.manager.show(unit, "NRestarts", "ActiveState", "SubState")
                return now.get("NRestarts") != before and now.get("SubState") != "auto-restart"

            try:
                wait_until(restarted, 10, f"{unit} to be restarted", step=0.05)
                what += ", waited until systemd restarted it"
            except TimeoutError:
                what += ", not restarted within 10 s"
        elif pid:
            what += ", did not wait"
        return f"kill -9 under Restart=always {unit}: {what}"

    def op_kill_fail(self, rng: random.Random) -> str:
        unit = rng.choice(self.restart_no())
        _pid, what = self._kill(unit)
        return f"kill -9 (unit fails) {unit}: {what}"

    def op_crash_toggle(self, rng: random.Random) -> str:
        unit = rng.choice(CRASHERS)
        if unit in self.model.crashing:
            self.flag(unit).unlink()
            self.model.crashing.discard(unit)
            return f"crash loop ends at the next start of {unit}"
        self.flag(unit).touch()
        self.model.crashing.add(unit)
        if rng.random() < 0.5:
            return f"crash loop begins {unit}: restart {self._systemctl('restart', '--no-block', '--', unit)}"
        return f"crash loop begins {unit}: {self._kill(unit)[1]}"

    def op_daemon_reload(self, _rng: random.Random) -> str:
        return f"daemon-reload: {self._systemctl('daemon-reload')}"

    def op_add_file(self, rng: random.Random) -> str:
        absent = [u for u in DYNAMIC if u not in self.model.dynamic]
        if not absent:
            return "add a unit file: all are there"
        unit, always = rng.choice(absent), rng.random() < 0.5
        reload, start = rng.random() < 0.6, rng.random() < 0.6
        self._write(unit, self.steady_text(unit, always))
        self.model.dynamic[unit] = always
        line = f"add unit file {unit} (Restart={'always' if always else 'no'})"
        if reload:
            line += f", daemon-reload: {self._systemctl('daemon-reload')}"
        if start:
            line += f", start: {self._systemctl('start', '--', unit)}"
        return line

    def op_remove_file(self, rng: random.Random) -> str:
        if not self.model.dynamic:
            return "remove a unit file: none left"
        unit = rng.choice(sorted(self.model.dynamic))
        stop, reload = rng.random() < 0.5, rng.random() < 0.5
        line = f"remove unit file {unit}"
        if stop:
            line += f", stopped first: {self._systemctl('stop', '--', unit)}"
        (self.data_dir / unit).unlink()
        del self.model.dynamic[unit]
        if reload:
            line += f", daemon-reload: {self._systemctl('daemon-reload')}"
        return line

    def op_edit_file(self, rng: random.Random) -> str:
        if not self.model.dynamic:
            return "edit a unit file: none there"
        unit = rng.choice(sorted(self.model.dynamic))
        always = not self.model.dynamic[unit]
        self._write(unit, self.steady_text(unit, always))
        self.model.dynamic[unit] = always
        line = f"edit unit file {unit} to Restart={'always' if always else 'no'}"
        if rng.random() < 0.5:
            line += f", daemon-reload: {self._systemctl('daemon-reload')}"
        return line

    def op_alias(self, rng: random.Random) -> str:
        unit = rng.choice(ALIASED)
        return self._toggle(unit, self.model.enabled, ("enable", f"enable (Alias={alias_of(unit)}) {unit}"),
                            ("disable", f"disable (remove Alias={alias_of(unit)}) {unit}"))

    def _toggle(self, unit: str, members: set[str], on: tuple[str, str], off: tuple[str, str]) -> str:
        """Undo `on` (systemctl verb, log line) for a unit in `members`, else do it, and count the
        unit in only when systemctl agreed."""
        if unit in members:
            members.discard(unit)
            return f"{off[1]}: {self._systemctl(off[0], '--', unit)}"
        result = self._systemctl(on[0], "--", unit)
        if result == "ok":
            members.add(unit)
        return f"{on[1]}: {result}"

    def op_link(self, rng: random.Random) -> str:
        link = self.manager.unit_dir / LINK
        link.parent.mkdir(parents=True, exist_ok=True)
        if self.model.linked:
            link.unlink()
            line = f"remove symlink {LINK}"
        else:
            link.symlink_to(self.data_dir / HIDDEN)
            line = f"symlink {LINK} -> {HIDDEN}"
        self.model.linked = not self.model.linked
        if rng.random() < 0.6:
            line += f", daemon-reload: {self._systemctl('daemon-reload')}"
        return line

    def op_mask(self, rng: random.Random) -> str:
        unit = rng.choice([*STEADY, *ONESHOTS, *sorted(self.model.dynamic)])
        return self._toggle(unit, self.model.masked, ("mask", f"mask {unit}"), ("unmask", f"unmask {unit}"))

    def op_reset_failed(self, rng: random.Random) -> str:
        if rng.random() < 0.3:
            return f"reset-failed (all): {self._systemctl('reset-failed')}"
        # Half the time a unit that was killed and restarted on its own: reset-failed zeroes its
        # NRestarts while it keeps running, and leaves no other trace.
        pool = (self.model.killed or self.restart_always()) if rng.random() < 0.5 else [*self.startable(),
                                                                                        *TRANSIENT]
        unit = rng.choice(pool)
        return f"reset-failed {unit}: {self._systemctl('reset-failed', '--', unit)}"

    def op_transient(self, rng: random.Random) -> str:
        index = rng.randrange(len(TRANSIENT))
        unit = TRANSIENT[index]
        state = self.manager.show(unit, "LoadState", "ActiveState")
        if state.get("ActiveState") in ("active", "activating"):
            return f"stop transient {unit}: {self._systemctl('stop', '--', unit)}"
        return f"systemd-run transient {unit}: {self._transient(unit, index)}"

    def op_settle(self, _rng: random.Random) -> str:
        time.sleep(0.1)
        return "settle (no operation)"
