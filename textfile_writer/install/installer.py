"""`agent-exporter install`: the plan (plan.py) carried out, or only printed (--dry-run).

Install records what it changed in the manifest (manifest.py) next to the units: the unit files,
the user and group it created, the directories it created, the textfile directory's owner group
and mode before it changed them; uninstaller.py reverts exactly that. Running install again
changes nothing that is already right, and says so.

Every child process (systemctl, getent, useradd, groupadd) goes through commands.py and proc's
runner seam.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..errors import InstallError
from ..proc import run
from ..textfile import atomic_write
from .commands import TIMEOUT, Commands, Say
from .plan import (
    DIR_MODE,
    NOTHING_TO_CHANGE,
    TEXTFILE_DIR_MODE,
    AddGroup,
    AddUser,
    MakeDirs,
    Note,
    Plan,
    RemoveUnit,
    ShareDir,
    Step,
    Systemctl,
    WriteManifest,
    WriteUnit,
    make_plan,
    said,
)
from .request import Request

if TYPE_CHECKING:  # the alias exists for the type checker only (proc.py)
    from ..proc import Runner

UNIT_MODE = 0o644


class Installer:
    """Carries out a Plan, saying each step as it starts it."""

    def __init__(self, plan: Plan, cmd: Commands, say: Say = print) -> None:
        self.plan = plan
        self.cmd = cmd
        self.say = say
        self.shared: list[dict[str, int | str]] = []  # the directory changes made by this run

    def run(self) -> None:
        req = self.plan.req
        self.say(f"agent-exporter install: {req.scope} scope, units in {req.unit_dir}")
        for step in self.plan.steps:
            self.say(said(step))
            self.do(step)
        if not self.plan.changes:
            self.say(NOTHING_TO_CHANGE)

    def do(self, step: Step) -> None:
        match step:
            case Note():
                pass
            case AddGroup() | AddUser():
                done = self.cmd.run(step.argv())
                if done.returncode != 0:
                    raise InstallError(f"{step.argv()[0]} {step.name} failed: {done.reason()}")
            case MakeDirs():
                for path in step.paths:
                    try:
                        os.mkdir(path, DIR_MODE)
                        os.chmod(path, DIR_MODE)  # not narrowed by the umask
                    except OSError as exc:
                        raise InstallError(f"cannot create {path}: {exc.strerror}") from None
                if step.group:
                    os.chown(step.paths[-1], 0, self.gid(step.group))
                    os.chmod(step.paths[-1], TEXTFILE_DIR_MODE)
            case ShareDir():
                gid = self.gid(step.group)
                os.chown(step.path, -1, gid)
                os.chmod(step.path, step.new_mode)
                if step.record:
                    self.shared.append({"path": step.path, "gid": step.gid, "mode": step.mode, "new_gid": gid,
                                        "new_mode": step.new_mode})
            case WriteUnit():
                directory, name = os.path.split(step.path)
                atomic_write(directory, name, step.text.encode(), UNIT_MODE)
            case RemoveUnit():
                os.unlink(step.path)
            case WriteManifest():
                manifest = step.manifest._replace(dir_changes=(*step.manifest.dir_changes, *self.shared))
                directory, name = os.path.split(step.path)
                atomic_write(directory, name, manifest.to_json().encode(), UNIT_MODE)
            case Systemctl():
                self.cmd.systemctl_ok(*step.args)

    def gid(self, group: str) -> int:
        found = self.cmd.getent("group", group)
        if found is None:
            raise InstallError(f"group {group} does not exist (getent group {group} finds nothing)")
        return found[1]


def install(req: Request, now: bool, runner: Runner = run, say: Say = print, check_access: bool = True) -> bool:
    """Install as asked; True when something changed. check_access=False skips the unprivileged
    users' permission checks (for tests whose files live in a private temporary directory)."""
    cmd = Commands(req.scope, runner, TIMEOUT)
    plan = make_plan(req, now, cmd, check_access)
    Installer(plan, cmd, say).run()
    return bool(plan.changes)


def dry_run(req: Request, now: bool, runner: Runner = run, say: Say = print, check_access: bool = True) -> Plan:
    """Print what install would do, then the units it leaves in place; change nothing. Refuses (the
    same errors, before printing anything) where install would."""
    plan = make_plan(req, now, Commands(req.scope, runner, TIMEOUT), check_access)
    say(f"agent-exporter install --dry-run: {req.scope} scope, units in {req.unit_dir}; nothing is changed")
    for line in plan.lines():
        say(line)
    for name, text in plan.units.items():
        unchanged = "" if name in plan.written else " (unchanged)"
        say("")
        say(f"# {os.path.join(req.unit_dir, name)}{unchanged}")
        say(text.rstrip("\n"))
    return plan
