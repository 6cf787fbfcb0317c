"""What the installer's tests share: a stand-in for systemctl, getent and the account tools behind the
runner seam (files, directories, owners and modes stay real), a say() that keeps the lines, and a
Request with test defaults."""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

import pytest

from textfile_writer.install.request import Request, own_command
from textfile_writer.proc import Completed

GID = 4321
UID = 987
needs_root = pytest.mark.skipif(os.geteuid() != 0 and os.environ.get("CI", "").lower() != "true",
                                reason="system scope changes owners: needs root")


class FakeSystem:
    """systemctl, getent, useradd, userdel, groupadd, groupdel: records every call and keeps just
    enough state. `failing` names the verbs (e.g. "clean", "userdel") that exit 1."""

    def __init__(self, reachable: bool = True, groups: dict[str, int] | None = None,
                 version: str = "252.38-1~deb12u1", users: dict[str, int] | None = None,
                 failing: Sequence[str] = (), userdel_takes_group: bool = False) -> None:
        self.reachable = reachable
        self.version = version
        self.groups = dict(groups or {})
        self.users = dict(users or {})
        self.failing = set(failing)
        self.userdel_takes_group = userdel_takes_group
        self.enabled: set[str] = set()
        self.active: set[str] = set()
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, argv: Sequence[str], timeout: float) -> Completed:
        args = tuple(argv)
        self.calls.append(args)
        if args[0] == "systemctl":
            return self.systemctl(args)
        if args[0] in self.failing:
            return Completed(args, 1, "", f"{args[0]}: it failed here\n")
        if args[0] == "getent":
            key = args[-1]
            for name, number in (self.groups if args[1] == "group" else self.users).items():
                if key in (name, str(number)):
                    return Completed(args, 0, f"{name}:x:{number}:\n", "")
            return Completed(args, 2, "", "")
        if args[0] == "groupadd":
            self.groups[args[-1]] = GID
        elif args[0] == "groupdel":
            if self.users:
                return Completed(args, 8, "", "groupdel: cannot remove the primary group of user\n")
            del self.groups[args[-1]]
        elif args[0] == "useradd":
            assert args[args.index("--gid") + 1] in self.groups, "useradd --gid needs the group first"
            self.users[args[-1]] = UID
        elif args[0] == "userdel":
            del self.users[args[-1]]
            if self.userdel_takes_group:  # Debian: USERGROUPS_ENAB yes
                self.groups.pop(args[-1], None)
        return Completed(args, 0, "", "")

    def systemctl(self, args: tuple[str, ...]) -> Completed:
        if not self.reachable:
            return Completed(args, 1, "", "System has not been booted with systemd as init system (PID 1). "
                                          "Can't operate.\nFailed to connect to bus: Host is down\n")
        words = [a for a in args[1:] if not a.startswith("--")]
        verb, names = words[0], words[1:]
        if verb in self.failing:
            return Completed(args, 1, "", f"Failed to {verb} unit: it failed here\n")
        if verb == "show":
            return Completed(args, 0, f"Version={self.version}\n", "")
        if verb == "is-enabled":
            states = ["enabled" if n in self.enabled else "disabled" for n in names]
            return Completed(args, 0 if "disabled" not in states else 1, "\n".join(states) + "\n", "")
        if verb == "is-active":
            states = ["active" if n in self.active else "inactive" for n in names]
            return Completed(args, 0 if "inactive" not in states else 3, "\n".join(states) + "\n", "")
        if verb == "enable":
            self.enabled.update(names)
        elif verb == "disable":
            self.enabled.difference_update(names)
            if "--now" in args:
                self.active.difference_update(names)
        elif verb in ("start", "restart"):
            self.active.update(names)
        elif verb == "stop":
            self.active.difference_update(names)
        return Completed(args, 0, "", "")

    def verbs(self) -> list[str]:
        return [" ".join(a for a in c[1:] if not a.startswith("--") or a == "--now") if c[0] == "systemctl"
                else " ".join(c) for c in self.calls]


class Out(list[str]):
    def __call__(self, line: str) -> None:
        self.append(line)

    @property
    def text(self) -> str:
        return "\n".join(self)

    @property
    def plan(self) -> list[str]:
        """The plan's lines as install or install --dry-run said them: after the header, before the
        units (a dry run prints them after a blank line)."""
        lines = self[1:]
        return lines[:lines.index("")] if "" in lines else lines


def mode_of(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_gid, stat.S_IMODE(st.st_mode)


def request(tmp_path: Path, scope: str, **kw: object) -> Request:
    base: dict[str, object] = {
        "scope": scope, "unit_dir": str(tmp_path / "units"), "command": (own_command()[0],),
        "textfile_dir": str(tmp_path / "var" / "node-exporter"), "interval_seconds": 2.0,
        "listen_address": "127.0.0.1:9299",
    }
    base.update(kw)
    return Request(**base)  # type: ignore[arg-type]


def in_order(seq: Sequence[str], items: Sequence[str]) -> bool:
    it = iter(seq)
    return all(any(x == item for x in it) for item in items)


def tree(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))
