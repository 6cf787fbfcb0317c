"""The served textfile, read again only when it changed.

A snapshot is keyed on the file's (device, inode, size, mtime): the writer replaces the file by
rename, so every run gives a new inode. Each snapshot keeps the exact bytes, a gzip stream of them
left open at a byte boundary (so a request can append the age family as one stored deflate block
and close the stream without compressing the body again), and the summary the landing page and
/health read.
"""

from __future__ import annotations

import os
import stat
import struct
import threading
import zlib
from dataclasses import dataclass

from ..errors import TextfileUnavailable
from .textparse import TextfileSummary, parse_textfile

MAX_TEXTFILE_BYTES = 16 * 1024 * 1024
AGE_FAMILY = "agent_exporter_textfile_age_seconds"
_AGE_HEAD = (
    f"# HELP {AGE_FAMILY} Seconds since the textfile was last changed (added by agent-exporter serve).\n"
    f"# TYPE {AGE_FAMILY} gauge\n{AGE_FAMILY} "
).encode()

StatKey = tuple[int, int, int, int]


@dataclass(frozen=True)
class Snapshot:
    path: str
    key: StatKey
    mtime: float
    body: bytes
    gzip_prefix: bytes  # gzip header + the body compressed, flushed to a byte boundary, not finished
    crc: int  # CRC-32 of body
    summary: TextfileSummary

    def age(self, now: float) -> float:
        """Seconds since the file changed; negative when its mtime is ahead of our clock (a clock
        that jumped back, or a file touched into the future): said as it is, never clamped to 0,
        so a writer that stopped cannot hide behind a future mtime."""
        return now - self.mtime

    def suffix(self, now: float) -> bytes:
        """The age family, preceded by a newline when the file does not end with one."""
        sep = b"\n" if self.body and not self.body.endswith(b"\n") else b""
        return b"%s%s%.3f\n" % (sep, _AGE_HEAD, self.age(now))

    def plain_parts(self, now: float) -> tuple[memoryview, bytes]:
        """The file's bytes (shared, not copied) and this request's age family."""
        return memoryview(self.body), self.suffix(now)

    def gzip_parts(self, now: float) -> tuple[memoryview, bytes]:
        """The same text as plain_parts(now), gzip-encoded: the shared prefix, then one final
        stored block holding the age family, and the trailer."""
        tail = self.suffix(now)
        n = len(tail)  # always far below the 65535 bytes a stored block can hold
        crc = zlib.crc32(tail, self.crc)
        return memoryview(self.gzip_prefix), b"".join((
            b"\x01", struct.pack("<HH", n, n ^ 0xFFFF), tail,
            struct.pack("<II", crc, (len(self.body) + n) & 0xFFFFFFFF)))

    def plain(self, now: float) -> bytes:
        return b"".join(self.plain_parts(now))

    def gzipped(self, now: float) -> bytes:
        return b"".join(self.gzip_parts(now))


def _key(st: os.stat_result) -> StatKey:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _unavailable(path: str, exc: OSError) -> TextfileUnavailable:
    return TextfileUnavailable(f"textfile {path}: {exc.strerror or exc}")


def build_snapshot(path: str, key: StatKey, mtime: float, body: bytes) -> Snapshot:
    comp = zlib.compressobj(6, zlib.DEFLATED, 31)  # 31: gzip wrapper
    prefix = comp.compress(body) + comp.flush(zlib.Z_SYNC_FLUSH)
    return Snapshot(path, key, mtime, body, prefix, zlib.crc32(body), parse_textfile(body))


class TextfileCache:
    """Thread-safe: `lookup` is cheap enough for the connection loop, `load` runs in a worker."""

    def __init__(self, path: str, max_bytes: int = MAX_TEXTFILE_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._snapshot: Snapshot | None = None
        self._lock = threading.Lock()

    def lookup(self) -> Snapshot | None:
        """The cached snapshot if the file has not changed, None if it must be loaded again.

        Raises TextfileUnavailable when the file cannot be stat'ed (missing, permissions).
        """
        try:
            st = os.stat(self.path)
        except OSError as exc:
            raise _unavailable(self.path, exc) from None
        snap = self._snapshot
        if snap is not None and snap.key == _key(st):
            return snap
        return None

    def load(self) -> Snapshot:
        """The current snapshot, reading the file when it changed; one reader at a time."""
        with self._lock:
            snap = self.lookup()
            if snap is not None:
                return snap
            snap = self._read()
            self._snapshot = snap
            return snap

    def _read(self) -> Snapshot:
        for _attempt in range(3):
            try:
                # O_NONBLOCK: a FIFO put in the file's place must not hang the worker on open().
                fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
                with os.fdopen(fd, "rb") as f:
                    before = os.fstat(f.fileno())
                    if not stat.S_ISREG(before.st_mode):
                        raise TextfileUnavailable(f"textfile {self.path}: not a regular file")
                    if before.st_size > self.max_bytes:
                        raise TextfileUnavailable(
                            f"textfile {self.path}: {before.st_size} bytes, more than the "
                            f"{self.max_bytes} this server serves")
                    body = f.read(self.max_bytes + 1)
                    after = os.fstat(f.fileno())
            except OSError as exc:
                raise _unavailable(self.path, exc) from None
            # A writer that rewrites in place (not ours: ours renames) can be caught mid-write.
            if _key(before) == _key(after) and len(body) == after.st_size:
                return build_snapshot(self.path, _key(after), after.st_mtime, body)
        raise TextfileUnavailable(f"textfile {self.path}: keeps changing while being read")
