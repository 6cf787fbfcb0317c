"""unitfiles.py on temporary directories: which entries list-unit-files would list, the UnitPath
parser, and the directories' key. tests/integration/test_unitfiles_vs_systemctl.py holds the same
rules against a real manager's list-unit-files."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from textfile_writer.errors import SystemdError
from textfile_writer.unitfiles import UNIT_NAME_MAX, dirs_key, installed, parse_unit_path, valid_unit_name


@pytest.mark.parametrize(("name", "valid"), [
    ("agent-a.service", True),
    ("a.socket", True), ("a.timer", True), ("a.target", True), ("a.slice", True), ("a.scope", True),
    ("a.mount", True), ("a.automount", True), ("a.swap", True), ("a.path", True), ("a.device", True),
    ("a@.service", True),                 # template
    ("a@b.service", True),                # instance
    ("a@b@c.service", True),              # only the first @ counts
    ("agent-we\\x20ird.service", True),   # backslash and colon are allowed characters
    ("a:b_c-d.e.service", True),
    ("@a.service", False),                # empty template prefix
    ("@.service", False),
    (".service", False),                  # nothing before the dot
    ("a.servic", False), ("a.Service", False), ("a", False), ("a.", False), ("", False),
    ("a b.service", False), ("a/b.service", False), ("a+b.service", False), ("é.service", False),
    ("a\udcff.service", False),           # an undecodable byte, as os.listdir spells it
    ("a.service~", False), ("a.service.bak", False), ("a.service.d", False), ("a.service.wants", False),
    ("a" * (UNIT_NAME_MAX - 1 - len(".service")) + ".service", True),
    ("a" * (UNIT_NAME_MAX - len(".service")) + ".service", False),
])
def test_valid_unit_name(name: str, valid: bool) -> None:
    assert valid_unit_name(name) is valid


def test_what_is_listed(tmp_path: Path) -> None:
    d = tmp_path / "units"
    d.mkdir()
    (d / "agent-a.service").write_text("[Service]\n")
    (d / "agent-alias.service").symlink_to("agent-a.service")
    (d / "agent-masked.service").symlink_to("/dev/null")
    (d / "agent-dangling.service").symlink_to(tmp_path / "nowhere")
    (d / "agent-loop.service").symlink_to("agent-loop.service")
    (d / "agent-linkdir.service").symlink_to(tmp_path)     # a link to a directory: DT_LNK, listed
    (d / "agent-t@.service").write_text("")
    (d / "agent-t@one.service").symlink_to("agent-t@.service")
    (d / "agent-a.socket").write_text("")
    (d / "agent-a.service.d").mkdir()
    (d / "agent-a.service.wants").mkdir()
    (d / "agent-dir.service").mkdir()                     # a directory with a unit's name: not listed
    os.mkfifo(d / "agent-fifo.service")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(d / "agent-sock.service"))
        (d / ".agent-hidden.service").write_text("")
        (d / "agent-bad name.service").write_text("")
        (d / "@agent.service").write_text("")
        (d / "agent-a.service~").write_text("")
        (d / os.fsdecode(b"agent-\xff.service")).write_text("")
        assert installed([str(d)], ["agent-*"]) == [
            "agent-a.service", "agent-a.socket", "agent-alias.service", "agent-dangling.service",
            "agent-linkdir.service", "agent-loop.service", "agent-masked.service", "agent-t@.service",
            "agent-t@one.service",
        ]
        assert installed([str(d)], ["*@*"]) == ["agent-t@.service", "agent-t@one.service"]
        assert installed([str(d)], ["agent-[a-c]*.service"]) == ["agent-a.service", "agent-alias.service"]
        assert installed([str(d)], []) == installed([str(d)], ["*"])
        assert installed([str(d)], ["nothing-*"]) == []


def test_search_path_order_and_odd_entries(tmp_path: Path) -> None:
    first, second, real = tmp_path / "first", tmp_path / "second", tmp_path / "real"
    for d in (first, second, real):
        d.mkdir()
    (first / "x.service").write_text("")
    (second / "x.service").mkdir()       # the same name as a directory further on: still listed once
    (second / "y.service").write_text("")
    (real / "z.service").write_text("")
    (tmp_path / "linked").symlink_to(real)  # a search path entry that is a link: followed
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "file").write_text("")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    path = [str(first), str(tmp_path / "absent"), str(tmp_path / "fifo"), str(tmp_path / "file"),
            str(tmp_path / "loop"), "relative/dir", "", "/nul\0byte", str(second), str(tmp_path / "linked")]
    done: list[list[str]] = []
    worker = threading.Thread(target=lambda: done.append(installed(path, ["*"])), daemon=True)
    worker.start()
    worker.join(10)
    assert done == [["x.service", "y.service", "z.service"]], "a FIFO in the search path must not block"


def test_a_large_directory(tmp_path: Path) -> None:
    for i in range(5000):
        (tmp_path / f"agent-{i:05d}.service").touch()
        (tmp_path / f"other-{i:05d}.service").touch()
    start = time.monotonic()
    names = installed([str(tmp_path)], ["agent-*"])
    assert len(names) == 5000 and names[0] == "agent-00000.service"
    assert time.monotonic() - start < 5


@pytest.mark.parametrize(("text", "expected"), [
    ("UnitPath=/a /b/c\n", ("/a", "/b/c")),
    ("UnitPath=\n", ()),
    ("Other=1\nUnitPath=/a\n", ("/a",)),
    # what systemd 252 printed for XDG_DATA_HOME="/tmp/a b\\c\"d'e\té$f" (shell_maybe_quote)
    ('UnitPath=/x "/tmp/a b\\\\c\\"d\'e\\té\\$f/systemd/user" "/tmp/x y/systemd/user" /usr/lib/systemd/user\n',
     ("/x", "/tmp/a b\\c\"d'e\té$f/systemd/user", "/tmp/x y/systemd/user", "/usr/lib/systemd/user")),
    ('UnitPath="/tmp/\\377\\303\\251\\n"\n', (os.fsdecode(b"/tmp/\xff\xc3\xa9\n"),)),
])
def test_parse_unit_path(text: str, expected: tuple[str, ...]) -> None:
    assert parse_unit_path(text) == expected


def test_parse_unit_path_without_the_property() -> None:
    with pytest.raises(SystemdError, match="no UnitPath= line"):
        parse_unit_path("Id=x.service\n")


def later() -> int:
    """A clock an hour ahead: every directory changed in this test is settled by then."""
    return time.time_ns() + 3600 * 10**9


def test_dirs_key_sees_every_change_of_names(tmp_path: Path) -> None:
    d = tmp_path / "units"
    d.mkdir()
    (d / "a.service").write_text("")
    path = [str(d), str(tmp_path / "absent")]
    steps = [
        lambda: (d / "b.service").write_text(""),                  # added
        lambda: (d / "b.service").rename(d / "c.service"),         # renamed
        lambda: (d / "c.service").unlink(),                        # removed
        lambda: (d / "l.service").symlink_to("/dev/null"),         # a link added
        lambda: (d / "a.service.d").mkdir(),                       # a subdirectory added
        lambda: d.chmod(0o700),                                    # readable by others or not
        lambda: (tmp_path / "absent").mkdir(),                     # a directory created
        lambda: (tmp_path / "absent").rmdir(),                     # and removed
    ]
    for step in steps:
        # Dated back first: a change within the same timestamp tick as the last one still moves mtime
        # (a live directory gets that guarantee from SETTLE_NS instead).
        old = time.time() - 3600
        os.utime(d, (old, old))
        before = dirs_key(path, later)
        assert dirs_key(path, later) == before
        step()
        assert dirs_key(path, later) != before


def test_dirs_key_does_not_see_contents(tmp_path: Path) -> None:
    (tmp_path / "a.service").write_text("")
    before = dirs_key([str(tmp_path)], later)
    (tmp_path / "a.service").write_text("[Service]\nExecStart=/bin/true\n")
    assert dirs_key([str(tmp_path)], later) == before


def test_dirs_key_follows_links(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    link = tmp_path / "link"
    link.symlink_to(a)
    (tmp_path / "file").write_text("")
    os.mkfifo(tmp_path / "fifo")
    path = [str(link), str(tmp_path / "absent"), str(tmp_path / "file"), str(tmp_path / "fifo"), "/nul\0"]
    key = dirs_key(path, later)
    assert key[1:] == tuple((p, None) for p in path[1:])
    assert key[0][:3] == (str(link), os.stat(a).st_dev, os.stat(a).st_ino)
    link.unlink()
    link.symlink_to(b)                   # the link now names another directory
    assert dirs_key(path, later)[0][2] == os.stat(b).st_ino


def test_a_recent_change_makes_a_key_equal_to_no_other(tmp_path: Path) -> None:
    d = tmp_path / "units"
    d.mkdir()
    (d / "a.service").write_text("")    # changed just now: within SETTLE_NS
    first, second = dirs_key([str(d)]), dirs_key([str(d)])
    assert first[-1][0] == "unsettled" and first != second
    assert dirs_key([str(d)], later) == dirs_key([str(d)], later)
