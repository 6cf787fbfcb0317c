"""units.py: the templates rendered for each scope, checked by systemd's own tools.

`systemd-analyze verify` must be silent on every rendered unit, and `systemd-analyze security
--offline=true` must rate the system services at most 1.0 (writer) and 1.5 (server).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import pytest
from procs import need

from textfile_writer import systemd
from textfile_writer.errors import UnitError
from textfile_writer.install import units
from textfile_writer.install.request import own_command
from textfile_writer.install.units import UnitParams, render, sandbox_for
from textfile_writer.proc import Completed

EXE = "/opt/agent-exporter/bin/agent-exporter"
MAX_EXPOSURE = {units.WRITER_SERVICE: 1.0, units.SERVER_SERVICE: 1.5}


def params(scope: str = "system", **kw: object) -> UnitParams:
    base: dict[str, object] = {"scope": scope, "command": (EXE,), "textfile_dir": "/var/lib/prometheus/node-exporter",
                               "config": "/etc/agent-exporter/config.yml"}
    base.update(kw)
    return UnitParams(**base)  # type: ignore[arg-type]


def directives(text: str) -> list[tuple[str, str]]:
    lines = [line for line in text.splitlines() if line and not line.startswith(("#", "["))]
    return [(k, v) for k, _, v in (line.partition("=") for line in lines)]


def values_of(text: str, key: str) -> list[str]:
    return [v for k, v in directives(text) if k == key]


# ---------------------------------------------------------------------------------------------
# Rendering


def test_every_template_is_rendered_once() -> None:
    templates = sorted(p.name.removesuffix(".in") for p in resources.files("textfile_writer.timers").iterdir()
                       if p.name.endswith(".in"))
    assert templates == sorted(units.UNIT_NAMES)
    assert list(render(params())) == list(units.UNIT_NAMES)


@pytest.mark.parametrize("scope", ["system", "user"])
def test_no_template_syntax_is_left(scope: str) -> None:
    for name, text in render(params(scope)).items():
        assert not re.search(r"@[A-Z_]+@|^@(system|user):|^##", text, re.M), name
        assert "\n\n\n" not in text and text.endswith("\n") and not text.endswith("\n\n"), name


def test_system_writer() -> None:
    text = render(params("system", interval_seconds=2))[units.WRITER_SERVICE]
    assert values_of(text, "ExecStart") == [
        f"{EXE} write --scope system --textfile-dir /var/lib/prometheus/node-exporter --textfile-name agents.prom "
        "--config /etc/agent-exporter/config.yml"]
    assert values_of(text, "Type") == ["oneshot"]
    assert "[Install]" not in text.splitlines()
    # a static user: a dynamic one cannot reach PID 1 through Debian 12's dbus-daemon
    assert not values_of(text, "DynamicUser")
    assert values_of(text, "User") == ["agent-exporter"] and values_of(text, "Group") == ["agent-exporter"]
    assert values_of(text, "StateDirectoryMode") == ["0700"]
    assert values_of(text, "ReadWritePaths") == ["/var/lib/prometheus/node-exporter"]
    assert values_of(text, "StateDirectory") == ["agent-exporter"]
    assert values_of(text, "RestrictAddressFamilies") == ["AF_UNIX"]
    # what the job needs from /proc must stay visible
    assert not values_of(text, "ProtectProc") and not values_of(text, "ProcSubset")


def test_user_writer_takes_what_a_user_manager_can_do() -> None:
    system = dict(directives(render(params("system"))[units.WRITER_SERVICE]))
    user = dict(directives(render(params("user"))[units.WRITER_SERVICE]))
    assert set(system) - set(user) == {"User", "Group", "IPAddressDeny", "DevicePolicy"}
    assert set(user) <= set(system)
    assert user["PrivateUsers"] == "yes"  # without it a user manager silently skips the namespaces
    assert user["ExecStart"].split()[1:4] == ["write", "--scope", "user"]


def test_server_units() -> None:
    rendered = render(params("system", listen_address="[::1]:9300", interval_seconds=2.5,
                             web_config="/etc/agent-exporter/web.yml"))
    service, socket = rendered[units.SERVER_SERVICE], rendered[units.SERVER_SOCKET]
    assert values_of(service, "ExecStart") == [
        f"{EXE} serve --textfile-dir /var/lib/prometheus/node-exporter --textfile-name agents.prom --interval 2.5 "
        "--web.config.file /etc/agent-exporter/web.yml"]
    assert values_of(service, "Requires") == [units.SERVER_SOCKET]
    assert values_of(service, "PrivateNetwork") == ["yes"]  # the socket comes from systemd
    assert "[Install]" not in service.splitlines()
    assert values_of(socket, "ListenStream") == ["[::1]:9300"]
    assert values_of(socket, "WantedBy") == ["sockets.target"]
    # the server needs no D-Bus: it keeps a dynamic user of its own, not the writer's
    assert values_of(service, "DynamicUser") == ["yes"] and not values_of(service, "User")


def test_timer() -> None:
    text = render(params(interval_seconds=2))[units.WRITER_TIMER]
    assert values_of(text, "OnBootSec") == ["2s"]
    assert values_of(text, "OnUnitActiveSec") == ["2s"]
    assert values_of(text, "AccuracySec") == ["1s"]
    assert values_of(text, "WantedBy") == ["timers.target"]
    assert values_of(render(params())[units.WRITER_TIMER], "OnUnitActiveSec") == ["10s"]
    # the shortest interval starts the writer 10 times in 10 s: systemd's default start limit is 5
    assert values_of(render(params(interval_seconds=1))[units.WRITER_SERVICE], "StartLimitIntervalSec") == ["0"]


def test_python_m_command() -> None:
    text = render(params(command=("/usr/bin/python3", "-m", "textfile_writer")))[units.WRITER_SERVICE]
    assert values_of(text, "ExecStart")[0].startswith("/usr/bin/python3 -m textfile_writer write ")


# ---------------------------------------------------------------------------------------------
# What the sandbox must not hide


def test_sandbox_for_plain_paths() -> None:
    assert sandbox_for(["/opt/agent-exporter/bin/agent-exporter", "/var/lib/prometheus/node-exporter"]) == \
        units.Sandbox("yes", "", True, "")


def test_sandbox_for_an_interpreter_in_root() -> None:
    box = sandbox_for(["/opt/venv/bin/agent-exporter", "/root/.pyenv/versions/3.11.7/bin/python3.11"])
    assert box.protect_home == "read-only"
    assert "/root/.pyenv/versions/3.11.7/bin/python3.11" in box.protect_home_note
    assert box.private_tmp
    text = render(params(protect_home=box.protect_home, protect_home_note=box.protect_home_note))[units.WRITER_SERVICE]
    assert values_of(text, "ProtectHome") == ["read-only"]
    assert box.protect_home_note in text.splitlines()


@pytest.mark.parametrize("path", ["/home/ann/venv/bin/agent-exporter", "/run/user/1000", "/root"])
def test_sandbox_for_home_paths(path: str) -> None:
    assert sandbox_for([path]).protect_home == "read-only"


def test_sandbox_for_tmp() -> None:
    box = sandbox_for(["/tmp/x/textfile", "/var/tmpfoo"])
    assert not box.private_tmp and "/tmp/x/textfile" in box.private_tmp_note
    assert box.protect_home == "yes"
    assert "/var/tmpfoo" not in box.private_tmp_note  # a prefix of a name is not a parent directory
    text = render(params("user", private_tmp=False, private_tmp_note=box.private_tmp_note))[units.WRITER_SERVICE]
    assert values_of(text, "PrivateTmp") == ["no"]


# ---------------------------------------------------------------------------------------------
# Values that cannot go into a unit


@pytest.mark.parametrize(("change", "message"), [
    ({"textfile_dir": "relative/dir"}, "--textfile-dir: must be an absolute path"),
    ({"textfile_dir": "/var/lib/with space"}, "--textfile-dir: '/var/lib/with space' has characters"),
    ({"config": "/etc/a%b.yml"}, "--config: '/etc/a%b.yml' has characters"),
    ({"command": ("bin/agent-exporter",)}, "the agent-exporter executable: must be an absolute path"),
    ({"listen_address": "localhost:9200"}, "the host must be an IP address"),
    ({"listen_address": "127.0.0.1"}, "expected HOST:PORT"),
    ({"listen_address": "127.0.0.1:70000"}, "expected HOST:PORT"),
    ({"listen_address": "::1:9200"}, "write an IPv6 address in brackets"),
    ({"interval_seconds": 0.5}, "--interval: must be from 1 to 86400 seconds"),
    ({"textfile_name": "agents.txt"}, "--textfile-name: must end in .prom"),  # the rule config.py applies too
    ({"scope": "global"}, "--scope: must be 'user' or 'system'"),
])
def test_bad_values_are_refused(change: dict[str, object], message: str) -> None:
    with pytest.raises(UnitError, match=re.escape(message)):
        render(params(**change))  # type: ignore[arg-type]


def test_listen_addresses_that_work() -> None:
    for address in ("127.0.0.1:9200", "0.0.0.0:9200", "[::]:9200", "[::1]:1"):
        assert values_of(render(params(listen_address=address))[units.SERVER_SOCKET], "ListenStream") == [address]


# ---------------------------------------------------------------------------------------------
# Our own services are never agents


def test_own_services_are_not_discovered() -> None:
    assert {units.WRITER_SERVICE, units.SERVER_SERVICE} == systemd.OWN_SERVICES

    def runner(argv: object, timeout: float) -> Completed:
        args = tuple(argv)  # type: ignore[arg-type]
        listing = ("agent-exporter.service loaded inactive dead x\nagent-exporter-server.service loaded active "
                   "running x\nagent-one.service loaded active running x\n")
        if "list-units" in args:
            return Completed(args, 0, listing, "")
        return Completed(args, 0, "agent-exporter.service static\nagent-two.service disabled\n", "")

    found = systemd.discover("user", ["agent-*.service"], runner, systemd.Budget.start(5))
    assert found == ["agent-one.service", "agent-two.service"]


# ---------------------------------------------------------------------------------------------
# systemd's own verdict


VARIANTS = [("system", "yes", True), ("system", "read-only", True), ("user", "read-only", True),
            ("user", "read-only", False), ("user", "yes", True)]


def write_variant(tmp_path: Path, scope: str, protect_home: str, private_tmp: bool) -> Path:
    directory = tmp_path / f"{scope}-{protect_home}-{private_tmp}"
    directory.mkdir()
    # the real executable: verify checks that ExecStart= names an executable file
    p = params(scope, command=own_command(), protect_home=protect_home,
               protect_home_note="# note" if protect_home != "yes" else "", private_tmp=private_tmp)
    for name, text in render(p).items():
        (directory / name).write_text(text)
    return directory


def analyze(scope: str, tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    tool = need("systemd-analyze")
    runtime = tmp_path / "runtime"  # a user-scope analysis wants an XDG_RUNTIME_DIR
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {**os.environ, "LC_ALL": "C", "SYSTEMD_LOG_COLOR": "0", "XDG_RUNTIME_DIR": str(runtime)}

    def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([tool, f"--{scope}", *args], capture_output=True, text=True, env=env, cwd=cwd,
                              timeout=120, check=False)
    return run


@pytest.mark.parametrize(("scope", "protect_home", "private_tmp"), VARIANTS)
def test_systemd_analyze_verify_is_clean(tmp_path: Path, scope: str, protect_home: str, private_tmp: bool) -> None:
    directory = write_variant(tmp_path, scope, protect_home, private_tmp)
    done = analyze(scope, tmp_path)("verify", *(f"./{n}" for n in units.UNIT_NAMES), cwd=directory)
    assert done.returncode == 0, done.stderr
    assert done.stdout + done.stderr == "", "systemd-analyze verify said something:\n" + done.stdout + done.stderr


def exposure(run: Callable[..., subprocess.CompletedProcess[str]], directory: Path, unit: str) -> float:
    done = run("security", "--offline=true", f"./{unit}", cwd=directory)
    found = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", done.stdout)
    assert found, done.stdout + done.stderr
    return float(found.group(1))


@pytest.mark.parametrize("protect_home", ["yes", "read-only"])
def test_system_exposure_limits(tmp_path: Path, protect_home: str) -> None:
    directory = write_variant(tmp_path, "system", protect_home, True)
    run = analyze("system", tmp_path)
    for unit, limit in MAX_EXPOSURE.items():
        level = exposure(run, directory, unit)
        assert 0 < level <= limit, f"{unit} ({protect_home}): exposure {level} above {limit}"


def test_system_exposure_sees_a_weakened_unit(tmp_path: Path) -> None:
    """The measurement is live: without the unprivileged user and the network namespace the number rises."""
    directory = write_variant(tmp_path, "system", "yes", True)
    run = analyze("system", tmp_path)
    strong = exposure(run, directory, units.WRITER_SERVICE)
    weak = directory / units.WRITER_SERVICE
    weak.write_text(re.sub(r"^(User|Group|PrivateNetwork|IPAddressDeny)=.*\n", "", weak.read_text(), flags=re.M))
    assert exposure(run, directory, units.WRITER_SERVICE) > max(strong + 0.5, MAX_EXPOSURE[units.WRITER_SERVICE])


def test_user_exposure(tmp_path: Path) -> None:
    """systemd-analyze rates user units as if root ran them (no DynamicUser= in a user manager);
    this keeps the user variants from getting weaker than they are now."""
    directory = write_variant(tmp_path, "user", "read-only", True)
    run = analyze("user", tmp_path)
    for unit in MAX_EXPOSURE:
        assert exposure(run, directory, unit) <= 1.0, unit
