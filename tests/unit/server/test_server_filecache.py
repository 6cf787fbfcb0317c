"""The served file's snapshots: read again only on change, gzip that decodes to the same bytes."""

from __future__ import annotations

import gzip
import os
import re
import zlib
from pathlib import Path

import pytest

from devtools.textfiles import fleet, render, write_textfile
from textfile_writer.errors import TextfileUnavailable
from textfile_writer.server.filecache import AGE_FAMILY, TextfileCache, build_snapshot


def test_plain_is_the_file_then_the_age_family(tmp_path: Path) -> None:
    path = tmp_path / "agents.prom"
    data = render(fleet())
    write_textfile(path, data, mtime=1000.0)
    snap = TextfileCache(str(path)).load()
    body = snap.plain(1012.3456)
    assert body.startswith(data)
    assert body[len(data):] == (
        f"# HELP {AGE_FAMILY} Seconds since the textfile was last changed (added by agent-exporter serve).\n"
        f"# TYPE {AGE_FAMILY} gauge\n{AGE_FAMILY} 12.346\n").encode()


@pytest.mark.parametrize("data", [b"", b"a 1", b"a 1\n", render(fleet()), os.urandom(70000)])
def test_gzip_decodes_to_exactly_the_plain_bytes(data: bytes) -> None:
    snap = build_snapshot("/x", (0, 0, 0, 0), 50.0, data)
    for now in (50.0, 51.5, 1e9):
        z = snap.gzipped(now)
        assert gzip.decompress(z) == snap.plain(now)
        # one member, read by a strict single-stream decoder (what curl and Go use)
        d = zlib.decompressobj(31)
        assert d.decompress(z) == snap.plain(now) and d.eof and d.unused_data == b""


def test_a_file_without_a_final_newline_still_gives_valid_text() -> None:
    snap = build_snapshot("/x", (0, 0, 0, 0), 0.0, b"a 1")
    assert snap.plain(1.0).startswith(b"a 1\n# HELP ")


def test_reread_only_when_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "agents.prom"
    write_textfile(path, b"a 1\n")
    cache = TextfileCache(str(path))
    assert cache.lookup() is None  # nothing loaded yet
    first = cache.load()
    assert cache.lookup() is first and cache.load() is first
    write_textfile(path, b"a 2\n")  # a rename: new inode
    assert cache.lookup() is None
    second = cache.load()
    assert second.body == b"a 2\n" and second is not first
    with open(path, "ab") as f:  # an in-place append changes size and mtime
        f.write(b"b 3\n")
    assert cache.load().body == b"a 2\nb 3\n"


def test_age_comes_from_the_mtime(tmp_path: Path) -> None:
    path = tmp_path / "agents.prom"
    write_textfile(path, b"a 1\n", mtime=1_700_000_000.25)
    snap = TextfileCache(str(path)).load()
    assert snap.age(1_700_000_010.25) == pytest.approx(10.0)
    assert snap.age(1_699_999_990.25) == pytest.approx(-10.0)  # a file from the future: said as it is
    assert re.search(rb"agent_exporter_textfile_age_seconds 10.000\n$", snap.plain(1_700_000_010.25))


def test_unavailable_files(tmp_path: Path) -> None:
    missing = TextfileCache(str(tmp_path / "nope.prom"))
    with pytest.raises(TextfileUnavailable, match=r"nope\.prom: No such file or directory"):
        missing.lookup()
    with pytest.raises(TextfileUnavailable):
        missing.load()
    with pytest.raises(TextfileUnavailable, match="Is a directory"):
        TextfileCache(str(tmp_path)).load()
    fifo = tmp_path / "fifo.prom"
    os.mkfifo(fifo)
    with pytest.raises(TextfileUnavailable, match="not a regular file"):
        TextfileCache(str(fifo)).load()
    big = tmp_path / "big.prom"
    big.write_bytes(b"x" * 2000)
    with pytest.raises(TextfileUnavailable, match="2000 bytes, more than the 1000"):
        TextfileCache(str(big), max_bytes=1000).load()


def test_snapshot_carries_the_summary(tmp_path: Path) -> None:
    path = tmp_path / "agents.prom"
    write_textfile(path, render(fleet(), timestamp=1234.5))
    snap = TextfileCache(str(path)).load()
    assert snap.summary.last_success == 1234.5 and len(snap.summary.agents) == 16
