"""unitfiles.installed() against the real `systemctl --user list-unit-files`, on a search path laid
out with every kind of entry list-unit-files tells apart.

A manager of this module's own (the session's fleet manager is left alone: these units would show
up in its pattern tests). Its XDG_DATA_HOME's unit directory is a symbolic link to a directory, and
XDG_DATA_DIRS puts a FIFO and a regular file where two unit directories would be; the real
/usr/share/systemd/user and /usr/lib/systemd/user stay in the path. installed() runs inside the
manager's mount namespace, where its runtime directory (transient units, generators) is mounted.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from devtools.harness import UserManager, stop_quietly
from textfile_writer.unitfiles import installed, parse_unit_path

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
LONG = "agent-" + "l" * (255 - len("agent-") - len(".service")) + ".service"  # 255 bytes: valid
PATTERNS: list[list[str]] = [
    ["agent-*"],
    ["*"],
    ["agent-[a-c]*.service"],
    ["*@*"],
    [],                                  # no pattern: every unit file
    ["agent-*.socket", "agent-t*", "dbus*"],
    ["agent-we\\x20*"],                  # FNM_NOESCAPE: the backslash is itself
    ["agent-[!a-m]*"],
    ["agent-?????.service"],
    ["agent-[[:digit:]]*", "*.timer"],
    ["nothing-*", "[["],                 # nothing matches: list-unit-files exits 1, prints nothing
]


def lay_out(manager: UserManager, unit_path: Sequence[str]) -> None:
    d = manager.unit_dir
    service = "[Unit]\nDescription=unitfiles test\n[Service]\nExecStart=/bin/sleep infinity\n"
    for name in ("agent-alpha.service", "agent-beta.service", "agent-c1.service", "agent-zulu.service",
                 "agent-we\\x20ird.service", "agent-t@.service", "agent-alpha.socket", "agent-alpha.timer",
                 "agent-alpha.target", "agent-x.slice", "agent-x.path", "agent-x.mount", "agent-x.swap",
                 "agent-x.automount", "agent-x.device", "agent-x.scope", "agent-2.service", LONG):
        (d / name).write_text(service)
    (d / "agent-alias.service").symlink_to("agent-alpha.service")
    (d / "agent-t@one.service").symlink_to("agent-t@.service")
    (d / "agent-t@two.service").symlink_to(d / "agent-t@.service")
    (d / "agent-dangling.service").symlink_to("/nonexistent/agent-dangling.service")
    (d / "agent-loop.service").symlink_to("agent-loop.service")
    (d / "agent-linkdir.service").symlink_to(d)
    (d / "agent-alpha.service.d").mkdir()
    (d / "agent-alpha.service.d" / "x.conf").write_text("[Service]\n")
    (d / "agent-alpha.service.wants").mkdir()
    (d / "agent-alpha.service.wants" / "agent-wanted.service").symlink_to(d / "agent-beta.service")
    (d / "default.target.wants").mkdir()
    (d / "agent-dir.service").mkdir()
    os.mkfifo(d / "agent-fifo.service")
    for name in (".agent-hidden.service", "agent-bad name.service", "@agent.service", "agent-x.Service",
                 "agent-x.service~", "agent-x.service.bak", "agent-é.service", os.fsdecode(b"agent-\xff.service")):
        (d / name).write_text(service)
    # the data home's unit directory, reached through a symbolic link
    linked = manager.base / "linked-units"
    (linked / "agent-data.service").write_text(service)
    (linked / "agent-alpha.service").write_text(service)   # also in the config directory: listed once
    manager.systemctl("mask", "agent-masked.service")      # a link to /dev/null in the config directory
    manager.run(["systemd-run", "--user", "--unit=agent-transient", "--", "/bin/sleep", "infinity"])
    generator = next(p for p in unit_path if p.endswith("/systemd/generator.late"))
    manager.run(["sh", "-ec", f'mkdir -p "{generator}"; printf "[Service]\\nExecStart=/bin/true\\n" '
                 f'> "{generator}/agent-generated.service"'])


@pytest.fixture(scope="module")
def manager(sandbox_prerequisites: None) -> Iterator[UserManager]:
    m = UserManager()
    try:
        data, linked = m.base / "data", m.base / "linked-units"
        (data / "systemd").mkdir(parents=True)
        linked.mkdir()
        (data / "systemd" / "user").symlink_to(linked)
        (m.base / "fifo-data" / "systemd").mkdir(parents=True)
        os.mkfifo(m.base / "fifo-data" / "systemd" / "user")
        (m.base / "file-data" / "systemd").mkdir(parents=True)
        (m.base / "file-data" / "systemd" / "user").write_text("")
        m.env["XDG_DATA_HOME"] = str(data)
        m.env["XDG_DATA_DIRS"] = f"{m.base}/fifo-data:{m.base}/file-data:/usr/local/share:/usr/share"
        m.start()
        lay_out(m, unit_path(m))
        yield m
    finally:
        stop_quietly(m)


def unit_path(manager: UserManager) -> tuple[str, ...]:
    return parse_unit_path(manager.systemctl("show", "--property=UnitPath").stdout)


def listed_by_systemctl(manager: UserManager, patterns: Sequence[str]) -> list[str]:
    done = manager.systemctl("list-unit-files", "--no-legend", "--full", "--", *patterns, check=False)
    if done.returncode == 1 and not done.stdout.strip() and not done.stderr.strip():
        return []  # systemd 252's answer when nothing matches
    assert done.returncode == 0, done.stderr
    return sorted(line.split()[0] for line in done.stdout.splitlines() if line.strip())


def installed_in_namespace(manager: UserManager, path: Sequence[str], patterns: Sequence[str]) -> list[str]:
    """installed() run where the manager reads its files: inside its mount namespace."""
    code = ("import json, sys\nfrom textfile_writer.unitfiles import installed\n"
            "path, patterns = json.load(sys.stdin)\nprint(json.dumps(installed(path, patterns)))\n")
    done = manager.run([sys.executable, "-c", code], env={"PYTHONPATH": str(REPO)},
                       input=json.dumps([list(path), list(patterns)]))
    result: list[str] = json.loads(done.stdout)
    return result


def test_the_search_path_has_what_the_test_needs(manager: UserManager) -> None:
    path = unit_path(manager)
    assert str(manager.unit_dir) in path
    assert f"{manager.base}/data/systemd/user" in path
    assert f"{manager.base}/fifo-data/systemd/user" in path
    assert any(p.endswith("/systemd/transient") for p in path)
    assert any(p.endswith("/systemd/generator.late") for p in path)


@pytest.mark.parametrize("patterns", PATTERNS, ids=lambda p: " ".join(p) or "(none)")
def test_installed_equals_list_unit_files(manager: UserManager, patterns: list[str]) -> None:
    path = unit_path(manager)
    assert installed_in_namespace(manager, path, patterns) == listed_by_systemctl(manager, patterns)


def test_every_kind_of_entry_is_decided_as_systemd_decides(manager: UserManager) -> None:
    """The comparison above covers these: listed and not listed, by list-unit-files itself."""
    listed = set(listed_by_systemctl(manager, ["agent-*", "@agent*", ".agent*"]))
    for name in ("agent-alpha.service", "agent-alias.service", "agent-masked.service", "agent-transient.service",
                 "agent-generated.service", "agent-data.service", "agent-dangling.service", "agent-loop.service",
                 "agent-linkdir.service", "agent-t@.service", "agent-t@one.service", "agent-t@two.service",
                 "agent-alpha.socket", "agent-x.scope", "agent-we\\x20ird.service", LONG):
        assert name in listed, name
    for name in ("agent-alpha.service.d", "agent-alpha.service.wants", "agent-wanted.service", "agent-dir.service",
                 "agent-fifo.service", ".agent-hidden.service", "@agent.service", "agent-x.Service",
                 "agent-x.service~", "agent-bad"):
        assert name not in listed, name
    assert installed_in_namespace(manager, unit_path(manager), ["agent-*", "@agent*", ".agent*"]) == sorted(listed)


def test_the_host_view_differs_only_where_the_namespace_mounts(manager: UserManager) -> None:
    # Outside the namespace the runtime directory is the empty directory under the tmpfs: the
    # transient and generated units are not there. A reminder that the writer reads the search
    # path where the manager does (the timer runs it in the manager's namespace, as here).
    outside = installed(unit_path(manager), ["agent-*"])
    inside = installed_in_namespace(manager, unit_path(manager), ["agent-*"])
    assert set(inside) - set(outside) == {"agent-transient.service", "agent-generated.service"}


def test_a_unit_file_added_later_is_seen(manager: UserManager) -> None:
    path = unit_path(manager)
    (manager.unit_dir / "agent-late.service").write_text("[Service]\nExecStart=/bin/true\n")
    try:
        assert "agent-late.service" in installed_in_namespace(manager, path, ["agent-l*"])
        assert installed_in_namespace(manager, path, ["agent-l*"]) == listed_by_systemctl(manager, ["agent-l*"])
    finally:
        (manager.unit_dir / "agent-late.service").unlink()
