"""What `agent-exporter install` will do, decided once: the Plan.

make_plan looks at the request, the file system, the accounts (getent) and the manager (its
version, is-enabled, is-active), and changes nothing. Every refusal happens here, before the first
change. The plan is a list of steps: a Note says what is already right or worth knowing; every
other step is a change. `install --dry-run` prints the steps; `install` prints each step and carries
it out (installer.py). One decision, two ways to use it: the dry run cannot promise what the real
run would not do.

System scope runs the writer as a static system user, `agent-exporter` (no shell, no home), which
install creates: the writer asks PID 1 over D-Bus, and Debian 12's dbus-daemon drops connections
from dynamic users (PID 1 starts it with SYSTEMD_NSS_DYNAMIC_BYPASS=1, systemd issue #22737). The
server, which needs no D-Bus, stays a dynamic user. The writer needs write access to the textfile
directory, which on Debian is root:root 0755, so the directory becomes group-writable and setgid
for the writer's group `agent-exporter` (root:agent-exporter 2775). A directory that is already
group-writable for a group other than root's keeps its owner: the writer runs with that group.
"""

from __future__ import annotations

import os
import shlex
import stat
from dataclasses import dataclass

from ..defaults import SYSTEM_STATE_DIR
from ..errors import InstallError
from . import units
from .commands import Commands
from .manifest import MANIFEST, Manifest, read_installed, sha256
from .request import Request, render, service_user_problem

NOLOGIN = "/usr/sbin/nologin"
DIR_MODE = 0o755
TEXTFILE_DIR_MODE = 0o2775  # group-writable for the writer's group, setgid so new files keep that group
MIN_SYSTEMD = 248  # PrivateIPC=; older versions ignore the directives they do not know, with a warning
USER_STATE_IN_STATE_HOME = 254  # a user unit's StateDirectory= moved from $XDG_CONFIG_HOME to $XDG_STATE_HOME
RUNNING = ("active", "activating", "reloading")


class Refused(InstallError):
    """Install will not do what was asked: the setup is unsafe or conflicts with what is there (a
    path the services' users cannot use, a unit file install did not write, a textfile directory
    it cannot share). Nothing has been changed. Exit 2, as for a bad value."""

    exit_code = 2


# -- the steps ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Note:
    """Nothing to do: what is already right, or worth knowing."""

    text: str

    def line(self) -> str:
        return self.text


@dataclass(frozen=True)
class AddGroup:
    name: str

    def argv(self) -> list[str]:
        return ["groupadd", "--system", "--", self.name]

    def line(self) -> str:
        return f"create system group {self.name} (the writer's, to write the textfile directory): " \
               f"{shlex.join(self.argv())}"


@dataclass(frozen=True)
class AddUser:
    name: str
    group: str

    def argv(self) -> list[str]:
        return ["useradd", "--system", "--gid", self.group, "--no-create-home", "--home-dir", "/nonexistent",
                "--shell", NOLOGIN, "--comment", "agent-exporter writer", "--", self.name]

    def line(self) -> str:
        return f"create system user {self.name} (no home, no shell; the writer runs as it): {shlex.join(self.argv())}"


@dataclass(frozen=True)
class MakeDirs:
    """Directories created parents first; with a group, the last one is the system textfile
    directory, made root:group TEXTFILE_DIR_MODE."""

    paths: tuple[str, ...]
    what: str
    group: str | None = None

    def line(self) -> str:
        parents = f" (and {', '.join(self.paths[:-1])})" if len(self.paths) > 1 else ""
        how = (f"mkdir -m {DIR_MODE:04o}, chgrp {self.group}, chmod {TEXTFILE_DIR_MODE:04o} "
               f"(root:{self.group} {TEXTFILE_DIR_MODE:04o})" if self.group else f"mkdir -m {DIR_MODE:04o}")
        return f"create {self.what} {self.paths[-1]}{parents}: {how}"


@dataclass(frozen=True)
class ShareDir:
    """The system textfile directory, root's group, given to the writer's group (recorded in the
    manifest for uninstall, unless an earlier install recorded it already)."""

    path: str
    gid: int
    mode: int
    group: str
    new_mode: int
    record: bool

    def line(self) -> str:
        return (f"textfile directory {self.path}: group root -> {self.group}, mode {self.mode:04o} -> "
                f"{self.new_mode:04o}: chgrp {self.group}, chmod {self.new_mode:04o}")


@dataclass(frozen=True)
class WriteUnit:
    path: str
    text: str

    def line(self) -> str:
        return f"write {self.path}"


@dataclass(frozen=True)
class RemoveUnit:
    path: str
    why: str

    def line(self) -> str:
        return f"remove {self.path} ({self.why})"


@dataclass(frozen=True)
class WriteManifest:
    """What uninstall reverts. The directory changes made by this run (ShareDir) are added as they
    are made: a group created by this run has no gid yet."""

    path: str
    manifest: Manifest

    def line(self) -> str:
        return f"write {self.path} (what uninstall reverts)"


@dataclass(frozen=True)
class Systemctl:
    scope: str
    args: tuple[str, ...]
    why: str = ""

    def line(self) -> str:
        return f"systemctl --{self.scope} {' '.join(self.args)}" + (f" ({self.why})" if self.why else "")


Step = Note | AddGroup | AddUser | MakeDirs | ShareDir | WriteUnit | RemoveUnit | WriteManifest | Systemctl


@dataclass(frozen=True)
class Plan:
    req: Request
    units: dict[str, str]  # every unit this install leaves in place: {file name: text}
    written: tuple[str, ...]  # the names among them that are (re)written
    steps: tuple[Step, ...]

    @property
    def changes(self) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if not isinstance(s, Note))

    def lines(self) -> list[str]:
        """The plan as both runs print it: the real run says each step as it starts it."""
        return [said(s) for s in self.steps] + ([] if self.changes else [NOTHING_TO_CHANGE])


NOTHING_TO_CHANGE = "nothing to change: already installed as asked"


def said(step: Step) -> str:
    return f"  {step.line()}"


# -- the decisions -----------------------------------------------------------------------------

def make_plan(req: Request, now: bool, cmd: Commands, check_access: bool = True) -> Plan:
    """Everything install would do for `req`, or the reason it would not (InstallError, Refused,
    UnitError). Reads only. check_access=False skips the unprivileged users' permission checks (for
    tests whose files live in a private temporary directory)."""
    rendered = render(req)  # bad values (UnitError) before anything else is looked at
    if req.scope == "system" and os.geteuid() != 0:
        raise InstallError(f"install --scope system needs root (it writes {req.unit_dir} and creates a group)")
    if req.scope == "system" and check_access:
        problem = service_user_problem(req)
        if problem:
            raise Refused(f"the system units run as unprivileged users, which could not use {problem}; "
                          "install agent-exporter where every user can run it (e.g. python3 -m venv "
                          "/opt/agent-exporter) and keep its files world-readable")
    return _Planner(req, cmd).plan(rendered, now)


def make_package_plan(req: Request, cmd: Commands, manifest_path: str) -> Plan:
    """What the Debian package's postinst asks (package.py): the writer's user and group and the
    textfile directory, decided as install decides them; the units are the package's own files. What
    it changed is recorded in the manifest at manifest_path, for the prerm to revert."""
    if os.geteuid() != 0:
        raise InstallError("install --package needs root (it creates a group and a user)")
    return _Planner(req, cmd).package(manifest_path)


def missing_dirs(path: str, what: str) -> list[str]:
    """The directories to create for `path`, parents first; Refused when it or the first of its
    parents that exists is not a directory."""
    missing: list[str] = []
    p = path
    while True:
        try:
            st = os.stat(p)
        except (FileNotFoundError, NotADirectoryError):  # the latter: a parent is not a directory
            if os.path.islink(p):
                raise Refused(f"{what} {path}: {p} is a symbolic link to nothing") from None
            missing.append(p)
            p = os.path.dirname(p)
            continue
        except OSError as exc:
            raise Refused(f"{what} {path}: cannot look at {p}: {exc.strerror}") from None
        if not stat.S_ISDIR(st.st_mode):
            where = "" if p == path else f": {p}"
            raise Refused(f"{what} {path}{where} exists and is not a directory")
        return list(reversed(missing))


class _Planner:
    def __init__(self, req: Request, cmd: Commands) -> None:
        self.req = req
        self.cmd = cmd
        self.steps: list[Step] = []
        self.group = req.group  # the writer's group; the textfile directory's own when it has one
        self.new_groups: set[str] = set()
        self.new_share: ShareDir | None = None

    def add(self, step: Step) -> None:
        self.steps.append(step)

    def plan(self, rendered: dict[str, str], now: bool) -> Plan:
        req = self.req
        version = self.systemd_version()
        manifest_path = os.path.join(req.unit_dir, MANIFEST)
        old = Manifest.load(manifest_path)
        if old is not None and old.scope != req.scope:
            raise Refused(f"{manifest_path} records a {old.scope}-scope install; uninstall it first")
        manifest = old or Manifest(scope=req.scope, units={})
        if req.scope == "system":
            manifest = self.writer_user(manifest)
        manifest = self.textfile_dir(manifest)
        manifest = self.state_dir(manifest, version)
        if self.group != req.group:  # the directory's own group, found above
            rendered = render(req._replace(group=self.group))
        written = self.unit_files(manifest, rendered, old, manifest_path)
        self.enable(rendered, written, now)
        textfile = os.path.join(req.textfile_dir, req.textfile_name)
        served = (f"; the server answers on http://{req.listen_address}/metrics" if req.server
                  else "; no server (--no-server): node_exporter's textfile collector reads the file")
        self.add(Note(f"the writer runs every {req.interval_seconds:g}s -> {textfile}{served}"))
        return Plan(req, rendered, tuple(written), tuple(self.steps))

    def package(self, manifest_path: str) -> Plan:
        req = self.req
        old = Manifest.load(manifest_path)
        manifest = self.textfile_dir(self.writer_user(old or Manifest(scope="system", units={})))
        if self.group != req.group:
            raise Refused(f"textfile directory {req.textfile_dir} is group-writable for {self.group}, but the "
                          f"package's units run the writer with group {req.group}; {self.share_advice(self.group)}")
        manifest = self.with_textfile(manifest)
        self.record(manifest, old, manifest_path)
        return Plan(req, {}, (), tuple(self.steps))

    def with_textfile(self, manifest: Manifest) -> Manifest:
        textfile = os.path.join(self.req.textfile_dir, self.req.textfile_name)
        return manifest if textfile in manifest.textfiles else manifest._replace(
            textfiles=(*manifest.textfiles, textfile))

    def record(self, new: Manifest, old: Manifest | None, manifest_path: str) -> None:
        """The manifest, when it changes or a directory change of this run is to be added to it."""
        if new != old or any(isinstance(s, ShareDir) and s.record for s in self.steps):
            self.add(WriteManifest(manifest_path, new))

    def systemd_version(self) -> int | None:
        where = "the system manager" if self.req.scope == "system" else "your user manager (systemctl --user)"
        version = self.cmd.systemd_version(f"install needs {where} running")
        if version is not None and version < MIN_SYSTEMD:
            self.add(Note(f"warning: systemd {version} is older than {MIN_SYSTEMD}: it ignores the sandbox "
                          "directives it does not know (with a warning in its log)"))
        return version

    # -- accounts ------------------------------------------------------------------------------

    def writer_group(self, manifest: Manifest) -> Manifest:
        """The writer's own group (req.group), created when missing."""
        name = self.req.group
        if name in self.new_groups or self.cmd.getent("group", name) is not None:
            return manifest
        self.add(AddGroup(name))
        self.new_groups.add(name)
        return manifest._replace(group_created=name)

    def writer_user(self, manifest: Manifest) -> Manifest:
        """The writer's static system user, created when missing (no home, no shell, its own group)."""
        name = self.req.user
        found = self.cmd.getent("passwd", name)
        if found is not None:
            if found[1] == 0:
                raise Refused(f"user {name} has uid 0; the writer must not run as root")
            self.add(Note(f"the writer runs as {name} (uid {found[1]}), who exists already"))
            return manifest
        manifest = self.writer_group(manifest)
        self.add(AddUser(name, self.req.group))
        return manifest._replace(user_created=name)

    # -- directories ---------------------------------------------------------------------------

    def textfile_dir(self, manifest: Manifest) -> Manifest:
        path = self.req.textfile_dir
        missing = missing_dirs(path, "textfile directory")
        if missing:
            group = None
            if self.req.scope == "system":
                manifest = self.writer_group(manifest)
                group = self.req.group
            self.add(MakeDirs(tuple(missing), "textfile directory", group))
            return manifest._replace(dirs_created=(*manifest.dirs_created, *missing))
        if self.req.scope == "user":
            if not os.access(path, os.W_OK | os.X_OK):
                raise Refused(f"textfile directory {path} is not writable by you; pass --textfile-dir, or "
                              "ask root to make it group-writable for one of your groups")
            self.add(Note(f"textfile directory {path}: writable, unchanged"))
            return manifest
        st = os.stat(path)
        mode = stat.S_IMODE(st.st_mode)
        if st.st_gid != 0 and mode & 0o030 == 0o030:
            found = self.cmd.getent("group", str(st.st_gid))
            if found is None:
                raise Refused(f"textfile directory {path} belongs to gid {st.st_gid}, which has no name")
            self.group = found[0]
            self.add(Note(f"textfile directory {path}: already group-writable for {self.group}; the writer runs "
                          "with that group, unchanged"))
            if self.req.server and not mode & 0o001:
                self.add(Note(f"warning: {path} is mode {mode:04o}: the server (a dynamic user) cannot read "
                              f"the file; if you use it, add SupplementaryGroups={self.group} with `systemctl "
                              f"edit {units.SERVER_SERVICE}`"))
            return manifest
        if st.st_gid != 0:
            owner = self.cmd.getent("group", str(st.st_gid))
            group = owner[0] if owner else str(st.st_gid)
            raise Refused(f"textfile directory {path} belongs to group {group}, which cannot write it (mode "
                          f"{mode:04o}); {self.share_advice(group)}")
        manifest = self.writer_group(manifest)
        recorded = any(c.get("path") == path for c in manifest.dir_changes)
        self.add(ShareDir(path, st.st_gid, mode, self.req.group, mode | TEXTFILE_DIR_MODE & 0o2070,
                          record=not recorded))
        return manifest

    def share_advice(self, group: str) -> str:
        """What to do about a textfile directory whose group (another package's doing, often) the writer
        cannot use."""
        path = self.req.textfile_dir
        again = "dpkg --configure -a" if self.req.packaged else "agent-exporter install again"
        if group == self.req.group:
            return f"make it group-writable again: chmod {TEXTFILE_DIR_MODE:04o} {path}, then run {again}"
        back = (f"give it back to root's group for {'the package' if self.req.packaged else 'install'} to "
                f"arrange: chgrp root {path}, then run {again}")
        if self.req.packaged:  # the package's units name the writer's group
            return back
        return f"make it group-writable (chmod g+w {path}) to let the writer join that group, or {back}"

    def state_dir(self, manifest: Manifest, version: int | None) -> Manifest:
        """Where the writer's StateDirectory= is: systemd makes it on the writer's first run."""
        req = self.req
        if req.scope == "system":
            path, owner = SYSTEM_STATE_DIR, f"owner {req.user}, "
        elif req.config_home and req.state_home:
            home = req.state_home if version is None or version >= USER_STATE_IN_STATE_HOME else req.config_home
            path, owner = os.path.join(home, "agent-exporter"), ""
            manifest = manifest._replace(state_dir=path)
        else:
            return manifest
        made = "exists" if os.path.isdir(path) else "systemd creates it on the writer's first run"
        self.add(Note(f"state directory {path} (StateDirectory=, {owner}mode 0700): {made}; it keeps the "
                      f"timer's CPU counters (agent-exporter status --state-dir {path}); uninstall removes it"))
        return manifest

    # -- units ---------------------------------------------------------------------------------

    def unit_files(self, manifest: Manifest, rendered: dict[str, str], old: Manifest | None,
                   manifest_path: str) -> list[str]:
        """The unit files to write and remove, the manifest, daemon-reload; the names written."""
        req = self.req
        unit_dir = req.unit_dir
        current = {name: read_installed(os.path.join(unit_dir, name)) for name in rendered}
        for name, text in current.items():
            if text is not None and name not in manifest.units:
                raise Refused(f"{os.path.join(unit_dir, name)} exists and was not written by agent-exporter "
                              "install; move it away first")
        # Units an earlier install wrote that this one does not want (the server's, for --no-server).
        dropped = [n for n in manifest.units if n not in rendered
                   and read_installed(os.path.join(unit_dir, n)) is not None]
        why = "--no-server" if not req.server else "no longer installed"
        enabled = [u for u in units.ENABLED if u in dropped]
        if enabled:
            self.add(Systemctl(req.scope, ("disable", "--now", "--", *enabled), why))
        services = [u for u in dropped if u.endswith(".service")]
        if services:
            self.add(Systemctl(req.scope, ("stop", "--", *services), why))
        for name in dropped:
            self.add(RemoveUnit(os.path.join(unit_dir, name), why))
        created = missing_dirs(unit_dir, "unit directory")
        if created:
            self.add(MakeDirs(tuple(created), "unit directory"))
        written = []
        for name, text in rendered.items():
            path = os.path.join(unit_dir, name)
            if current[name] == text:
                self.add(Note(f"unchanged {path}"))
            else:
                self.add(WriteUnit(path, text))
                written.append(name)
        new = self.with_textfile(manifest._replace(
            units={n: sha256(t) for n, t in rendered.items()},
            dirs_created=(*manifest.dirs_created, *created)))
        self.record(new, old, manifest_path)
        if written or dropped:
            self.add(Systemctl(req.scope, ("daemon-reload",)))
        return written

    def state_of(self, verb: str, unit: str) -> str:
        """`systemctl is-enabled|is-active UNIT`'s word ('' for a unit the manager does not know)."""
        words = self.cmd.systemctl(verb, "--", unit).stdout.split()
        return words[0] if words else ""

    def enable(self, rendered: dict[str, str], written: list[str], now: bool) -> None:
        scope = self.req.scope
        wanted = [u for u in units.ENABLED if u in rendered]
        todo = [u for u in wanted if self.state_of("is-enabled", u) != "enabled"]
        if todo:
            self.add(Systemctl(scope, ("enable", "--", *todo)))
        else:
            self.add(Note(f"{', '.join(wanted)}: already enabled"))
        active = {u: self.state_of("is-active", u) for u in wanted}
        # A running unit keeps its old definition until restarted. The server is only stopped: the
        # socket starts it again, with the new definition, on the next connection (and a socket
        # cannot be restarted under a running service).
        restart = [u for u in wanted if active[u] == "active" and u in written]
        if (units.SERVER_SERVICE in written or units.SERVER_SOCKET in restart) \
                and self.state_of("is-active", units.SERVER_SERVICE) in RUNNING:
            self.add(Systemctl(scope, ("stop", "--", units.SERVER_SERVICE),
                               "its socket starts it again, changed, on the next connection"))
        if restart:
            self.add(Systemctl(scope, ("restart", "--", *restart), "their definition changed"))
        if now:
            start = [u for u in wanted if active[u] != "active"]
            if start:
                self.add(Systemctl(scope, ("start", "--", *start)))
            else:
                self.add(Note(f"{', '.join(wanted)}: already running"))
        elif any(active[u] != "active" for u in wanted):
            self.add(Note(f"not started (use --now, or: systemctl --{scope} start {' '.join(wanted)})"))
