"""Opening the files we read, when others may have put something else in their place.

Every file the three programs read goes through here: the configuration and the web configuration,
the config cache, the CPU state, the web configuration's TLS files; the run lock (textfile.RunLock)
uses `describe` and the same flags. A FIFO would hang open() or read(), a device (`/dev/zero`)
would be read until memory runs out, and a symbolic link in a directory others can write would
lead a root process elsewhere. So a file is opened without blocking, checked as a regular file
after it is open (so the check and the read see the same file), and read only up to a limit.

Problems are OSError with a readable strerror, so callers report them as they report a missing
file. Only `os`, `errno` and `stat`: the writer's hot path imports this module.
"""

from __future__ import annotations

import errno
import os
import stat

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link"))


def path_problem(path: str) -> str | None:
    """Why `path` cannot name a file at all, or None: the rule for paths from options and files."""
    if "\0" in path:
        return "must not contain a NUL byte"
    return None


def describe(mode: int) -> str:
    """What a file of this st_mode is, for a message ("a FIFO")."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return "a regular file" if stat.S_ISREG(mode) else "not a regular file"


def not_a_directory(path: str) -> str | None:
    """Why `path` cannot serve as a directory ("does not exist", "is not a directory"), or None."""
    if os.path.isdir(path):
        return None
    return "is not a directory" if os.path.lexists(path) else "does not exist"


def open_regular(path: str, follow: bool = True) -> tuple[int, os.stat_result]:
    """A read-only descriptor on `path` and its fstat, or OSError when it is not a regular file.

    follow=False refuses a symbolic link (ELOOP), for files in directories others may write.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except ValueError:  # a NUL byte: callers check paths, this keeps it an OSError all the same
        raise OSError(errno.EINVAL, "the path contains a NUL byte") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow:
            raise OSError(errno.ELOOP, "is a symbolic link (not followed here)") from None
        if exc.errno == errno.ENXIO:  # open(2) on a socket
            raise OSError(errno.ENXIO, "not a regular file (a socket)") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, f"not a regular file ({describe(st.st_mode)})")
    return fd, st


def read_regular(path: str, limit: int, follow: bool = True) -> bytes:
    """The bytes of the regular file `path`, at most `limit` of them, or OSError (EFBIG when larger)."""
    fd, st = open_regular(path, follow)
    try:
        return read_open(fd, st, limit)
    finally:
        os.close(fd)


def read_open(fd: int, st: os.stat_result, limit: int) -> bytes:
    """The bytes of a file open_regular opened (`st` its fstat), at most `limit`, or OSError (EFBIG)."""
    if st.st_size > limit:
        raise OSError(errno.EFBIG, f"larger than the limit of {limit} bytes")
    chunks = []
    left = limit + 1  # st_size can be stale (the file grows, or a /proc-like 0): read to the limit
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    if left <= 0:
        raise OSError(errno.EFBIG, f"larger than the limit of {limit} bytes")
    return b"".join(chunks)


def read_private(path: str, limit: int) -> bytes:
    """The bytes of a file this process wrote for itself (a cache): a regular file, not followed,
    owned by our effective user and writable by nobody else; OSError otherwise. Such a file is
    trusted as our own output, so nothing another user could have planted is ever read."""
    fd, st = open_regular(path, follow=False)
    try:
        if st.st_uid != os.geteuid() or st.st_mode & 0o022:
            raise OSError(errno.EPERM, "not ours alone (another owner, or writable by others)")
        return read_open(fd, st, limit)
    finally:
        os.close(fd)


def check_regular(path: str, limit: int) -> None:
    """Raise OSError unless `path` is a regular file within `limit` bytes: for files handed to code
    that opens them itself (ssl's load_cert_chain), which would block on a FIFO."""
    fd, st = open_regular(path)
    os.close(fd)
    if st.st_size > limit:
        raise OSError(errno.EFBIG, f"larger than the limit of {limit} bytes")
