"""The installer's child processes, each through proc's one seam: systemctl in the install's scope,
getent, and the account tools (useradd, userdel, groupadd, groupdel)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from .. import systemd
from ..errors import InstallError
from ..proc import Completed

if TYPE_CHECKING:  # the alias exists for the type checker only (proc.py)
    from ..proc import Runner

TIMEOUT = 60.0
Say = Callable[[str], None]
"""Where the installer reports each change (print, or a list's append in tests)."""


class Commands:
    def __init__(self, scope: str, runner: Runner, timeout: float = TIMEOUT) -> None:
        self.scope = scope
        self.runner = runner
        self.timeout = timeout

    def run(self, argv: list[str]) -> Completed:
        return self.runner(argv, self.timeout)

    def systemctl(self, *args: str) -> Completed:
        """`systemctl --<scope> ARGS`; a failure is the caller's to judge."""
        return self.run(systemd.systemctl(self.scope, *args))

    def systemctl_ok(self, *args: str) -> str:
        done = self.systemctl(*args)
        if done.returncode != 0:
            raise InstallError(f"systemctl --{self.scope} {' '.join(args)} failed: {done.reason()}")
        return done.stdout

    def systemd_version(self, needed_for: str) -> int | None:
        """systemd's major version (None when it does not say); an InstallError when the manager
        does not answer, saying what it is `needed_for`."""
        done = self.systemctl("show", "--property=Version")
        if done.returncode != 0 or not done.stdout.startswith("Version="):
            raise InstallError(f"systemd is not reachable in {self.scope} scope ({done.reason()}); {needed_for}")
        word = re.match(r"\d+", done.stdout.strip().removeprefix("Version="))
        return int(word.group()) if word else None

    def getent(self, database: str, key: str) -> tuple[str, int] | None:
        """(name, id) of a group or passwd entry by name or number, or None when there is none."""
        done = self.run(["getent", database, "--", key])
        if done.returncode == 2:
            return None
        if done.returncode != 0:
            raise InstallError(f"getent {database} {key} failed: {done.reason()}")
        fields = done.stdout.strip().split(":")
        if len(fields) < 3 or not fields[2].isdigit():
            raise InstallError(f"getent {database} {key}: unexpected answer {done.stdout.strip()!r}")
        return fields[0], int(fields[2])
