"""What install is asked to do: the Request, with every default resolved from the environment, the
config file and the file system (read only: nothing is written here), and the units it renders."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Mapping
from typing import NamedTuple

from .. import configfile
from ..defaults import INTERVAL_SECONDS, LISTEN_ADDRESS, USER_RUNTIME_DIR, user_config_home, user_state_home
from ..defaults import TEXTFILE_DIR as DEFAULT_TEXTFILE_DIR
from ..defaults import TEXTFILE_NAME as DEFAULT_TEXTFILE_NAME
from ..errors import UnitError, shown
from ..files import open_regular, path_problem
from . import units
from .commands import Say

SYSTEM_UNIT_DIR = "/etc/systemd/system"


class Request(NamedTuple):
    """What the user asked for, with every default already resolved by the caller."""

    scope: str
    unit_dir: str
    command: tuple[str, ...]
    textfile_dir: str
    textfile_name: str = DEFAULT_TEXTFILE_NAME
    interval_seconds: float = INTERVAL_SECONDS
    listen_address: str = LISTEN_ADDRESS
    config: str | None = None
    web_config: str | None = None
    group: str = units.DEFAULT_GROUP
    user: str = units.DEFAULT_USER
    runtime_dir: str | None = None  # user scope: $XDG_RUNTIME_DIR, where the manager's socket is
    config_home: str | None = None  # user scope: StateDirectory= lives here (systemd < 254) ...
    state_home: str | None = None  # ... or here (systemd >= 254)
    server: bool = True  # False: the writer and its timer only (--no-server)
    probe_addresses: tuple[str, ...] = ()  # where the config's HTTP probes connect: the writer's network
    # The Debian package (package.py): where its installer's code is (default: this module's
    # directory), and units that say they are the package's.
    package_dir: str | None = None
    packaged: bool = False
    users: tuple[str, ...] = ()  # the config's users: whose managers the writer asks (system scope)


def default_unit_dir(scope: str, environ: Mapping[str, str]) -> str:
    if scope == "system":
        return SYSTEM_UNIT_DIR
    return os.path.join(user_config_home(environ), "systemd", "user")


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
                  command: tuple[str, ...] | None = None, server: bool = True,
                  say: Say | None = None) -> Request:
    """Options over the config file over defaults; the config is validated on the way."""
    cfg = None
    if config is not None:
        config = os.path.abspath(config)
        cfg = configfile.load_config(config, scope)
        if cfg.scope != scope and not cfg.users and say is not None:
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
                          else cfg.interval_seconds if cfg else INTERVAL_SECONDS),
        listen_address=listen_address or LISTEN_ADDRESS,
        config=config,
        web_config=os.path.abspath(web_config) if web_config else None,
        runtime_dir=(environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}") if user else None,
        config_home=user_config_home(environ) if user else None,
        state_home=user_state_home(environ) if user else None,
        server=server,
        probe_addresses=tuple(dict.fromkeys(p.address for p in cfg.probes)) if cfg else (),
        users=tuple(u.name for u in cfg.users) if cfg else (),
    )


def interpreter_of(path: str) -> str | None:
    """The interpreter a script's #! line names, or None for a binary or an unreadable file."""
    try:
        fd, _st = open_regular(path)  # a FIFO or a device in its place would hang or never end
    except OSError:
        return None
    try:
        first = os.read(fd, 512).split(b"\n")[0]
    except OSError:
        return None
    finally:
        os.close(fd)
    if not first.startswith(b"#!"):
        return None
    # The kernel reads the line as a C string: it ends at a NUL.
    words = first[2:].split(b"\0")[0].decode(errors="replace").split()
    return words[0] if words else None


def package_dir(req: Request) -> str:
    """Where the units' agent-exporter code is: this installation's, unless the request says."""
    return req.package_dir or os.path.dirname(os.path.abspath(__file__))


def needed_paths(req: Request) -> list[str]:
    """Every path the services must see, as given and resolved (a venv's python is often a symlink
    into a home directory, and ProtectHome= hides the target, not the link)."""
    exe = req.command[0]
    paths = [exe, package_dir(req), req.textfile_dir]
    paths += [p for p in (req.runtime_dir, req.config_home, req.state_home) if p]
    if req.users:  # each user's manager's socket, in its XDG_RUNTIME_DIR
        paths.append(USER_RUNTIME_DIR)
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
    """The units' parameters: every value checked (units.validate) before any path is looked at on
    the file system, then the sandbox those paths need."""
    checked = units.validate(units.UnitParams(
        scope=req.scope, command=req.command, textfile_dir=req.textfile_dir,
        textfile_name=req.textfile_name, interval_seconds=req.interval_seconds,
        listen_address=req.listen_address, config=req.config, web_config=req.web_config,
        group=req.group, user=req.user, probe_addresses=req.probe_addresses, packaged=req.packaged,
        users=req.users))
    for label, path in (("XDG_RUNTIME_DIR", req.runtime_dir), ("XDG_CONFIG_HOME", req.config_home),
                        ("XDG_STATE_HOME", req.state_home)):
        # Only the sandbox's comment names these, escaped; they must still be paths.
        if path is not None and (not os.path.isabs(path) or path_problem(path)):
            raise UnitError(label, f"must be an absolute path, got {shown(path)}")
    sandbox = units.sandbox_for(needed_paths(req))
    return checked._replace(
        protect_home=sandbox.protect_home, protect_home_note=sandbox.protect_home_note,
        private_tmp=sandbox.private_tmp, private_tmp_note=sandbox.private_tmp_note)


def render(req: Request) -> dict[str, str]:
    """{unit file name: text} of the units this request installs (without the server's for
    --no-server), in units.UNIT_NAMES order."""
    rendered = units.render(params(req))
    return {name: text for name, text in rendered.items() if req.server or name in units.WRITER_UNITS}


def service_user_problem(req: Request) -> str | None:
    """Why the system units' unprivileged users could not run them, or None.

    The writer's static user and the server's dynamic user are "other" to every file install did
    not make for them.
    This checks the permission bits for "other" along every path: the executable, its interpreter, the
    package, the config file and the textfile directory's parents. With the server, no path may be
    under /tmp or /var/tmp: its dynamic user gets a private one whatever PrivateTmp= says (the
    writer alone, a static user, can take PrivateTmp=no as user units do).
    """
    checks: list[tuple[str, int]] = [(req.command[0], 0o005)]
    interpreter = interpreter_of(req.command[0])
    if interpreter:
        checks.append((interpreter, 0o001))
    checks.append((package_dir(req), 0o005))
    for path in (req.config, req.web_config if req.server else None):
        if path:
            checks.append((path, 0o004))
    checks.append((os.path.dirname(req.textfile_dir), 0o001))
    for path, bits in checks:
        problem = _other_access_problem(path, bits)
        if problem:
            return problem
    for path in needed_paths(req) if req.server else ():
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
