"""plan.py: `install --dry-run` is the plan the real run carries out. It starts with every change,
changes nothing, refuses where install refuses (with the same one line and exit code), and the
real run says the same steps as it takes them. Also --no-server and the exclusive --user/--system.

The manager and the account tools are the stand-in of tests/install_fixtures.py; the command-line
tests that need a real manager are in tests/integration/install/.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cli_checks import assert_one_line_error
from install_fixtures import FakeSystem, Out, mode_of, needs_root, request, tree

from devtools.wheels import Venv
from textfile_writer.errors import AgentExporterError
from textfile_writer.install import units
from textfile_writer.install.installer import dry_run, install
from textfile_writer.install.manifest import MANIFEST
from textfile_writer.install.request import Request, build_request
from textfile_writer.install.uninstaller import uninstall

READ_ONLY = {"show", "is-enabled", "is-active", "getent"}
RUNS: tuple[Callable[..., object], ...] = (dry_run, install)  # (req, now, runner, say): the same arguments


def verbs_of(fake: FakeSystem) -> set[str]:
    return {v.split()[0] for v in fake.verbs()}


def user_request(tmp_path: Path, **kw: object) -> Request:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_RUNTIME_DIR": "/run/user/1000",
           "XDG_STATE_HOME": str(tmp_path / "state")}
    return build_request("user", env, textfile_dir=str(tmp_path / "textfile"), interval=2.0,
                         listen_address="127.0.0.1:9299", **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# The plan, then the same steps carried out


def test_user_dry_run_is_the_plan_install_carries_out(tmp_path: Path) -> None:
    fake = FakeSystem()
    req = user_request(tmp_path)
    dry = Out()
    dry_run(req, now=True, runner=fake, say=dry)
    assert tree(tmp_path) == [] and verbs_of(fake) <= READ_ONLY, fake.verbs()
    assert fake.enabled == set() and fake.active == set()

    unit_dir = Path(req.unit_dir)
    state = tmp_path / "config" / "agent-exporter"  # systemd 252: a user unit's StateDirectory=
    assert dry[0] == f"agent-exporter install --dry-run: user scope, units in {unit_dir}; nothing is changed"
    # every change first, in the order the real run makes them; the units after them
    assert dry.plan == [
        f"  create textfile directory {tmp_path / 'textfile'}: mkdir -m 0755",
        f"  state directory {state} (StateDirectory=, mode 0700): systemd creates it on the writer's first run; "
        f"it keeps the timer's CPU counters (agent-exporter status --state-dir {state}); uninstall removes it",
        f"  create unit directory {unit_dir} (and {tmp_path / 'config'}, {unit_dir.parent}): mkdir -m 0755",
        *(f"  write {unit_dir / name}" for name in units.UNIT_NAMES),
        f"  write {unit_dir / MANIFEST} (what uninstall reverts)",
        "  systemctl --user daemon-reload",
        "  systemctl --user enable -- agent-exporter.timer agent-exporter-server.socket",
        "  systemctl --user start -- agent-exporter.timer agent-exporter-server.socket",
        f"  the writer runs every 2s -> {tmp_path / 'textfile' / 'agents.prom'}; the server answers on "
        "http://127.0.0.1:9299/metrics",
    ]
    units_part = dry[len(dry.plan) + 1:]
    assert [line for line in units_part if line.startswith("# /")] == [f"# {unit_dir / n}" for n in units.UNIT_NAMES]
    texts = "\n".join(units_part)
    assert "\nOnUnitActiveSec=2s\n" in texts and "\nListenStream=127.0.0.1:9299\n" in texts

    real = Out()
    assert install(req, now=True, runner=fake, say=real)
    assert real[0] == f"agent-exporter install: user scope, units in {unit_dir}"
    assert real.plan == dry.plan
    assert fake.enabled == fake.active == set(units.ENABLED)
    for name in units.UNIT_NAMES:
        assert "[Unit]\n" in (unit_dir / name).read_text()

    # installed: the plan is empty, and the dry run says so before the units (all unchanged)
    again = Out()
    dry_run(req, now=True, runner=fake, say=again)
    assert again.plan[-1] == "nothing to change: already installed as asked"
    assert [line for line in again if line.startswith("# /")] == [
        f"# {unit_dir / n} (unchanged)" for n in units.UNIT_NAMES]


@needs_root
def test_system_dry_run_names_the_group_the_user_the_directory_mode_and_the_state(tmp_path: Path) -> None:
    """Debian's textfile directory, root:root 0755, becomes root:agent-exporter 2775."""
    textfile_dir = tmp_path / "node-exporter"
    textfile_dir.mkdir(mode=0o755)
    os.chown(textfile_dir, 0, 0)
    fake = FakeSystem()
    req = request(tmp_path, "system", textfile_dir=str(textfile_dir))
    dry = Out()
    dry_run(req, now=False, runner=fake, say=dry, check_access=False)
    assert mode_of(textfile_dir) == (0, 0o755) and fake.groups == {} and fake.users == {}
    state = "exists" if os.path.isdir("/var/lib/agent-exporter") else "systemd creates it on the writer's first run"
    assert verbs_of(fake) <= READ_ONLY, fake.verbs()
    assert dry.plan[:4] == [
        "  create system group agent-exporter (the writer's, to write the textfile directory): "
        "groupadd --system -- agent-exporter",
        "  create system user agent-exporter (no home, no shell; the writer runs as it): useradd --system --gid "
        "agent-exporter --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin --comment "
        "'agent-exporter writer' -- agent-exporter",
        f"  textfile directory {textfile_dir}: group root -> agent-exporter, mode 0755 -> 2775: "
        "chgrp agent-exporter, chmod 2775",
        f"  state directory /var/lib/agent-exporter (StateDirectory=, owner agent-exporter, mode 0700): {state}; "
        "it keeps the timer's CPU counters (agent-exporter status --state-dir /var/lib/agent-exporter); "
        "uninstall removes it",
    ]
    assert "  systemctl --system enable -- agent-exporter.timer agent-exporter-server.socket" in dry.plan
    assert "  not started (use --now, or: systemctl --system start agent-exporter.timer " \
           "agent-exporter-server.socket)" in dry.plan

    real = Out()
    install(req, now=False, runner=fake, say=real, check_access=False)
    assert real.plan == dry.plan
    assert mode_of(textfile_dir)[1] == 0o2775
    uninstall("system", req.unit_dir, runner=fake, say=Out())
    assert mode_of(textfile_dir) == (0, 0o755) and fake.groups == {} and fake.users == {}


# ---------------------------------------------------------------------------------------------
# Refusals: the dry run refuses where install would, with the same error, and nothing changes


def foreign_unit(tmp_path: Path, req: Request) -> None:
    Path(req.unit_dir).mkdir(parents=True)
    (Path(req.unit_dir) / units.WRITER_TIMER).write_text("[Timer]\nOnCalendar=hourly\n")


def textfile_dir_is_a_file(tmp_path: Path, req: Request) -> None:
    Path(req.textfile_dir).write_text("not a directory\n")


def textfile_dir_under_a_file(tmp_path: Path, req: Request) -> None:
    Path(req.textfile_dir).write_text("x")  # and the request asks for a directory below it


def other_scope_installed(tmp_path: Path, req: Request) -> None:
    Path(req.unit_dir).mkdir(parents=True)
    (Path(req.unit_dir) / MANIFEST).write_text(json.dumps({"format": 1, "scope": "system", "units": {}}))


REFUSALS: dict[str, tuple[Callable[[Path, Request], None], int, str]] = {
    "a unit file install did not write": (foreign_unit, 2, "exists and was not written by agent-exporter install"),
    "the textfile directory is a file": (textfile_dir_is_a_file, 2, "exists and is not a directory"),
    "a parent of it is a file": (textfile_dir_under_a_file, 2, "/textfile exists and is not a directory"),
    "a system-scope install is there": (other_scope_installed, 2, "records a system-scope install"),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_dry_run_refuses_where_install_would(tmp_path: Path, case: str) -> None:
    setup, code, message = REFUSALS[case]
    req = user_request(tmp_path)
    setup(tmp_path, req)
    if case == "a parent of it is a file":
        req = req._replace(textfile_dir=str(tmp_path / "textfile" / "node-exporter"))
    before = {p: p.read_bytes() if p.is_file() else None for p in tmp_path.rglob("*")}
    errors = []
    for run in RUNS:
        out = Out()
        with pytest.raises(AgentExporterError) as caught:
            run(req, True, FakeSystem(), out)
        assert out == []  # the reason comes first: nothing is said before it
        errors.append((caught.value.exit_code, str(caught.value)))
    assert errors[0] == errors[1]
    assert errors[0][0] == code and message in errors[0][1], errors[0]
    assert {p: p.read_bytes() if p.is_file() else None for p in tmp_path.rglob("*")} == before


def test_dry_run_refuses_when_the_manager_does_not_answer(tmp_path: Path) -> None:
    req = user_request(tmp_path)
    for run in RUNS:
        with pytest.raises(AgentExporterError, match=r"^systemd is not reachable in user scope") as caught:
            run(req, True, FakeSystem(reachable=False), Out())
        assert caught.value.exit_code == 1  # not a bad value: the host is not ready
    assert tree(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# --no-server


def test_no_server_installs_the_writer_and_its_timer_only(tmp_path: Path) -> None:
    fake = FakeSystem()
    req = user_request(tmp_path, server=False)
    out = Out()
    install(req, now=True, runner=fake, say=out)
    unit_dir = Path(req.unit_dir)
    assert sorted(os.listdir(unit_dir)) == sorted([*units.WRITER_UNITS, MANIFEST])
    assert fake.enabled == fake.active == {units.WRITER_TIMER}
    assert "  systemctl --user enable -- agent-exporter.timer" in out.plan
    assert out.plan[-1].endswith("; no server (--no-server): node_exporter's textfile collector reads the file")
    assert not [c for c in fake.calls if units.SERVER_SOCKET in c or units.SERVER_SERVICE in c]

    # uninstall asks systemd about the units it has, not the server's (systemctl would fail on them)
    calls = len(fake.calls)
    done = Out()
    assert uninstall("user", req.unit_dir, runner=fake, say=done)
    assert "left in place" not in done.text
    new = fake.verbs()[calls:]
    assert "disable --now agent-exporter.timer" in new and "stop agent-exporter.service" in new
    assert not [v for v in new if "agent-exporter-server" in v], new
    assert fake.enabled == fake.active == set()
    assert tree(tmp_path) == []  # the unit and textfile directories install created went too


def test_switching_to_no_server_and_back(tmp_path: Path) -> None:
    fake = FakeSystem()
    install(user_request(tmp_path), now=True, runner=fake, say=Out())
    fake.active.add(units.SERVER_SERVICE)
    unit_dir = Path(user_request(tmp_path).unit_dir)

    out = Out()
    dry_run(user_request(tmp_path, server=False), now=True, runner=fake, say=out)
    assert out.plan[out.plan.index(next(line for line in out.plan if "disable" in line)):][:4] == [
        "  systemctl --user disable --now -- agent-exporter-server.socket (--no-server)",
        "  systemctl --user stop -- agent-exporter-server.service (--no-server)",
        f"  remove {unit_dir / units.SERVER_SERVICE} (--no-server)",
        f"  remove {unit_dir / units.SERVER_SOCKET} (--no-server)",
    ]
    install(user_request(tmp_path, server=False), now=True, runner=fake, say=Out())
    assert sorted(os.listdir(unit_dir)) == sorted([*units.WRITER_UNITS, MANIFEST])
    assert set(json.loads((unit_dir / MANIFEST).read_text())["units"]) == set(units.WRITER_UNITS)
    assert fake.active == {units.WRITER_TIMER} and fake.enabled == {units.WRITER_TIMER}

    install(user_request(tmp_path), now=True, runner=fake, say=Out())  # and back: the server returns
    assert sorted(os.listdir(unit_dir)) == sorted([*units.UNIT_NAMES, MANIFEST])
    assert fake.active == fake.enabled == set(units.ENABLED)
    uninstall("user", str(unit_dir), runner=fake, say=Out())
    assert not unit_dir.exists() and not (tmp_path / "textfile").exists()


# ---------------------------------------------------------------------------------------------
# The command line


def cli(args: list[str], tmp_path: Path, exe: str | None = None, **extra: str) -> subprocess.CompletedProcess[str]:
    runtime = tmp_path / "no-manager"
    runtime.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_EXPORTER_")}
    env.update(XDG_RUNTIME_DIR=str(runtime), XDG_CONFIG_HOME=str(tmp_path / "config"))
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    env.update(extra)
    argv = [exe] if exe else [sys.executable, "-m", "textfile_writer"]
    return subprocess.run([*argv, *args], capture_output=True, text=True, env=env, timeout=60, check=False)


@pytest.mark.parametrize("args", [["install", "--user", "--system"], ["install", "--system", "--dry-run", "--user"],
                                  ["uninstall", "--system", "--user"]])
def test_user_and_system_exclude_each_other(tmp_path: Path, args: list[str]) -> None:
    done = cli(args, tmp_path)
    assert_one_line_error(done, 2, starts="--user and --system cannot be given together: choose one "
                                          f"(see 'agent-exporter {args[0]} --help')")
    assert done.stdout == ""
    assert tree(tmp_path) == ["no-manager"]


@pytest.mark.parametrize("args", [["install", "--scope", "system", "--user"],
                                  ["uninstall", "--system", "--scope", "user"]])
def test_a_deprecated_scope_flag_against_scope_is_a_usage_error(tmp_path: Path, args: list[str]) -> None:
    done = cli(args, tmp_path)
    flag = next(a for a in args if a in ("--user", "--system"))
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[-1].startswith(f"agent-exporter: error: --scope {args[args.index('--scope') + 1]} "
                                                   f"and {flag} cannot be given together: choose one")
    assert tree(tmp_path) == ["no-manager"]


@pytest.mark.parametrize(("args", "env", "warning"), [
    (["--user"], {}, "--user is deprecated: use --scope"),
    (["--user"], {"AGENT_EXPORTER_SCOPE": "system"}, "--user is deprecated: use --scope"),  # the command line wins
    ([], {"AGENT_EXPORTER_SCOPE": "user"}, None),
    (["--scope", "user"], {}, None)])
def test_scope_by_every_spelling(tmp_path: Path, args: list[str], env: dict[str, str], warning: str | None) -> None:
    """--scope (AGENT_EXPORTER_SCOPE) is the spelling; --user and --system, the spelling before 0.2, still
    work with a warning. The user scope shows in the refusal without a user manager."""
    done = cli(["install", *args, "--dry-run", "--textfile-dir", str(tmp_path / "tf")], tmp_path, **env)
    lines = done.stderr.splitlines()
    assert done.returncode == 1, done.stderr
    assert lines == [*([f"agent-exporter: warning: {warning}"] if warning else []), lines[-1]]
    assert lines[-1].startswith("agent-exporter: error: systemd is not reachable in user scope (")


def test_the_deprecated_system_flag_means_system_scope(tmp_path: Path) -> None:
    done = cli(["install", "--system", "--dry-run", "--unit-dir", str(tmp_path / "units"), "--textfile-dir",
                str(tmp_path / "tf")], tmp_path, AGENT_EXPORTER_SCOPE="user")
    assert done.stderr.splitlines()[0] == "agent-exporter: warning: --system is deprecated: use --scope"
    assert "system" in done.stderr.splitlines()[1] and "user scope" not in done.stderr, done.stderr


def test_cli_dry_run_without_a_manager_refuses_in_one_line_first(tmp_path: Path) -> None:
    done = cli(["install", "--scope", "user", "--dry-run", "--textfile-dir", str(tmp_path / "tf")], tmp_path)
    assert_one_line_error(done, 1, starts="systemd is not reachable in user scope (")
    assert done.stdout == ""
    assert tree(tmp_path) == ["no-manager"]


@pytest.fixture
def tmp_venv(public_venv: Venv) -> Iterator[str]:
    """agent-exporter in a venv under /tmp that every user can reach: its python and its command are
    under /tmp; the package itself is the public venv's (a .pth), as reachable as any."""
    base = Path(tempfile.mkdtemp(prefix="agent-exporter-tmp-venv-", dir="/tmp"))
    try:
        base.chmod(0o755)
        python = os.path.realpath(public_venv.python)
        subprocess.run([python, "-m", "venv", "--without-pip", str(base / "venv")], check=True, timeout=120)
        purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
        theirs = subprocess.run([public_venv.python, "-c", purelib], capture_output=True, text=True, check=True)
        mine = subprocess.run([str(base / "venv" / "bin" / "python"), "-c", purelib], capture_output=True, text=True,
                              check=True)
        Path(mine.stdout.strip(), "public.pth").write_text(theirs.stdout)
        script = base / "venv" / "bin" / "agent-exporter"
        body = Path(public_venv.exe).read_text().split("\n", 1)[1]
        script.write_text(f"#!{base / 'venv' / 'bin' / 'python'}\n{body}")
        script.chmod(0o755)
        yield str(script)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_system_units_refuse_a_venv_under_tmp(tmp_venv: str, tmp_path: Path) -> None:
    """docs/install.md's /tmp rule: the server's dynamic user never sees the host's /tmp, so system units
    refuse paths there; the dry run as the real run, before anything is asked or changed."""
    unit_dir = tmp_path / "units"
    reason = (f"the system units run as unprivileged users, which could not use {tmp_venv}: the server's dynamic "
              "user never sees the host's /tmp (DynamicUser= implies PrivateTmp=)")
    for extra in (["--dry-run"], []):
        done = cli(["install", "--scope", "system", "--unit-dir", str(unit_dir), *extra], tmp_path, exe=tmp_venv)
        assert_one_line_error(done, 2, starts=reason)
        assert done.stdout == ""
        assert not unit_dir.exists()
    # without the server the writer alone (a static user) may see /tmp: PrivateTmp=no, not a refusal
    done = cli(["install", "--scope", "system", "--no-server", "--dry-run", "--unit-dir", str(unit_dir)], tmp_path,
               exe=tmp_venv)
    if done.returncode == 0:  # a host whose PID 1 is systemd answers
        assert "PrivateTmp=no\n" in done.stdout and "DynamicUser" not in done.stdout
    else:
        assert_one_line_error(done, 1, starts="systemd is not reachable in system scope")


def test_system_units_refuse_a_textfile_directory_under_tmp(public_venv: Venv, tmp_path: Path) -> None:
    for extra in (["--dry-run"], []):
        done = cli(["install", "--scope", "system", "--unit-dir", str(tmp_path / "units"), "--textfile-dir",
                    "/tmp/textfile", *extra], tmp_path, exe=public_venv.exe)
        assert_one_line_error(done, 2, starts="the system units run as unprivileged users, which could not use "
                                              "/tmp/textfile: the server's dynamic user never sees the host's /tmp")
        assert not Path("/tmp/textfile").exists() and not (tmp_path / "units").exists()
    # a directory outside /tmp is not refused for where it is (this host may not run systemd)
    done = cli(["install", "--scope", "system", "--dry-run", "--unit-dir", str(tmp_path / "units")], tmp_path,
               exe=public_venv.exe)
    assert done.returncode == 0 or "systemd is not reachable in system scope" in done.stderr, done.stderr
