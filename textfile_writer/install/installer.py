"""`agent-exporter install`: the rendered units put in place and enabled.

Install records what it changed in the manifest (manifest.py) next to the units: the unit files,
the user and group it created, the directories it created, the textfile directory's owner group
and mode before it changed them; uninstaller.py reverts exactly that. Running install again
changes nothing that is already right, and says so.

System scope runs the writer as a static system user, `agent-exporter` (no shell, no home), which
install creates: the writer asks PID 1 over D-Bus, and Debian 12's dbus-daemon drops connections
from dynamic users (PID 1 starts it with SYSTEMD_NSS_DYNAMIC_BYPASS=1, systemd issue #22737). The
server, which needs no D-Bus, stays a dynamic user. The writer needs write access to the textfile
directory, which on Debian is root:root 0755, so the directory becomes group-writable and setgid
for the writer's group `agent-exporter` (root:agent-exporter 2775). A directory that is already
group-writable for a group other than root's keeps its owner: the writer runs with that group.

Every child process (systemctl, getent, useradd, groupadd) goes through commands.py and proc's
runner seam.
"""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING

from ..errors import InstallError
from ..proc import run
from ..textfile import atomic_write
from . import units
from .commands import TIMEOUT, Commands, Say
from .manifest import MANIFEST, Manifest, read_installed, sha256
from .request import Request, render, service_user_problem

if TYPE_CHECKING:  # the alias exists for the type checker only (proc.py)
    from ..proc import Runner

NOLOGIN = "/usr/sbin/nologin"
TEXTFILE_DIR_MODE = 0o2775  # group-writable for the writer's group, setgid so new files keep that group
MIN_SYSTEMD = 248  # PrivateIPC=; older versions ignore the directives they do not know, with a warning
USER_STATE_IN_STATE_HOME = 254  # a user unit's StateDirectory= moved from $XDG_CONFIG_HOME to $XDG_STATE_HOME


class Installer:
    """Carries out a Request; every change is reported through `say` and recorded in the manifest."""

    def __init__(self, req: Request, runner: Runner = run, say: Say = print, timeout: float = TIMEOUT,
                 check_access: bool = True) -> None:
        self.req = req
        self.check_access = check_access
        self.cmd = Commands(req.scope, runner, timeout)
        self.say = say
        self.changed = False
        self.manifest_path = os.path.join(req.unit_dir, MANIFEST)
        self.group = req.group
        self.written: list[str] = []

    def check_systemd(self) -> int | None:
        """systemd's major version, or None when it does not say; raises when it is not reachable."""
        where = "the system manager" if self.req.scope == "system" else "your user manager (systemctl --user)"
        version = self.cmd.systemd_version(f"install needs {where} running")
        if version is not None and version < MIN_SYSTEMD:
            self.say(f"warning: systemd {version} is older than {MIN_SYSTEMD}: it ignores the sandbox "
                     "directives it does not know (with a warning in its log)")
        return version

    def add(self, argv: list[str], what: str) -> None:
        done = self.cmd.run(argv)
        if done.returncode != 0:
            raise InstallError(f"{' '.join(argv[:2])} {what} failed: {done.reason()}")
        self.changed = True

    # -- steps -------------------------------------------------------------------------------

    def run(self, now: bool) -> None:
        req = self.req
        if req.scope == "system" and os.geteuid() != 0:
            raise InstallError(f"install --system needs root (it writes {req.unit_dir} and creates a group)")
        rendered = render(req)  # bad values fail here, before anything changes
        version = self.check_systemd()
        if req.scope == "system" and self.check_access:
            problem = service_user_problem(req)
            if problem:
                raise InstallError(
                    f"the system units run as unprivileged users, which could not use {problem}; "
                    "install agent-exporter where every user can run it (e.g. python3 -m venv "
                    "/opt/agent-exporter) and keep its files world-readable")
        old = Manifest.load(self.manifest_path)
        if old is not None and old.scope != req.scope:
            raise InstallError(f"{self.manifest_path} records a {old.scope}-scope install; uninstall it first")
        manifest = old or Manifest(scope=req.scope, units={})
        if req.scope == "system":
            manifest = self.ensure_user(manifest)
        if req.scope == "user" and req.config_home and req.state_home:
            home = req.state_home if version is None or version >= USER_STATE_IN_STATE_HOME else req.config_home
            manifest = manifest._replace(state_dir=os.path.join(home, "agent-exporter"))
        self.say(f"agent-exporter install: {req.scope} scope, units in {req.unit_dir}")
        manifest = self.textfile_dir(manifest)
        manifest = self.write_units(manifest, rendered)
        textfile = os.path.join(req.textfile_dir, req.textfile_name)
        if textfile not in manifest.textfiles:
            manifest = manifest._replace(textfiles=(*manifest.textfiles, textfile))
        self.write_manifest(manifest, old)
        self.enable(now)
        if manifest.state_dir:
            self.say(f"  the timer's CPU counters are in {manifest.state_dir} "
                     f"(agent-exporter status --state-dir {manifest.state_dir})")
        if not self.changed:
            self.say("nothing to change: already installed as asked")

    def textfile_dir(self, manifest: Manifest) -> Manifest:
        path = self.req.textfile_dir
        if self.req.scope == "user":
            if os.path.isdir(path):
                if not os.access(path, os.W_OK | os.X_OK):
                    raise InstallError(f"textfile directory {path} is not writable by you; pass --textfile-dir, or "
                                       "ask root to make it group-writable for one of your groups")
                self.say(f"  textfile directory {path}: writable, unchanged")
                return manifest
            created = self.makedirs(path, 0o755)
            return manifest._replace(dirs_created=(*manifest.dirs_created, *created))
        try:
            st = os.stat(path)
        except FileNotFoundError:
            manifest, gid = self.ensure_group(manifest)
            created = self.makedirs(path, 0o755, announce=False)
            os.chown(path, 0, gid)
            os.chmod(path, TEXTFILE_DIR_MODE)
            parents = f" (and {', '.join(created[:-1])})" if len(created) > 1 else ""
            self.say(f"  textfile directory {path}: created root:{self.group} {TEXTFILE_DIR_MODE:04o}{parents}")
            return manifest._replace(dirs_created=(*manifest.dirs_created, *created))
        if not stat.S_ISDIR(st.st_mode):
            raise InstallError(f"textfile directory {path} exists and is not a directory")
        mode = stat.S_IMODE(st.st_mode)
        if st.st_gid != 0 and mode & 0o030 == 0o030:
            found = self.cmd.getent("group", str(st.st_gid))
            if found is None:
                raise InstallError(f"textfile directory {path} belongs to gid {st.st_gid}, which has no name")
            self.group = found[0]
            self.say(f"  textfile directory {path}: already group-writable for {self.group}; the writer runs "
                     "with that group, nothing changed")
            if not mode & 0o001:
                self.say(f"  warning: {path} is mode {mode:04o}: the server (a dynamic user) cannot read "
                         f"the file; if you use it, add SupplementaryGroups={self.group} with `systemctl edit "
                         f"{units.SERVER_SERVICE}`")
            return manifest
        if st.st_gid != 0:
            owner = self.cmd.getent("group", str(st.st_gid))
            raise InstallError(
                f"textfile directory {path} belongs to group {owner[0] if owner else st.st_gid}, which cannot "
                f"write it; make it group-writable (chmod g+w) to let the writer join that group, or give it "
                f"to root's group for install to arrange")
        manifest, gid = self.ensure_group(manifest)
        new_mode = mode | TEXTFILE_DIR_MODE & 0o2070
        os.chown(path, -1, gid)
        os.chmod(path, new_mode)
        change: dict[str, int | str] = {"path": path, "gid": st.st_gid, "mode": mode, "new_gid": gid,
                                        "new_mode": new_mode}
        self.changed = True
        self.say(f"  textfile directory {path}: group root -> {self.group}, mode {mode:04o} -> {new_mode:04o}")
        if not any(c.get("path") == path for c in manifest.dir_changes):
            manifest = manifest._replace(dir_changes=(*manifest.dir_changes, change))
        return manifest

    def ensure_group(self, manifest: Manifest) -> tuple[Manifest, int]:
        """The writer's own group (req.group), created when missing; its gid."""
        name = self.req.group
        found = self.cmd.getent("group", name)
        if found is not None:
            return manifest, found[1]
        self.add(["groupadd", "--system", "--", name], name)
        found = self.cmd.getent("group", name)
        if found is None:
            raise InstallError(f"groupadd created {name}, but getent does not find it")
        self.say(f"  created system group {name} (gid {found[1]}): the writer's access to the textfile directory")
        return manifest._replace(group_created=name), found[1]

    def ensure_user(self, manifest: Manifest) -> Manifest:
        """The writer's static system user, created when missing (no home, no shell, its own group)."""
        name = self.req.user
        found = self.cmd.getent("passwd", name)
        if found is not None:
            if found[1] == 0:
                raise InstallError(f"user {name} has uid 0; the writer must not run as root")
            self.say(f"  the writer runs as {name} (uid {found[1]})")
            return manifest
        manifest, _gid = self.ensure_group(manifest)
        self.add(["useradd", "--system", "--gid", self.req.group, "--no-create-home", "--home-dir", "/nonexistent",
                  "--shell", NOLOGIN, "--comment", "agent-exporter writer", "--", name], name)
        found = self.cmd.getent("passwd", name)
        if found is None:
            raise InstallError(f"useradd created {name}, but getent does not find it")
        self.say(f"  created system user {name} (uid {found[1]}, no home, no shell): the writer runs as it")
        return manifest._replace(user_created=name)

    def makedirs(self, path: str, mode: int, announce: bool = True) -> list[str]:
        missing = []
        p = path
        while not os.path.isdir(p):
            missing.append(p)
            p = os.path.dirname(p)
        for d in reversed(missing):
            try:
                os.mkdir(d, mode)
                os.chmod(d, mode)  # not narrowed by the umask
            except OSError as exc:
                raise InstallError(f"cannot create {d}: {exc.strerror}") from None
        if missing:
            self.changed = True
            if announce:
                self.say(f"  created {', '.join(reversed(missing))}")
        return list(reversed(missing))

    def write_units(self, manifest: Manifest, rendered: dict[str, str]) -> Manifest:
        if self.group != self.req.group:  # the directory's own group, found above
            rendered = render(self.req._replace(group=self.group))
        current = {name: read_installed(os.path.join(self.req.unit_dir, name)) for name in rendered}
        for name, text in current.items():
            if text is not None and name not in manifest.units:  # checked for all before writing any
                raise InstallError(f"{os.path.join(self.req.unit_dir, name)} exists and was not written by "
                                   "agent-exporter install; move it away first")
        created = self.makedirs(self.req.unit_dir, 0o755)
        for name, text in rendered.items():
            path = os.path.join(self.req.unit_dir, name)
            if current[name] == text:
                self.say(f"  unchanged {path}")
            else:
                atomic_write(self.req.unit_dir, name, text.encode(), 0o644)
                self.written.append(name)
                self.say(f"  wrote {path}")
        if self.written:
            self.changed = True
            self.cmd.systemctl_ok("daemon-reload")
            self.say(f"  systemctl --{self.req.scope} daemon-reload")
        return manifest._replace(units={n: sha256(t) for n, t in rendered.items()},
                                 dirs_created=(*manifest.dirs_created, *created))

    def write_manifest(self, manifest: Manifest, old: Manifest | None) -> None:
        if old is not None and old == manifest:
            return
        atomic_write(self.req.unit_dir, MANIFEST, manifest.to_json().encode(), 0o644)

    def states(self, verb: str) -> dict[str, str]:
        """`systemctl is-enabled|is-active` of the enabled units: one word per unit, in order."""
        words = self.cmd.systemctl(verb, "--", *units.ENABLED).stdout.split()
        return {u: words[i] if i < len(words) else "" for i, u in enumerate(units.ENABLED)}

    def enable(self, now: bool) -> None:
        todo = [u for u, state in self.states("is-enabled").items() if state != "enabled"]
        if todo:
            self.cmd.systemctl_ok("enable", "--", *todo)
            self.changed = True
            self.say(f"  enabled {', '.join(todo)}")
        else:
            self.say(f"  {', '.join(units.ENABLED)}: already enabled")
        active = self.states("is-active")
        changed = set(self.written)
        # A running unit keeps its old definition until restarted. The server is only stopped: the
        # socket starts it again, with the new definition, on the next connection (and a socket
        # cannot be restarted under a running service).
        restart = [u for u in units.ENABLED if active.get(u) == "active" and u in changed]
        if units.SERVER_SERVICE in changed or units.SERVER_SOCKET in restart:
            self.cmd.systemctl_ok("stop", "--", units.SERVER_SERVICE)
        if restart:
            self.cmd.systemctl_ok("restart", "--", *restart)
            self.say(f"  restarted {', '.join(restart)} (their definition changed)")
        if now:
            start = [u for u in units.ENABLED if active.get(u) != "active"]
            if start:
                self.cmd.systemctl_ok("start", "--", *start)
                self.changed = True
                self.say(f"  started {', '.join(start)}")
            else:
                self.say(f"  {', '.join(units.ENABLED)}: already running")
        elif any(active.get(u) != "active" for u in units.ENABLED):
            self.say(f"  not started (use --now, or: systemctl --{self.req.scope} start {' '.join(units.ENABLED)})")
        self.say(f"  the writer runs every {self.req.interval_seconds:g}s -> "
                 f"{os.path.join(self.req.textfile_dir, self.req.textfile_name)}; "
                 f"the server answers on http://{self.req.listen_address}/metrics")


def install(req: Request, now: bool, runner: Runner = run, say: Say = print, check_access: bool = True) -> bool:
    """Install as asked; True when something changed. check_access=False skips the dynamic-user
    permission check (for tests whose files live in a private temporary directory)."""
    installer = Installer(req, runner, say, check_access=check_access)
    installer.run(now)
    return installer.changed


def dry_run(req: Request, say: Say = print) -> None:
    """Print the units install would write; touches nothing and needs no systemd."""
    rendered = render(req)
    for name, text in rendered.items():
        say(f"# {os.path.join(req.unit_dir, name)}")
        say(text)
    if req.scope == "system":
        problem = service_user_problem(req)
        if problem:
            say(f"# warning: install would refuse: the services' users could not use {problem}")
