"""The systemd units, rendered for a scope: templates in, {file name: unit text} out.

Pure: no file system or environment access beyond reading the packaged templates (timers/*.in,
installed as textfile_writer.timers). One set of templates serves both scopes; request.py finds
the facts (paths, which of them a sandbox directive would hide) and writes the result.

Template syntax: lines starting with "##" are dropped; "@system:" and "@user:" lines are kept only
in that scope; @NAME@ is replaced by a value; a line that is only a placeholder whose value is
empty disappears.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Iterable, Sequence
from importlib import resources
from typing import NamedTuple

from .. import __version__

# Defined once, in defaults.py; re-exported here under the names the installer and the tests use.
from ..defaults import (
    INTERVAL_SECONDS,
    LISTEN_ADDRESS,
    MAX_INTERVAL_SECONDS,
    TEXTFILE_NAME,
    split_listen_address,
    textfile_name_problem,
)
from ..defaults import SERVER_SERVICE as SERVER_SERVICE
from ..defaults import SERVER_SOCKET as SERVER_SOCKET
from ..defaults import WRITER_SERVICE as WRITER_SERVICE
from ..defaults import WRITER_TIMER as WRITER_TIMER
from ..errors import UnitError, shown

WRITER_UNITS = (WRITER_SERVICE, WRITER_TIMER)
SERVER_UNITS = (SERVER_SERVICE, SERVER_SOCKET)
"""What `install --no-server` leaves out: hosts whose node_exporter reads the file need no server."""
UNIT_NAMES = (*WRITER_UNITS, *SERVER_UNITS)
ENABLED = (WRITER_TIMER, SERVER_SOCKET)
"""The units that are enabled and started; the services are started by them."""

DEFAULT_GROUP = "agent-exporter"
DEFAULT_USER = "agent-exporter"
"""System scope: the writer's static system user (`install` creates it, its primary group DEFAULT_GROUP)."""
MIN_INTERVAL = 1.0  # the timer's AccuracySec= is 1 s: a shorter period would not be kept

# What a sandbox directive hides from the service, and so what install must not let it hide.
HOME_DIRS = ("/home", "/root", "/run/user")  # ProtectHome=yes makes these inaccessible
TMP_DIRS = ("/tmp", "/var/tmp")  # noqa: S108 - PrivateTmp=yes replaces these

# Paths go into ExecStart=, ReadWritePaths= and Description=, which quote, unescape and expand
# %-specifiers differently; a path made of these characters means the same in all of them.
_SAFE_PATH = re.compile(r"[A-Za-z0-9/._+:@,~=-]+\Z")
# systemd refuses a longer path (PATH_MAX with its NUL) or a longer name in it (NAME_MAX).
MAX_PATH = 4095
MAX_NAME = 255
_PLACEHOLDER = re.compile(r"@([A-Z_]+)@")
# User and group names that useradd/groupadd accept by default, that need no quoting in a unit, and
# that systemd's strict rule takes without a warning: at most 31 characters (32 draw "does not match
# strict user/group name rules" from systemd-analyze verify, systemd 252).
_ACCOUNT_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,30}\Z")


class UnitParams(NamedTuple):
    scope: str  # "user" | "system"
    command: tuple[str, ...]  # how to run agent-exporter: (script,) or (python, "-m", "textfile_writer")
    textfile_dir: str
    textfile_name: str = TEXTFILE_NAME
    interval_seconds: float = INTERVAL_SECONDS
    listen_address: str = LISTEN_ADDRESS
    config: str | None = None
    web_config: str | None = None
    group: str = DEFAULT_GROUP  # system scope: the group that may write textfile_dir
    user: str = DEFAULT_USER  # system scope: the writer's user
    protect_home: str = "yes"  # "yes" | "read-only"
    protect_home_note: str = ""
    private_tmp: bool = True
    private_tmp_note: str = ""
    probe_addresses: tuple[str, ...] = ()  # the IP addresses the config's HTTP probes connect to
    packaged: bool = False  # shipped by the Debian package (package.py), not written by `install`
    users: tuple[str, ...] = ()  # the config's users: (system scope): the writer asks each one's manager


def under(path: str, roots: Iterable[str]) -> str | None:
    """The first of roots that path is (or is below), or None."""
    for root in roots:
        if path == root or path.startswith(root.rstrip("/") + "/"):
            return root
    return None


class Sandbox(NamedTuple):
    protect_home: str
    protect_home_note: str
    private_tmp: bool
    private_tmp_note: str


def sandbox_for(needed: Sequence[str]) -> Sandbox:
    """The strongest ProtectHome= and PrivateTmp= that still let the service see `needed`.

    `needed` are the resolved paths the service uses: the executable and its interpreter, the
    package, the config, the textfile directory (and for user scope the runtime and state
    directories). A pyenv interpreter in /root, a venv in a home directory or a user's
    XDG_RUNTIME_DIR (/run/user/UID, where its manager's D-Bus socket is) would vanish under
    ProtectHome=yes; read-only keeps them visible and still unwritable.
    """
    home = [(p, r) for p in needed if (r := under(p, HOME_DIRS))]
    tmp = [(p, r) for p in needed if (r := under(p, TMP_DIRS))]
    protect_home, home_note = "yes", ""
    if home:
        protect_home = "read-only"
        home_note = note("# read-only, not yes: the service needs {} (yes would hide "
                         + ", ".join(sorted({r for _, r in home})) + ")", sorted({p for p, _ in home}))
    private_tmp, tmp_note = True, ""
    if tmp:
        private_tmp = False
        tmp_note = note("# no: the service needs {} (a private /tmp would hide it)", sorted({p for p, _ in tmp}))
    return Sandbox(protect_home, home_note, private_tmp, tmp_note)


def check_path(label: str, path: str) -> str:
    """An absolute path in the safe alphabet and within systemd's limits, normalized."""
    if not os.path.isabs(path):
        raise UnitError(label, f"must be an absolute path, got {shown(path)}")
    if not _SAFE_PATH.match(path):
        raise UnitError(label, f"{shown(path)} has characters that unit files would have to quote or "
                        "escape (use only letters, digits and / . _ - + : @ , ~ =)")
    path = "/" + os.path.normpath(path).lstrip("/")  # normpath keeps a leading "//"
    if len(path) > MAX_PATH or max(len(name) for name in path.split("/")) > MAX_NAME:
        raise UnitError(label, f"{shown(path)} is longer than systemd takes ({MAX_PATH} characters, "
                        f"{MAX_NAME} per name)")
    return path


def check_listen_address(address: str) -> str:
    """HOST:PORT with an IP literal host ([::1]:9200 for IPv6): what ListenStream= binds.

    Returned rebuilt from the parsed address and port, so no character of the input reaches the
    unit unparsed. IPv6 scope IDs (fe80::1%eth0) are refused: ListenStream= cannot parse them
    (systemd 252), and "%" starts a specifier in a unit file.
    """
    try:
        host, port = split_listen_address(address)
    except ValueError as exc:
        raise UnitError("--web.listen-address", f"{exc}, got {shown(address)}") from None
    if port == 0:
        raise UnitError("--web.listen-address", f"the port must be from 1 to 65535, got {shown(address)}")
    if "%" in host:
        raise UnitError("--web.listen-address", f"an IPv6 scope ID (%...) cannot go into ListenStream=; give "
                        f"the address alone, got {shown(address)}")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise UnitError("--web.listen-address", f"the host must be an IP address (systemd does not resolve "
                        f"names for ListenStream=), got {shown(host)}") from None
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


def check_interval(seconds: float) -> float:
    """The timer's period, kept to the millisecond so that its text in the units is exact."""
    if not (math.isfinite(seconds) and MIN_INTERVAL <= round(seconds, 3) <= MAX_INTERVAL_SECONDS):
        raise UnitError("--interval", f"must be from {MIN_INTERVAL:g} to {MAX_INTERVAL_SECONDS:g} seconds, "
                        f"got {seconds:g}")
    return round(seconds, 3)


def format_number(seconds: float) -> str:
    """A validated interval as the units write it: at most three decimals, no exponent."""
    return f"{seconds:.3f}".rstrip("0").rstrip(".")


def format_seconds(seconds: float) -> str:
    return format_number(seconds) + "s"


def line_problem(value: str) -> str | None:
    """Why `value` cannot be put into a line of a unit file as it is, or None.

    systemd ends a line at \\n, \\r or NUL, joins a line ending in a backslash to the next one (a
    comment too), and expands %-specifiers in most values: any of these would let a value write
    directives of its own, or swallow the template's.
    """
    if not (value.isascii() and value.isprintable()):
        return "holds a line break, a control or a non-ASCII character"
    if "%" in value:
        return "holds a % (a systemd specifier)"
    if value.endswith("\\"):
        return "ends in a backslash (it would continue the line)"
    return None


def note(text: str, paths: Iterable[str]) -> str:
    """A comment line naming paths; a path outside the safe alphabet is shown escaped."""
    shown_paths = (p if _SAFE_PATH.match(p) else ascii(p).replace("%", "\\x25") for p in paths)
    return text.format(", ".join(shown_paths))


def check_note(label: str, text: str) -> str:
    problem = line_problem(text)
    if text and (problem or not text.startswith("# ")):
        raise UnitError(label, f"must be one comment line ('# ...'): {problem or 'no #'}, got {shown(text)}")
    return text


def exec_line(argv: Sequence[str]) -> str:
    """An ExecStart= value; every argument is already a safe path or a plain word."""
    for arg in argv:
        if not _SAFE_PATH.match(arg):
            raise UnitError("ExecStart", f"argument {shown(arg)} would need quoting in a unit file")
    return " ".join(argv)


def write_command(p: UnitParams) -> list[str]:
    argv = [*p.command, "write", "--scope", p.scope, "--textfile-dir", p.textfile_dir,
            "--textfile-name", p.textfile_name]
    if p.config:
        argv += ["--config", p.config]
    return argv


def serve_command(p: UnitParams) -> list[str]:
    # The textfile and the interval are given explicitly: the server need not read the writer's
    # configuration (which its unprivileged user may not be allowed to read).
    argv = [*p.command, "serve", "--textfile-dir", p.textfile_dir, "--textfile-name", p.textfile_name,
            "--interval", format_number(p.interval_seconds)]
    if p.web_config:
        argv += ["--web.config.file", p.web_config]
    return argv


def validate(p: UnitParams) -> UnitParams:
    """Every field that reaches a unit checked against a strict grammar (UnitError names the first
    that fails), and returned in the form the units write."""
    if p.scope not in ("user", "system"):
        raise UnitError("--scope", f"must be 'user' or 'system', got {shown(p.scope)}")
    problem = None
    if not _SAFE_PATH.match(p.textfile_name) or len(p.textfile_name) > MAX_NAME:
        problem = f"must be at most {MAX_NAME} letters, digits and . _ - + : @ , ~ =, got {shown(p.textfile_name)}"
    problem = problem or textfile_name_problem(p.textfile_name)
    if problem:
        raise UnitError("--textfile-name", problem)
    if p.protect_home not in ("yes", "read-only"):
        raise UnitError("ProtectHome", f"must be yes or read-only, got {shown(p.protect_home)}")
    if not _ACCOUNT_NAME.match(p.group):
        raise UnitError("--group", f"not a valid group name: {shown(p.group)}")
    if not _ACCOUNT_NAME.match(p.user):
        raise UnitError("--user", f"not a valid user name: {shown(p.user)}")
    if not p.command:
        raise UnitError("the agent-exporter executable", "no command given")
    if p.users and p.scope != "system":
        raise UnitError("--config", "has users: a user manager cannot ask other users' managers; install it "
                        "with --system")
    for name in p.users:
        if not _ACCOUNT_NAME.match(name):
            raise UnitError("--config", f"users: {shown(name)} cannot go into a unit file as it is")
    textfile_dir = check_path("--textfile-dir", p.textfile_dir)
    check_path("--textfile-name", os.path.join(textfile_dir, p.textfile_name))  # the joined path's length
    return p._replace(
        textfile_dir=textfile_dir,
        interval_seconds=check_interval(p.interval_seconds),
        config=None if p.config is None else check_path("--config", p.config),
        web_config=None if p.web_config is None else check_path("--web.config.file", p.web_config),
        command=(check_path("the agent-exporter executable", p.command[0]), *p.command[1:]),
        listen_address=check_listen_address(p.listen_address),
        protect_home_note=check_note("ProtectHome's note", p.protect_home_note),
        private_tmp_note=check_note("PrivateTmp's note", p.private_tmp_note),
        probe_addresses=check_probe_addresses(p.probe_addresses),
    )


def check_probe_addresses(addresses: Iterable[str]) -> tuple[str, ...]:
    """The probes' addresses as IPAddressAllow= takes them: IP literals, normalized, sorted, once each."""
    out: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    for address in addresses:
        try:
            out.add(ipaddress.ip_address(address))
        except ValueError:
            raise UnitError("--config", f"a probe's address must be an IP address, got {shown(address)}") from None
    return tuple(str(ip) for ip in sorted(out, key=lambda ip: (ip.version, ip)))


def network(p: UnitParams) -> dict[str, str]:
    """The writer's network: none (PrivateNetwork=yes, AF_UNIX for D-Bus only) unless the config has
    HTTP probes; then the host's, with the address families the probes use and, in system scope,
    IPAddressDeny=any with IPAddressAllow= exactly their addresses. A user manager cannot attach the
    BPF program that filters addresses, so there the note says the probes open the whole network."""
    if not p.probe_addresses:
        return {"NETWORK_NOTE": "", "PRIVATE_NETWORK": "yes", "ADDRESS_FAMILIES": "AF_UNIX", "IP_ADDRESS_ALLOW": ""}
    allowed = " ".join(p.probe_addresses)
    families = sorted({"AF_INET6" if ":" in a else "AF_INET" for a in p.probe_addresses})
    if p.scope == "system":
        note_text = f"# no: the config's HTTP probes connect to {allowed} (IPAddressAllow= below, nothing else)"
    else:
        note_text = (f"# no: the config's HTTP probes connect to {allowed} (a user manager cannot restrict the "
                     "addresses: IPAddressAllow= needs the system manager)")
    return {"NETWORK_NOTE": note_text, "PRIVATE_NETWORK": "no", "ADDRESS_FAMILIES": " ".join(["AF_UNIX", *families]),
            "IP_ADDRESS_ALLOW": f"IPAddressAllow={allowed}"}


def generated(p: UnitParams) -> str:
    if p.packaged:
        return (f"Shipped by the agent-exporter Debian package (agent-exporter {__version__}), which replaces "
                "this file on upgrade; keep local changes in a drop-in (systemctl edit).")
    return (f"Written by `agent-exporter install --scope {p.scope}` (agent-exporter {__version__}). "
            "Run it again to change this file; keep local changes in a drop-in (systemctl edit).")


# What the writer needs to ask several users' managers (users.py): setpriv's setresuid, setresgid and
# setgroups (@setuid, taken out again by ~@privileged above) and capset, with which setpriv drops the
# inherited capabilities before it runs systemctl as the user (--inh-caps=-all).
USERS_CAPABILITIES = "CAP_SETUID CAP_SETGID"
USERS_SYSCALLS = "SystemCallFilter=@setuid capset"


def users_mode(p: UnitParams) -> dict[str, str]:
    """The writer's capabilities: none, or for a configuration with users only CAP_SETUID and CAP_SETGID."""
    if not p.users:
        return {"USERS_NOTE": "", "CAPABILITIES": "", "USERS_SYSCALLS": "", "PRIVATE_USERS": "yes",
                "PRIVATE_USERS_NOTE": ""}
    return {"USERS_NOTE": f"# {USERS_CAPABILITIES} only: the config's users ({', '.join(p.users)}) are asked "
                          "as themselves (setpriv), each its own manager",
            "CAPABILITIES": USERS_CAPABILITIES, "USERS_SYSCALLS": USERS_SYSCALLS, "PRIVATE_USERS": "no",
            "PRIVATE_USERS_NOTE": "# no: setpriv switches to the config's users, whom a private user namespace "
                                  "does not map (setresuid fails with EINVAL)"}


def values(p: UnitParams) -> dict[str, str]:
    return {
        "GENERATED": generated(p),
        "SCOPE": p.scope,
        "TEXTFILE": os.path.join(p.textfile_dir, p.textfile_name),
        "TEXTFILE_DIR": p.textfile_dir,
        "TEXTFILE_NAME": p.textfile_name,
        "INTERVAL": format_seconds(p.interval_seconds),
        "LISTEN_ADDRESS": p.listen_address,
        "GROUP": p.group,
        "USER": p.user,
        "WRITE_COMMAND": exec_line(write_command(p)),
        "SERVE_COMMAND": exec_line(serve_command(p)),
        "PROTECT_HOME": p.protect_home,
        "PROTECT_HOME_NOTE": p.protect_home_note,
        "PRIVATE_TMP": "yes" if p.private_tmp else "no",
        "PRIVATE_TMP_NOTE": p.private_tmp_note,
        **network(p),
        **users_mode(p),
    }


def template(name: str) -> str:
    return resources.files("textfile_writer.timers").joinpath(name + ".in").read_text(encoding="utf-8")


def render_template(text: str, scope: str, fill: dict[str, str]) -> str:
    out: list[str] = []
    for line in text.splitlines():
        if line.startswith("##"):
            continue
        only = re.match(r"@(system|user):", line)
        if only:
            if only.group(1) != scope:
                continue
            line = line[only.end():]
        whole = _PLACEHOLDER.fullmatch(line)
        if whole and fill.get(whole.group(1)) == "":
            continue
        out.append(_PLACEHOLDER.sub(lambda m: _fill(fill, m.group(1)), line))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out).strip("\n") + "\n")


def _fill(fill: dict[str, str], name: str) -> str:
    if name not in fill:
        raise KeyError(f"template placeholder @{name}@ has no value")
    # The last guard, whatever validate() let through: a value never leaves its line.
    problem = line_problem(fill[name])
    if problem:
        raise UnitError(f"@{name}@", f"{problem}, got {shown(fill[name])}")
    return fill[name]


def render(params: UnitParams) -> dict[str, str]:
    """{unit file name: text} for params.scope, in UNIT_NAMES order."""
    p = validate(params)
    fill = values(p)
    return {name: render_template(template(name), p.scope, fill) for name in UNIT_NAMES}
