"""installer.py: what install changes, that a second run changes nothing, and that uninstall undoes exactly it.

systemctl, getent, useradd, userdel, groupadd and groupdel are answered by a small stand-in behind the runner seam
(tests/install_fixtures.py; the real user manager is in tests/integration/install/); files, directories,
owners and modes are real.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from install_fixtures import GID, UID, FakeSystem, Out, in_order, mode_of, needs_root, request, tree

from textfile_writer.errors import InstallError
from textfile_writer.install import units
from textfile_writer.install.commands import Commands
from textfile_writer.install.installer import install
from textfile_writer.install.manifest import MANIFEST
from textfile_writer.install.plan import Refused, make_plan
from textfile_writer.install.request import (
    build_request,
    interpreter_of,
    needed_paths,
    own_command,
    service_user_problem,
)
from textfile_writer.install.uninstaller import uninstall

# ---------------------------------------------------------------------------------------------
# System scope: the group and the textfile directory


@needs_root
def test_system_install_creates_user_group_and_directory_and_uninstall_removes_them(tmp_path: Path) -> None:
    fake, out = FakeSystem(), Out()
    req = request(tmp_path, "system")
    assert install(req, now=True, runner=fake, say=out, check_access=False)
    textfile_dir = Path(req.textfile_dir)
    assert mode_of(textfile_dir) == (GID, 0o2775)
    assert textfile_dir.stat().st_uid == 0
    assert fake.groups == {"agent-exporter": GID}
    assert fake.users == {"agent-exporter": UID}
    assert sorted(os.listdir(req.unit_dir)) == sorted([*units.UNIT_NAMES, MANIFEST])
    manifest = json.loads((Path(req.unit_dir) / MANIFEST).read_text())
    assert manifest["group_created"] == "agent-exporter"
    assert manifest["user_created"] == "agent-exporter"
    assert manifest["dirs_created"] == [str(tmp_path / "var"), str(textfile_dir), req.unit_dir]
    writer = (Path(req.unit_dir) / units.WRITER_SERVICE).read_text()
    assert "User=agent-exporter\n" in writer and "Group=agent-exporter\n" in writer
    assert not re.search(r"^DynamicUser=", writer, re.M)
    useradd = ["useradd", "--system", "--gid", "agent-exporter", "--no-create-home", "--home-dir", "/nonexistent",
               "--shell", "/usr/sbin/nologin", "--comment", "agent-exporter writer", "--", "agent-exporter"]
    assert tuple(useradd) in fake.calls
    assert in_order(fake.verbs(), ["groupadd --system -- agent-exporter", " ".join(useradd), "daemon-reload",
                                   "enable agent-exporter.timer agent-exporter-server.socket",
                                   "start agent-exporter.timer agent-exporter-server.socket"])
    assert "groupadd --system -- agent-exporter" in fake.verbs()
    assert fake.active == set(units.ENABLED) and fake.enabled == set(units.ENABLED)
    assert f"  create textfile directory {textfile_dir} (and {tmp_path / 'var'}): mkdir -m 0755, chgrp " \
           "agent-exporter, chmod 2775 (root:agent-exporter 2775)" in out
    assert "  create system user agent-exporter (no home, no shell; the writer runs as it): " \
           "useradd --system --gid agent-exporter --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin " \
           "--comment 'agent-exporter writer' -- agent-exporter" in out

    # what the writer leaves in the directory goes too, and nothing else of the host's
    (textfile_dir / "agents.prom").write_text("x 1\n")
    (textfile_dir / ".agents.prom.lock").write_text("")
    out.clear()
    assert uninstall("system", req.unit_dir, runner=fake, say=out)
    assert not (tmp_path / "var").exists() and not Path(req.unit_dir).exists()
    assert fake.groups == {} and fake.users == {}
    assert fake.active == set() and fake.enabled == set()
    # systemd refuses to clean a failed unit before reset-failed
    assert in_order(fake.verbs(), ["disable --now agent-exporter.timer agent-exporter-server.socket",
                                   "reset-failed agent-exporter.service", "clean agent-exporter.service"])
    assert fake.verbs()[-3:] == ["userdel -- agent-exporter", "getent group -- agent-exporter",
                                 "groupdel -- agent-exporter"]
    assert "left in place" not in out.text, out.text


@needs_root
def test_uninstall_when_userdel_took_the_group_too(tmp_path: Path) -> None:
    fake, out = FakeSystem(userdel_takes_group=True), Out()
    req = request(tmp_path, "system")
    install(req, now=True, runner=fake, say=Out(), check_access=False)
    assert uninstall("system", req.unit_dir, runner=fake, say=out)
    assert fake.groups == {} and fake.users == {}
    assert fake.verbs()[-2:] == ["userdel -- agent-exporter", "getent group -- agent-exporter"]
    assert "  removed group agent-exporter (userdel did, with its user)" in out


@needs_root
@pytest.mark.parametrize(("failing", "left"), [("clean", 1), ("userdel", 2), ("groupdel", 1)])
def test_uninstall_that_leaves_something_fails(tmp_path: Path, failing: str, left: int) -> None:
    fake = FakeSystem()
    req = request(tmp_path, "system")
    install(req, now=True, runner=fake, say=Out(), check_access=False)
    fake.failing.add(failing)
    out = Out()
    with pytest.raises(InstallError, match=rf"uninstall left {left} thing\(s\) in place \(listed above\)"):
        uninstall("system", req.unit_dir, runner=fake, say=out)
    lines = [line for line in out if "left in place" in line]
    # a user that stays keeps its primary group too
    assert len(lines) == left and "it failed here" in lines[0], out.text
    assert not Path(req.unit_dir, MANIFEST).exists()  # the rest was still undone


@needs_root
def test_an_existing_user_is_used_and_kept(tmp_path: Path) -> None:
    fake, out = FakeSystem(users={"agent-exporter": 555}, groups={"agent-exporter": GID}), Out()
    req = request(tmp_path, "system")
    install(req, now=False, runner=fake, say=out, check_access=False)
    assert "the writer runs as agent-exporter (uid 555)" in out.text
    assert not [c for c in fake.calls if c[0] in ("useradd", "groupadd")]
    uninstall("system", req.unit_dir, runner=fake, say=Out())
    assert fake.users == {"agent-exporter": 555} and fake.groups == {"agent-exporter": GID}


@needs_root
def test_a_root_user_is_refused(tmp_path: Path) -> None:
    fake = FakeSystem(users={"agent-exporter": 0})
    with pytest.raises(Refused, match="user agent-exporter has uid 0; the writer must not run as root"):
        make_plan(request(tmp_path, "system"), False, Commands("system", fake), check_access=False)
    assert not [c for c in fake.calls if c[0] == "useradd"]


@needs_root
def test_debian_directory_is_made_group_writable_and_restored(tmp_path: Path) -> None:
    textfile_dir = tmp_path / "node-exporter"
    textfile_dir.mkdir(mode=0o755)
    os.chown(textfile_dir, 0, 0)
    (textfile_dir / "apt.prom").write_text("apt 1\n")  # another collector's file stays
    fake, out = FakeSystem(), Out()
    req = request(tmp_path, "system", textfile_dir=str(textfile_dir))
    install(req, now=False, runner=fake, say=out, check_access=False)
    assert mode_of(textfile_dir) == (GID, 0o2775)
    assert f"  textfile directory {textfile_dir}: group root -> agent-exporter, mode 0755 -> 2775: chgrp " \
           "agent-exporter, chmod 2775" in out
    assert "not started (use --now" in out.text
    assert fake.active == set()
    uninstall("system", req.unit_dir, runner=fake, say=Out())
    assert mode_of(textfile_dir) == (0, 0o755)
    assert os.listdir(textfile_dir) == ["apt.prom"]
    assert fake.groups == {}


@needs_root
def test_directory_writable_for_its_own_group_is_left_alone(tmp_path: Path) -> None:
    textfile_dir = tmp_path / "textfile"
    textfile_dir.mkdir()
    os.chown(textfile_dir, 0, 777)
    textfile_dir.chmod(0o2770)
    fake, out = FakeSystem(groups={"metrics": 777}), Out()
    req = request(tmp_path, "system", textfile_dir=str(textfile_dir))
    install(req, now=False, runner=fake, say=out, check_access=False)
    assert mode_of(textfile_dir) == (777, 0o2770)
    assert "the server (a dynamic user) cannot read the file" in out.text
    writer = (Path(req.unit_dir) / units.WRITER_SERVICE).read_text()
    assert "Group=metrics\n" in writer and "User=agent-exporter\n" in writer
    # the writer's user has a group of its own; the directory's group is untouched
    assert fake.groups == {"metrics": 777, "agent-exporter": GID}
    uninstall("system", req.unit_dir, runner=fake, say=Out())
    assert mode_of(textfile_dir) == (777, 0o2770) and fake.groups == {"metrics": 777} and fake.users == {}


@needs_root
def test_directory_of_another_group_that_cannot_write_is_refused(tmp_path: Path) -> None:
    textfile_dir = tmp_path / "textfile"
    textfile_dir.mkdir(mode=0o755)
    os.chown(textfile_dir, 0, 777)
    fake = FakeSystem(groups={"metrics": 777})
    req = request(tmp_path, "system", textfile_dir=str(textfile_dir))
    with pytest.raises(Refused, match="belongs to group metrics, which cannot write it"):
        install(req, now=False, runner=fake, say=Out(), check_access=False)
    assert not Path(req.unit_dir).exists() and mode_of(textfile_dir) == (777, 0o755)


@needs_root
def test_second_install_changes_nothing(tmp_path: Path) -> None:
    fake = FakeSystem()
    req = request(tmp_path, "system")
    install(req, now=True, runner=fake, say=Out(), check_access=False)
    before = {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in Path(req.unit_dir).iterdir()}
    calls = len(fake.calls)
    out = Out()
    assert not install(req, now=True, runner=fake, say=out, check_access=False)
    assert out[-1] == "nothing to change: already installed as asked"
    assert {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in Path(req.unit_dir).iterdir()} == before
    new = fake.verbs()[calls:]
    assert not [v for v in new if v.split()[0] in ("daemon-reload", "enable", "start", "restart", "groupadd",
                                                   "useradd")], new
    # and the first install's records survive the second: uninstall still removes the user and group
    uninstall("system", req.unit_dir, runner=fake, say=Out())
    assert fake.groups == {} and fake.users == {} and not (tmp_path / "var").exists()


@needs_root
def test_changed_interval_rewrites_and_restarts_only_what_changed(tmp_path: Path) -> None:
    fake = FakeSystem()
    install(request(tmp_path, "system"), now=True, runner=fake, say=Out(), check_access=False)
    fake.active.add(units.SERVER_SERVICE)  # a scrape has started it through its socket
    calls = len(fake.calls)
    out = Out()
    install(request(tmp_path, "system", interval_seconds=5.0), now=True, runner=fake, say=out, check_access=False)
    # the interval is in the timer and (for /health's staleness) in the server's command line
    assert [line for line in out if line.startswith("  write")] == [
        f"  write {tmp_path / 'units' / units.WRITER_TIMER}", f"  write {tmp_path / 'units' / units.SERVER_SERVICE}",
        f"  write {tmp_path / 'units' / MANIFEST} (what uninstall reverts)"]
    assert "OnUnitActiveSec=5s" in (tmp_path / "units" / units.WRITER_TIMER).read_text()
    new = fake.verbs()[calls:]
    assert "daemon-reload" in new and "restart agent-exporter.timer" in new
    assert "stop agent-exporter-server.service" in new  # its socket starts it again, changed
    # a server that is not running is not stopped
    fake.active.discard(units.SERVER_SERVICE)
    calls = len(fake.calls)
    install(request(tmp_path, "system", interval_seconds=6.0), now=True, runner=fake, say=Out(), check_access=False)
    new = fake.verbs()[calls:]
    assert "restart agent-exporter.timer" in new and "stop agent-exporter-server.service" not in new


# ---------------------------------------------------------------------------------------------
# Refusals: nothing is touched


def test_unreachable_systemd_is_refused_before_any_change(tmp_path: Path) -> None:
    req = request(tmp_path, "user")
    with pytest.raises(InstallError, match=r"systemd is not reachable in user scope \(System has not been booted"):
        install(req, now=True, runner=FakeSystem(reachable=False), say=Out())
    assert not tmp_path.joinpath("units").exists() and not tmp_path.joinpath("var").exists()


def test_unit_file_not_written_by_install_is_refused(tmp_path: Path) -> None:
    (tmp_path / "units").mkdir()
    (tmp_path / "units" / units.WRITER_TIMER).write_text("[Timer]\nOnCalendar=hourly\n")
    with pytest.raises(InstallError, match="was not written by agent-exporter install"):
        install(request(tmp_path, "user"), now=False, runner=FakeSystem(), say=Out())
    assert (tmp_path / "units" / units.WRITER_TIMER).read_text() == "[Timer]\nOnCalendar=hourly\n"
    assert os.listdir(tmp_path / "units") == [units.WRITER_TIMER]  # nothing else written either


def test_system_scope_checks_what_the_service_users_can_reach(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    script = private / "agent-exporter"
    script.write_text("#!/usr/bin/python3\n")
    script.chmod(0o755)
    problem = service_user_problem(request(tmp_path, "system", command=(str(script),)))
    assert problem is not None and "closed to other users" in problem
    with pytest.raises(InstallError, match=r"run as unprivileged users, which could not use"):
        install(request(tmp_path, "system", command=(str(script),)), now=False, runner=FakeSystem(), say=Out())
    assert not (tmp_path / "units").exists()


# ---------------------------------------------------------------------------------------------
# User scope


def test_user_install_and_uninstall(tmp_path: Path) -> None:
    fake, out = FakeSystem(), Out()
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_RUNTIME_DIR": "/run/user/1000",
           "XDG_STATE_HOME": str(tmp_path / "state")}
    req = build_request("user", env, textfile_dir=str(tmp_path / "textfile"), interval=2.0)
    assert req.unit_dir == str(tmp_path / "config" / "systemd" / "user")
    install(req, now=True, runner=fake, say=out)
    assert all(c[:2] == ("systemctl", "--user") for c in fake.calls)
    assert Path(req.textfile_dir).is_dir()
    writer = Path(req.unit_dir, units.WRITER_SERVICE).read_text()
    assert "DynamicUser" not in writer and "PrivateUsers=yes" in writer
    assert "ProtectHome=read-only" in writer  # /run/user/1000 holds the manager's socket

    # the writer's own state files go; a file of the user's beside them stays
    state = tmp_path / "config" / "agent-exporter"
    state.mkdir()
    (state / "cpu-state").write_text("x")
    (state / "config.yml").write_text("scope: user\n")
    uninstall("user", req.unit_dir, runner=fake, say=Out())
    assert tree(tmp_path) == ["config", "config/agent-exporter", "config/agent-exporter/config.yml"]


@pytest.mark.parametrize(("version", "home"), [("252.38-1~deb12u1", "config"), ("254", "state"), ("257.9", "state")])
def test_user_state_directory_follows_systemd(tmp_path: Path, version: str, home: str) -> None:
    """A user unit's StateDirectory= is in $XDG_CONFIG_HOME before systemd 254, $XDG_STATE_HOME since."""
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_STATE_HOME": str(tmp_path / "state")}
    fake = FakeSystem(version=version)
    req = build_request("user", env, textfile_dir=str(tmp_path / "textfile"))
    install(req, now=False, runner=fake, say=Out())
    state = tmp_path / home / "agent-exporter"
    assert json.loads(Path(req.unit_dir, MANIFEST).read_text())["state_dir"] == str(state)
    for other in ("config", "state"):  # the same file names in the other place are not ours
        (tmp_path / other / "agent-exporter").mkdir(parents=True, exist_ok=True)
        (tmp_path / other / "agent-exporter" / "cpu-state").write_text("x")
    uninstall("user", req.unit_dir, runner=fake, say=Out())
    assert not state.exists()
    other = tmp_path / ("state" if home == "config" else "config") / "agent-exporter" / "cpu-state"
    assert other.exists()


def test_uninstall_without_install(tmp_path: Path) -> None:
    out = Out()
    assert not uninstall("user", str(tmp_path), runner=FakeSystem(), say=out)
    assert out == [f"nothing to uninstall: no agent-exporter install in {tmp_path}"]
    (tmp_path / units.WRITER_SERVICE).write_text("[Service]\nExecStart=/bin/true\n")
    with pytest.raises(InstallError, match="were not installed by agent-exporter install"):
        uninstall("user", str(tmp_path), runner=FakeSystem(), say=out)
    assert (tmp_path / units.WRITER_SERVICE).exists()


def test_uninstall_says_when_a_unit_was_edited(tmp_path: Path) -> None:
    fake = FakeSystem()
    req = request(tmp_path, "user")
    install(req, now=False, runner=fake, say=Out())
    with open(Path(req.unit_dir, units.WRITER_SERVICE), "a") as f:
        f.write("Nice=5\n")
    out = Out()
    uninstall("user", req.unit_dir, runner=fake, say=out)
    assert f"  removed {Path(req.unit_dir, units.WRITER_SERVICE)} (it had been edited since install)" in out
    assert not Path(req.unit_dir).exists()


def test_config_supplies_the_defaults(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yml"
    cfg.write_text(f"scope: system\ntextfile_dir: {tmp_path}/tf\ntextfile_name: mine.prom\ninterval_seconds: 30\n")
    out = Out()
    req = build_request("user", {"XDG_CONFIG_HOME": str(tmp_path)}, config=str(cfg), say=out)
    assert (req.textfile_dir, req.textfile_name, req.interval_seconds) == (f"{tmp_path}/tf", "mine.prom", 30.0)
    assert "says scope system; the user units watch user units" in out.text
    req = build_request("user", {}, config=str(cfg), textfile_dir=str(tmp_path / "other"), interval=3.0)
    assert (req.textfile_dir, req.interval_seconds) == (str(tmp_path / "other"), 3.0)


def test_needed_paths_follow_the_interpreter_symlink(tmp_path: Path) -> None:
    link = tmp_path / "python"
    link.symlink_to(sys.executable)
    script = tmp_path / "agent-exporter"
    script.write_text(f"#!{link}\nprint()\n")
    assert interpreter_of(str(script)) == str(link)
    paths = needed_paths(request(tmp_path, "user", command=(str(script),)))
    assert str(link) in paths and os.path.realpath(sys.executable) in paths


def test_own_command(tmp_path: Path) -> None:
    script = tmp_path / "agent-exporter"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    assert own_command(str(script), "/nonexistent/bin/python") == (str(script),)
    venv_script = os.path.join(os.path.dirname(sys.executable), "agent-exporter")
    assert own_command("pytest", sys.executable) == (venv_script,)
    assert own_command("pytest", "/nonexistent/bin/python") == ("/nonexistent/bin/python", "-m", "textfile_writer")


# ---------------------------------------------------------------------------------------------
# The command line


def cli(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    runtime = tmp_path / "no-manager"
    runtime.mkdir(exist_ok=True)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    return subprocess.run([sys.executable, "-m", "textfile_writer", *args], capture_output=True, text=True, env=env,
                          timeout=60, check=False)


def test_cli_refuses_without_a_user_manager(tmp_path: Path) -> None:
    done = cli(["install", "--scope", "user", "--textfile-dir", str(tmp_path / "tf")], tmp_path)
    assert done.returncode == 1, done
    assert done.stderr.splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith("agent-exporter: error: systemd is not reachable in user scope (Failed to connect")
    assert not (tmp_path / "config").exists() and not (tmp_path / "tf").exists()


def test_cli_bad_value_is_one_line(tmp_path: Path) -> None:
    done = cli(["install", "--scope", "user", "--dry-run", "--web.listen-address", "localhost:9200"], tmp_path)
    assert done.returncode == 2
    assert done.stderr == ("agent-exporter: error: --web.listen-address: the host must be an IP address (systemd "
                           "does not resolve names for ListenStream=), got 'localhost'\n")


def test_cli_uninstall_with_nothing_installed(tmp_path: Path) -> None:
    done = cli(["uninstall", "--scope", "user"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("nothing to uninstall")
