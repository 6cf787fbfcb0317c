"""`agent-exporter install` and `uninstall`: the rendered units put in place and enabled, and undone.

Install records what it changed in a manifest next to the units (`agent-exporter.install.json`):
the unit files, the user and group it created, the directories it created, the textfile
directory's owner group and mode before it changed them. Uninstall reverts exactly that and nothing
else, and exits non-zero when it had to leave something in place. Running install again changes
nothing that is already right, and says so.

System scope runs the writer as a static system user, `agent-exporter` (no shell, no home), which
install creates: the writer asks PID 1 over D-Bus, and Debian 12's dbus-daemon drops connections
from dynamic users (PID 1 starts it with SYSTEMD_NSS_DYNAMIC_BYPASS=1, systemd issue #22737). The
server, which needs no D-Bus, stays a dynamic user. The writer needs write access to the textfile
directory, which on Debian is root:root 0755, so the directory becomes group-writable and setgid
for the writer's group `agent-exporter` (root:agent-exporter 2775). A directory that is already
group-writable for a group other than root's keeps its owner: the writer runs with that group.

Every child process (systemctl, getent, useradd, userdel, groupadd, groupdel) goes through the
runner seam.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import stat
import sys
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from .. import configfile, systemd
from ..defaults import CONFIG_CACHE_FILE, STATE_FILE, lock_name, temp_prefix, user_state_home
from ..defaults import TEXTFILE_DIR as DEFAULT_TEXTFILE_DIR
from ..defaults import TEXTFILE_NAME as DEFAULT_TEXTFILE_NAME
from ..errors import AgentExporterError
from ..proc import Runner, run
from ..textfile import RunLock, atomic_write
from . import units

SYSTEM_UNIT_DIR = "/etc/systemd/system"
MANIFEST = "agent-exporter.install.json"
MANIFEST_FORMAT = 1
TIMEOUT = 60.0
NOLOGIN = "/usr/sbin/nologin"
TEXTFILE_DIR_MODE = 0o2775  # group-writable for the writer's group, setgid so new files keep that group
MIN_SYSTEMD = 248  # PrivateIPC=; older versions ignore the directives they do not know, with a warning
USER_STATE_IN_STATE_HOME = 254  # a user unit's StateDirectory= moved from $XDG_CONFIG_HOME to $XDG_STATE_HOME

Say = Callable[[str], None]


class InstallError(AgentExporterError):
    """Install or uninstall cannot go on: systemd unreachable, no permission, a directory in the way."""


class Request(NamedTuple):
    """What the user asked for, with every default already resolved by the caller."""

    scope: str
    unit_dir: str
    command: tuple[str, ...]
    textfile_dir: str
    textfile_name: str = DEFAULT_TEXTFILE_NAME
    interval_seconds: float = units.DEFAULT_INTERVAL
    listen_address: str = units.DEFAULT_LISTEN_ADDRESS
    config: str | None = None
    web_config: str | None = None
    group: str = units.DEFAULT_GROUP
    user: str = units.DEFAULT_USER
    runtime_dir: str | None = None  # user scope: $XDG_RUNTIME_DIR, where the manager's socket is
    config_home: str | None = None  # user scope: StateDirectory= lives here (systemd < 254) ...
    state_home: str | None = None  # ... or here (systemd >= 254)


# ---------------------------------------------------------------------------------------------
# Resolving the request (reads the environment, the config file and the file system; writes nothing)


def default_unit_dir(scope: str, environ: Mapping[str, str]) -> str:
    if scope == "system":
        return SYSTEM_UNIT_DIR
    return os.path.join(user_config_home(environ), "systemd", "user")


def user_config_home(environ: Mapping[str, str]) -> str:
    return environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")


def own_command(argv0: str | None = None, executable: str | None = None) -> tuple[str, ...]:
    """How the units run this installation of agent-exporter: its console script, else `python -m`."""
    argv0 = sys.argv[0] if argv0 is None else argv0
    executable = sys.executable if executable is None else executable
    if os.path.basename(argv0) == "agent-exporter" and os.access(argv0, os.X_OK):
        return (os.path.abspath(argv0),)
    script = os.path.join(os.path.dirname(executable), "agent-exporter")
    if os.access(script, os.X_OK):
        return (script,)
    return (os.path.abspath(executable), "-m", "textfile_writer")


def build_request(scope: str, environ: Mapping[str, str], *, config: str | None = None,
                  textfile_dir: str | None = None, textfile_name: str | None = None,
                  interval: float | None = None, listen_address: str | None = None,
                  web_config: str | None = None, unit_dir: str | None = None,
                  command: tuple[str, ...] | None = None, say: Say | None = None) -> Request:
    """Options over the config file over defaults; the config is validated on the way."""
    cfg = None
    if config is not None:
        config = os.path.abspath(config)
        cfg = configfile.load_config(config, scope)
        if cfg.scope != scope and say is not None:
            say(f"note: {config} says scope {cfg.scope}; the {scope} units watch {scope} units "
                f"(they run `write --scope {scope}`)")
    user = scope == "user"
    return Request(
        scope=scope,
        unit_dir=os.path.abspath(unit_dir or default_unit_dir(scope, environ)),
        command=command or own_command(),
        textfile_dir=os.path.abspath(textfile_dir or (cfg.textfile_dir if cfg else DEFAULT_TEXTFILE_DIR)),
        textfile_name=textfile_name or (cfg.textfile_name if cfg else DEFAULT_TEXTFILE_NAME),
        interval_seconds=(interval if interval is not None
                          else cfg.interval_seconds if cfg else units.DEFAULT_INTERVAL),
        listen_address=listen_address or units.DEFAULT_LISTEN_ADDRESS,
        config=config,
        web_config=os.path.abspath(web_config) if web_config else None,
        runtime_dir=(environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}") if user else None,
        config_home=user_config_home(environ) if user else None,
        state_home=user_state_home(environ) if user else None,
    )


def interpreter_of(path: str) -> str | None:
    """The interpreter a script's #! line names, or None for a binary or an unreadable file."""
    try:
        with open(path, "rb") as f:
            first = f.readline(512)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].decode(errors="replace").split()
    return words[0] if words else None


def needed_paths(req: Request) -> list[str]:
    """Every path the services must see, as given and resolved (a venv's python is often a symlink
    into a home directory, and ProtectHome= hides the target, not the link)."""
    exe = req.command[0]
    paths = [exe, os.path.dirname(os.path.abspath(__file__)), req.textfile_dir]
    paths += [p for p in (req.runtime_dir, req.config_home, req.state_home) if p]
    interpreter = interpreter_of(exe)
    if interpreter:
        paths.append(interpreter)
    paths += [p for p in (req.config, req.web_config) if p]
    out: list[str] = []
    for p in paths:
        for q in (os.path.abspath(p), os.path.realpath(p)):
            if q not in out:
                out.append(q)
    return out


def params(req: Request) -> units.UnitParams:
    sandbox = units.sandbox_for(needed_paths(req))
    return units.UnitParams(
        scope=req.scope, command=req.command, textfile_dir=req.textfile_dir,
        textfile_name=req.textfile_name, interval_seconds=req.interval_seconds,
        listen_address=req.listen_address, config=req.config, web_config=req.web_config,
        group=req.group, user=req.user, protect_home=sandbox.protect_home, protect_home_note=sandbox.protect_home_note,
        private_tmp=sandbox.private_tmp, private_tmp_note=sandbox.private_tmp_note)


def render(req: Request) -> dict[str, str]:
    return units.render(params(req))


def service_user_problem(req: Request) -> str | None:
    """Why the system units' unprivileged users could not run them, or None.

    The writer's static user and the server's dynamic user are "other" to every file install did
    not make for them.
    This checks the permission bits for "other" along every path: the executable, its interpreter, the
    package, the config file and the textfile directory's parents.
    """
    checks: list[tuple[str, int]] = [(req.command[0], 0o005)]
    interpreter = interpreter_of(req.command[0])
    if interpreter:
        checks.append((interpreter, 0o001))
    checks.append((os.path.dirname(os.path.abspath(__file__)), 0o005))
    for path in (req.config, req.web_config):
        if path:
            checks.append((path, 0o004))
    checks.append((os.path.dirname(req.textfile_dir), 0o001))
    for path, bits in checks:
        problem = _other_access_problem(path, bits)
        if problem:
            return problem
    for path in needed_paths(req):
        tmp = units.under(path, units.TMP_DIRS)
        if tmp:
            return (f"{path}: the server's dynamic user never sees the host's {tmp} (DynamicUser= implies "
                    "PrivateTmp=)")
    return None


def _other_access_problem(path: str, bits: int) -> str | None:
    for candidate in dict.fromkeys((os.path.abspath(path), os.path.realpath(path))):
        parts = candidate.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i]) or "/"
            try:
                mode = os.stat(parent).st_mode
            except OSError as exc:
                return f"{parent}: {exc.strerror}"
            if not mode & 0o001:
                return f"{candidate}: {parent} is mode {stat.S_IMODE(mode):04o}, closed to other users"
        try:
            mode = os.stat(candidate).st_mode
        except OSError as exc:
            return f"{candidate}: {exc.strerror}"
        if mode & bits != bits:
            what = "readable" if bits & 4 else "usable"
            return f"{candidate} is mode {stat.S_IMODE(mode):04o}, not {what} by other users"
    return None


# ---------------------------------------------------------------------------------------------
# The manifest


class Manifest(NamedTuple):
    scope: str
    units: dict[str, str]  # file name -> sha256 of what we wrote
    group_created: str | None = None
    user_created: str | None = None
    dirs_created: tuple[str, ...] = ()
    dir_changes: tuple[dict[str, int | str], ...] = ()  # path, gid, mode before; new_gid, new_mode after
    textfiles: tuple[str, ...] = ()
    state_dir: str | None = None  # user scope: the writer's StateDirectory=

    def to_json(self) -> str:
        data: dict[str, Any] = {"format": MANIFEST_FORMAT, **self._asdict()}
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def load(cls, path: str) -> Manifest | None:
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise InstallError(f"cannot read {path}: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
            raise InstallError(f"{path} is not a manifest this version of agent-exporter understands")
        try:
            return cls(scope=str(data["scope"]), units=dict(data["units"]),
                       group_created=data.get("group_created"),
                       user_created=data.get("user_created"),
                       dirs_created=tuple(data.get("dirs_created", ())),
                       dir_changes=tuple(data.get("dir_changes", ())),
                       textfiles=tuple(data.get("textfiles", ())),
                       state_dir=data.get("state_dir"))
        except (KeyError, TypeError, ValueError) as exc:
            raise InstallError(f"{path} is damaged ({exc}); remove the units by hand") from None


def getent(runner: Runner, timeout: float, database: str, key: str) -> tuple[str, int] | None:
    """(name, id) of a group or passwd entry by name or number, or None when there is none."""
    done = runner(["getent", database, "--", key], timeout)
    if done.returncode == 2:
        return None
    if done.returncode != 0:
        raise InstallError(f"getent {database} {key} failed: {_first_line(done.stderr, done.returncode)}")
    fields = done.stdout.strip().split(":")
    if len(fields) < 3 or not fields[2].isdigit():
        raise InstallError(f"getent {database} {key}: unexpected answer {done.stdout.strip()!r}")
    return fields[0], int(fields[2])


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Install


class Installer:
    """Carries out a Request; every change is reported through `say` and recorded in the manifest."""

    def __init__(self, req: Request, runner: Runner = run, say: Say = print, timeout: float = TIMEOUT,
                 check_access: bool = True) -> None:
        self.req = req
        self.check_access = check_access
        self.runner = runner
        self.say = say
        self.timeout = timeout
        self.changed = False
        self.manifest_path = os.path.join(req.unit_dir, MANIFEST)
        self.group = req.group
        self.written: list[str] = []

    # -- child processes ---------------------------------------------------------------------

    def systemctl(self, *args: str) -> tuple[int, str, str]:
        done = self.runner(systemd.systemctl(self.req.scope, *args), self.timeout)
        return done.returncode, done.stdout, done.stderr

    def systemctl_ok(self, *args: str) -> str:
        rc, out, err = self.systemctl(*args)
        if rc != 0:
            raise InstallError(f"systemctl --{self.req.scope} {' '.join(args)} failed: {_first_line(err, rc)}")
        return out

    def check_systemd(self) -> int | None:
        """systemd's major version, or None when it does not say; raises when it is not reachable."""
        rc, out, err = self.systemctl("show", "--property=Version")
        if rc != 0 or not out.startswith("Version="):
            where = "the system manager" if self.req.scope == "system" else "your user manager (systemctl --user)"
            raise InstallError(f"systemd is not reachable in {self.req.scope} scope ({_first_line(err, rc)}); "
                               f"install needs {where} running")
        word = re.match(r"\d+", out.strip().removeprefix("Version="))
        version = int(word.group()) if word else None
        if version is not None and version < MIN_SYSTEMD:
            self.say(f"warning: systemd {version} is older than {MIN_SYSTEMD}: it ignores the sandbox "
                     "directives it does not know (with a warning in its log)")
        return version

    def getent(self, database: str, key: str) -> tuple[str, int] | None:
        return getent(self.runner, self.timeout, database, key)

    def add(self, argv: list[str], what: str) -> None:
        done = self.runner(argv, self.timeout)
        if done.returncode != 0:
            raise InstallError(f"{' '.join(argv[:2])} {what} failed: {_first_line(done.stderr, done.returncode)}")
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
            found = self.getent("group", str(st.st_gid))
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
            owner = self.getent("group", str(st.st_gid))
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
        found = self.getent("group", name)
        if found is not None:
            return manifest, found[1]
        self.add(["groupadd", "--system", "--", name], name)
        found = self.getent("group", name)
        if found is None:
            raise InstallError(f"groupadd created {name}, but getent does not find it")
        self.say(f"  created system group {name} (gid {found[1]}): the writer's access to the textfile directory")
        return manifest._replace(group_created=name), found[1]

    def ensure_user(self, manifest: Manifest) -> Manifest:
        """The writer's static system user, created when missing (no home, no shell, its own group)."""
        name = self.req.user
        found = self.getent("passwd", name)
        if found is not None:
            if found[1] == 0:
                raise InstallError(f"user {name} has uid 0; the writer must not run as root")
            self.say(f"  the writer runs as {name} (uid {found[1]})")
            return manifest
        manifest, _gid = self.ensure_group(manifest)
        self.add(["useradd", "--system", "--gid", self.req.group, "--no-create-home", "--home-dir", "/nonexistent",
                  "--shell", NOLOGIN, "--comment", "agent-exporter writer", "--", name], name)
        found = self.getent("passwd", name)
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
        current = {name: _read(os.path.join(self.req.unit_dir, name)) for name in rendered}
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
            self.systemctl_ok("daemon-reload")
            self.say(f"  systemctl --{self.req.scope} daemon-reload")
        return manifest._replace(units={n: sha256(t) for n, t in rendered.items()},
                                 dirs_created=(*manifest.dirs_created, *created))

    def write_manifest(self, manifest: Manifest, old: Manifest | None) -> None:
        if old is not None and old == manifest:
            return
        atomic_write(self.req.unit_dir, MANIFEST, manifest.to_json().encode(), 0o644)

    def states(self, verb: str) -> dict[str, str]:
        """`systemctl is-enabled|is-active` of the enabled units: one word per unit, in order."""
        words = self.systemctl(verb, "--", *units.ENABLED)[1].split()
        return {u: words[i] if i < len(words) else "" for i, u in enumerate(units.ENABLED)}

    def enable(self, now: bool) -> None:
        todo = [u for u, state in self.states("is-enabled").items() if state != "enabled"]
        if todo:
            self.systemctl_ok("enable", "--", *todo)
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
            self.systemctl_ok("stop", "--", units.SERVER_SERVICE)
        if restart:
            self.systemctl_ok("restart", "--", *restart)
            self.say(f"  restarted {', '.join(restart)} (their definition changed)")
        if now:
            start = [u for u in units.ENABLED if active.get(u) != "active"]
            if start:
                self.systemctl_ok("start", "--", *start)
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


# ---------------------------------------------------------------------------------------------
# Uninstall


class Uninstaller:
    def __init__(self, scope: str, unit_dir: str, runner: Runner = run, say: Say = print,
                 timeout: float = TIMEOUT) -> None:
        self.scope = scope
        self.unit_dir = os.path.abspath(unit_dir)
        self.runner = runner
        self.say = say
        self.timeout = timeout
        self.problems: list[str] = []

    def systemctl(self, *args: str) -> tuple[int, str, str]:
        done = self.runner(systemd.systemctl(self.scope, *args), self.timeout)
        return done.returncode, done.stdout, done.stderr

    def run(self) -> bool:
        path = os.path.join(self.unit_dir, MANIFEST)
        manifest = Manifest.load(path)
        if manifest is None:
            ours = [n for n in units.UNIT_NAMES if os.path.exists(os.path.join(self.unit_dir, n))]
            if ours:
                raise InstallError(f"{', '.join(ours)} in {self.unit_dir} were not installed by agent-exporter "
                                   f"install (no {MANIFEST}); remove them by hand")
            self.say(f"nothing to uninstall: no agent-exporter install in {self.unit_dir}")
            return False
        if manifest.scope != self.scope:
            raise InstallError(f"{path} records a {manifest.scope}-scope install; use --{manifest.scope}")
        if self.scope == "system" and os.geteuid() != 0:
            raise InstallError("uninstall --system needs root")
        rc, _out, err = self.systemctl("show", "--property=Version")
        if rc != 0:
            raise InstallError(f"systemd is not reachable in {self.scope} scope ({_first_line(err, rc)}); "
                               "uninstall needs it to stop and disable the units")
        self.say(f"agent-exporter uninstall: {self.scope} scope, units in {self.unit_dir}")
        self.stop_and_disable()
        self.remove_state(manifest.state_dir)
        for textfile in manifest.textfiles:
            self.remove_textfile(textfile)
        self.remove_units(manifest)
        for change in reversed(manifest.dir_changes):
            self.revert_dir(change)
        for d in sorted(set(manifest.dirs_created), key=len, reverse=True):  # children first
            self.remove_dir(d)
        # The user before its group: groupdel refuses to remove a user's primary group. userdel
        # itself removes the group named like the user where login.defs has USERGROUPS_ENAB yes
        # (Debian's default) and nobody else is in it.
        if manifest.user_created:
            self.delete(["userdel", "--", manifest.user_created], f"user {manifest.user_created}")
        group = manifest.group_created
        if group and getent(self.runner, self.timeout, "group", group) is not None:
            self.delete(["groupdel", "--", group], f"group {group}")
        elif group:
            self.say(f"  removed group {group} (userdel did, with its user)")
        for problem in self.problems:
            self.say(f"  left in place: {problem}")
        if self.problems:
            raise InstallError(f"uninstall left {len(self.problems)} thing(s) in place (listed above); "
                               "remove them by hand")
        return True

    def delete(self, argv: list[str], what: str) -> None:
        done = self.runner(argv, self.timeout)
        if done.returncode == 0:
            self.say(f"  removed {what}")
        else:
            self.problems.append(f"{argv[0]} {argv[-1]}: {_first_line(done.stderr, done.returncode)}")

    def stop_and_disable(self) -> None:
        rc, _out, err = self.systemctl("disable", "--now", "--", *units.ENABLED)
        if rc != 0:
            self.problems.append(f"systemctl disable --now: {_first_line(err, rc)}")
        else:
            self.say(f"  stopped and disabled {', '.join(units.ENABLED)}")
        rc, _out, err = self.systemctl("stop", "--", units.WRITER_SERVICE, units.SERVER_SERVICE)
        if rc != 0:
            self.problems.append(f"systemctl stop: {_first_line(err, rc)}")

    def remove_state(self, state_dir: str | None) -> None:
        """The writer's CPU counters and config cache, in the unit's StateDirectory=."""
        if self.scope == "system":
            # systemd (252) refuses to clean a failed unit ("Unit is not inactive or has pending job")
            # until its failure is reset.
            self.systemctl("reset-failed", "--", units.WRITER_SERVICE)
            rc, _out, err = self.systemctl("clean", "--what=state", "--", units.WRITER_SERVICE)
            if rc == 0:
                self.say("  removed the writer's state (systemctl clean --what=state)")
            else:
                self.problems.append(f"systemctl clean --what=state: {_first_line(err, rc)}")
            return
        # A user's StateDirectory= ($XDG_CONFIG_HOME/agent-exporter before systemd 254,
        # $XDG_STATE_HOME/agent-exporter since) may hold other files of the user's (a config.yml):
        # only the writer's own files go, and the directory if that leaves it empty.
        if not state_dir:
            return
        removed = [n for n in (STATE_FILE, CONFIG_CACHE_FILE) if _unlink(os.path.join(state_dir, n))]
        if removed:
            self.say(f"  removed {', '.join(os.path.join(state_dir, n) for n in removed)}")
            self.remove_dir(state_dir, quiet_if_busy=True)

    def remove_textfile(self, textfile: str) -> None:
        directory, name = os.path.split(textfile)
        try:
            # Wait for a run that may still be writing (disable --now does not wait for a oneshot).
            with RunLock(os.path.join(directory, lock_name(name)), 10.0):
                entries = os.listdir(directory)
        except (AgentExporterError, OSError):
            entries = os.listdir(directory) if os.path.isdir(directory) else []
        prefix = temp_prefix(name)
        ours = [e for e in entries if e == name or e == lock_name(name) or e.startswith(prefix)]
        removed = [e for e in sorted(ours) if _unlink(os.path.join(directory, e))]
        if removed:
            self.say(f"  removed {', '.join(os.path.join(directory, e) for e in removed)}")

    def revert_dir(self, change: Mapping[str, int | str]) -> None:
        path = str(change["path"])
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return
        if (st.st_gid, stat.S_IMODE(st.st_mode)) != (change["new_gid"], change["new_mode"]):
            self.problems.append(f"{path}: its group or mode changed since install; not reverted")
            return
        os.chown(path, -1, int(change["gid"]))
        os.chmod(path, int(change["mode"]))
        self.say(f"  textfile directory {path}: group and mode back to gid {change['gid']}, {int(change['mode']):04o}")

    def remove_dir(self, path: str, quiet_if_busy: bool = False) -> None:
        """A directory install created; one that now holds files of others is theirs and stays."""
        try:
            os.rmdir(path)
            self.say(f"  removed {path}")
        except FileNotFoundError:
            pass
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                self.problems.append(f"{path}: {exc.strerror}")
            elif not quiet_if_busy:
                self.say(f"  kept {path}: it holds files that agent-exporter did not write")

    def remove_units(self, manifest: Manifest) -> None:
        for name, digest in manifest.units.items():
            path = os.path.join(self.unit_dir, name)
            try:
                with open(path, encoding="utf-8") as f:
                    edited = sha256(f.read()) != digest
            except FileNotFoundError:
                continue
            os.unlink(path)
            self.say(f"  removed {path}" + (" (it had been edited since install)" if edited else ""))
        _unlink(os.path.join(self.unit_dir, MANIFEST))
        self.systemctl("daemon-reload")
        # A unit that failed stays listed (as failed, not-found) until reset.
        self.systemctl("reset-failed", "--", *units.UNIT_NAMES)
        self.say(f"  systemctl --{self.scope} daemon-reload")


def uninstall(scope: str, unit_dir: str, runner: Runner = run, say: Say = print) -> bool:
    """Remove what install recorded; True when there was something to remove."""
    return Uninstaller(scope, unit_dir, runner, say).run()


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise InstallError(f"cannot read {path}: {exc}") from None


def _unlink(path: str) -> bool:
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


def _first_line(text: str, rc: int) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else f"exit status {rc}"
