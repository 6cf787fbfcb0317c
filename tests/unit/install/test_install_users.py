"""The system writer unit for a configuration with `users:` (docs/multi-user.md): CAP_SETUID and
CAP_SETGID only, what setpriv needs let through, and systemd's own verdict on it.

Inside a booted system the same unit is rated, and run, by
tests/integration/install/test_users_scope.py.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest
from test_install_units import analyze, exposure, params, values_of

from textfile_writer.errors import UnitError
from textfile_writer.install import units
from textfile_writer.install.request import build_request, needed_paths, own_command
from textfile_writer.install.request import params as request_params
from textfile_writer.install.units import render

# systemd-analyze security's verdict on the writer with users, offline here and inside the booted
# throwaway host alike: 1.1 (0.4 without users: CAP_SETUID/CAP_SETGID and PrivateUsers=no cost the rest).
MAX_USERS_EXPOSURE = 1.1
USERS = ("alice", "bob")
RUN_USER_NOTE = "# read-only, not yes: the service needs /run/user (yes would hide /run/user)"


def users_params(**kw: object) -> units.UnitParams:
    return params("system", **{"users": USERS, "protect_home": "read-only", "protect_home_note": RUN_USER_NOTE,
                               **kw})


def test_only_the_writer_changes_and_only_in_these_lines() -> None:
    """(with the sandbox's ProtectHome= the same: install opens /run/user for users, test below)"""
    plain = render(params("system", protect_home="read-only", protect_home_note=RUN_USER_NOTE))
    with_users = render(users_params())
    for name in units.UNIT_NAMES:
        if name != units.WRITER_SERVICE:
            assert plain[name] == with_users[name], name
    changed = [line for line in difflib.unified_diff(plain[units.WRITER_SERVICE].splitlines(),
                                                     with_users[units.WRITER_SERVICE].splitlines(), lineterm="", n=0)
               if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert changed == [
        "-CapabilityBoundingSet=",
        "-AmbientCapabilities=",
        "+# CAP_SETUID CAP_SETGID only: the config's users (alice, bob) are asked as themselves (setpriv), each its "
        "own manager",
        "+CapabilityBoundingSet=CAP_SETUID CAP_SETGID",
        "+AmbientCapabilities=CAP_SETUID CAP_SETGID",
        "-PrivateUsers=yes",
        "+# no: setpriv switches to the config's users, whom a private user namespace does not map (setresuid "
        "fails with EINVAL)",
        "+PrivateUsers=no",
        "+SystemCallFilter=@setuid capset",
    ], changed


def test_the_writer_keeps_its_static_user() -> None:
    text = render(users_params())[units.WRITER_SERVICE]
    assert values_of(text, "User") == [units.DEFAULT_USER] and values_of(text, "NoNewPrivileges") == ["yes"]
    assert values_of(text, "SystemCallFilter") == ["@system-service", "~@privileged @resources", "@setuid capset"]


def test_users_need_the_system_manager() -> None:
    with pytest.raises(UnitError, match=r"--config: has users: a user manager cannot ask other users' managers"):
        render(params("user", users=USERS))


def test_a_user_name_that_a_unit_would_have_to_quote_is_refused() -> None:
    with pytest.raises(UnitError, match=r"users: 'a.b' cannot go into a unit file"):
        render(users_params(users=("a.b",)))


def test_install_reads_the_users_and_opens_run_user(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text("users: [alice, bob]\n")
    req = build_request("system", {}, config=str(config), textfile_dir=str(tmp_path), command=own_command())
    assert req.users == USERS
    assert "/run/user" in needed_paths(req)
    p = request_params(req)
    assert p.users == USERS and p.protect_home == "read-only" and "/run/user" in p.protect_home_note


def test_exposure_with_users(tmp_path: Path) -> None:
    directory = tmp_path / "units"
    directory.mkdir()
    for name, text in render(users_params(command=own_command())).items():
        (directory / name).write_text(text)
    run = analyze("system", tmp_path)
    verify = run("verify", f"./{units.WRITER_SERVICE}", cwd=directory)
    assert verify.returncode == 0 and verify.stdout + verify.stderr == "", verify.stdout + verify.stderr
    level = exposure(run, directory, units.WRITER_SERVICE)
    assert 0 < level <= MAX_USERS_EXPOSURE, level
    # the measurement is live: the whole bounding set instead of the two capabilities rates higher
    weak = directory / units.WRITER_SERVICE
    weak.write_text(weak.read_text().replace("CapabilityBoundingSet=CAP_SETUID CAP_SETGID\n", ""))
    assert exposure(run, directory, units.WRITER_SERVICE) > level + 0.5
