"""unitcache.py: the unit cache is used only when it is provably our own, of this boot and scope, and
whole; anything else is a reason (a full run), never an exception and never a number."""

from __future__ import annotations

import marshal
import os
import threading
import zlib
from pathlib import Path

import pytest

from textfile_writer.textfile import atomic_write
from textfile_writer.unitcache import FORMAT, MAX_BYTES, Cache, Entry, load

BOOT = "0123456789abcdef0123456789abcdef"
ENTRY = Entry({"Id": "agent-a.service", "NRestarts": "0", "ControlGroup": "/app.slice/agent-a.service"},
              (100, 101), ("MemoryCurrent", "TasksCurrent"))
CACHE = Cache(BOOT, "user", ("/etc/systemd/user", "/usr/lib/systemd/user"),
              (("agent-*.service",), (("/etc/systemd/user", 2049, 12, 1, 2), ("/usr/lib/systemd/user", None))),
              ("agent-a.service", "agent-b.service"), {"agent-a.service": ENTRY})


def written(tmp_path: Path, data: bytes, mode: int = 0o600) -> str:
    atomic_write(str(tmp_path), "unit-cache.marshal", data, mode)
    return str(tmp_path / "unit-cache.marshal")


def test_round_trip(tmp_path: Path) -> None:
    assert load(written(tmp_path, CACHE.dumps()), BOOT, "user") == (CACHE, None)


def test_missing_is_a_first_run(tmp_path: Path) -> None:
    cache, why = load(str(tmp_path / "none"), BOOT, "user")
    assert cache is None and why == "no unit cache yet"


@pytest.mark.parametrize(("boot", "scope"), [("another-boot", "user"), (BOOT, "system")])
def test_another_boot_or_scope_is_not_used(tmp_path: Path, boot: str, scope: str) -> None:
    cache, why = load(written(tmp_path, CACHE.dumps()), boot, scope)
    assert cache is None and why is not None and "another boot or scope" in why


def signed(payload: object) -> bytes:
    """A file as the writer makes it, around any payload (its CRC-32 right)."""
    data = marshal.dumps(payload)  # type: ignore[arg-type]
    return marshal.dumps((FORMAT, zlib.crc32(data), data))


def flipped(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x20]) + data[at + 1:]


_GOOD = CACHE.dumps()
_SHAPES = [  # the old format's shapes, and payloads that are not this writer's
    (BOOT, "user", (), None, (), {"a": ({"Id": 1}, (2,), ())}),  # a number
    (BOOT, "user", (), None, (), {"a": ({1: "x"}, (2,), ())}),  # a number key
    (BOOT, "user", (), None, (), {"a": ({}, ("2",), ())}),  # a PID as text
    (BOOT, "user", (), None, (), []),  # units not a mapping
]


@pytest.mark.parametrize("data", [
    b"", b"garbage", marshal.dumps(("agent-exporter-unit-cache/2", BOOT, "user", (), None, (), {})),
    marshal.dumps((FORMAT, BOOT, "user")),  # too short
    _GOOD[:-3],  # cut
    flipped(_GOOD, len(_GOOD) - 40),  # one bit of a unit's property flipped
    flipped(_GOOD, len(_GOOD) // 2),
    *(marshal.dumps((FORMAT, 0, marshal.dumps(shape))) for shape in _SHAPES),  # no checksum of ours
    marshal.dumps((FORMAT, zlib.crc32(b"x"), "x")),  # a payload that is not bytes
    signed((BOOT, "user")),  # too short inside
], ids=["empty", "garbage", "old format", "short", "cut", "flipped property", "flipped middle", "unsigned number",
        "unsigned number key", "unsigned pid text", "unsigned list", "text payload", "short payload"])
def test_corrupt_is_not_used(tmp_path: Path, data: bytes) -> None:
    cache, why = load(written(tmp_path, data), BOOT, "user")
    assert cache is None and why is not None
    assert "format" in why or "corrupt" in why


def test_the_checksum_is_what_proves_it_ours(tmp_path: Path) -> None:
    """The same payload is used with its CRC-32 and not without: the check is the checksum."""
    payload = (BOOT, "user", (), None, (), {"agent-a.service": tuple(ENTRY)})
    good, _ = load(written(tmp_path, signed(payload)), BOOT, "user")
    assert good is not None and good.units == {"agent-a.service": ENTRY}
    data = marshal.dumps(payload)
    bad, why = load(written(tmp_path, marshal.dumps((FORMAT, zlib.crc32(data) ^ 1, data))), BOOT, "user")
    assert bad is None and why is not None and "corrupt" in why


@pytest.mark.parametrize("mode", [0o620, 0o602, 0o666])
def test_writable_by_others_is_not_used(tmp_path: Path, mode: int) -> None:
    path = written(tmp_path, CACHE.dumps())
    os.chmod(path, mode)
    cache, why = load(path, BOOT, "user")
    assert cache is None and why is not None and "not ours alone" in why


def test_another_owner_is_not_used(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("chown to another user needs root")
    path = written(tmp_path, CACHE.dumps())
    os.chown(path, 65534, 65534)
    cache, why = load(path, BOOT, "user")
    assert cache is None and why is not None and "not ours alone" in why


def test_a_symlink_is_not_followed(tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.mkdir()
    target = written(good, CACHE.dumps())
    (tmp_path / "unit-cache.marshal").symlink_to(target)
    cache, why = load(str(tmp_path / "unit-cache.marshal"), BOOT, "user")
    assert cache is None and why is not None and "symbolic link" in why


def test_a_fifo_does_not_block(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "unit-cache.marshal", 0o600)
    answer: list[tuple[Cache | None, str | None]] = []
    reader = threading.Thread(target=lambda: answer.append(load(str(tmp_path / "unit-cache.marshal"), BOOT, "user")),
                              daemon=True)
    reader.start()
    reader.join(10)
    assert answer and answer[0][0] is None and "FIFO" in str(answer[0][1])


def test_a_huge_file_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "unit-cache.marshal"
    with open(path, "wb") as f:
        f.truncate(MAX_BYTES + 1)
    os.chmod(path, 0o600)
    cache, why = load(str(path), BOOT, "user")
    assert cache is None and why is not None and "larger than the limit" in why
