"""Atomic file replacement and the lock that keeps overlapping runs apart.

The temporary file lives in the target's own directory (a rename across filesystems is not
atomic) and its name does not end in `.prom`, so node_exporter never reads a half-written file.
On any failure the temporary file is removed and the previous target is untouched.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from types import TracebackType

from .defaults import TEMP_SUFFIX, temp_prefix
from .errors import LockError, WriteError


def atomic_write(directory: str, name: str, data: bytes, mode: int = 0o644) -> None:
    """Replace directory/name with data: temp file, write, fsync, chmod, rename, fsync dir."""
    target = os.path.join(directory, name)
    tmp = os.path.join(directory, f"{temp_prefix(name)}{os.getpid()}{TEMP_SUFFIX}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW,
                     mode)
    except OSError as exc:
        raise WriteError(f"cannot create a temporary file in {directory}: "
                         f"{exc.strerror or exc}") from exc
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fchmod(fd, mode)  # the umask must not make the file unreadable to node_exporter
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, target)
    except OSError as exc:
        _unlink_quietly(tmp)
        raise WriteError(f"cannot write {target}: {exc.strerror or exc}; "
                         "the previous file is unchanged") from exc
    fsync_dir(directory)


def fsync_dir(directory: str) -> None:
    try:
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EROFS):
            raise WriteError(f"cannot fsync {directory}: {exc.strerror or exc}") from exc
    finally:
        os.close(dfd)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def remove_stale_temps(directory: str, name: str) -> None:
    """Temporary files left by a run that was killed (we hold the lock, so none is live)."""
    prefix = temp_prefix(name)
    try:
        entries = os.listdir(directory)
    except OSError:
        return
    for entry in entries:
        if entry.startswith(prefix) and entry.endswith(TEMP_SUFFIX):
            _unlink_quietly(os.path.join(directory, entry))


class RunLock:
    """An exclusive flock on path, waited for up to timeout seconds."""

    def __init__(self, path: str, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self.fd = -1

    def __enter__(self) -> None:
        try:
            # Read-only is enough for flock, and lets a writer running under another uid (a
            # systemd dynamic user after a root run, say) share a lock file it cannot write.
            self.fd = os.open(self.path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise WriteError(f"cannot open lock file {self.path}: {exc.strerror or exc}") from exc
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(self.fd)
                    raise LockError(f"another run still holds {self.path} after {self.timeout:g}s") from None
                time.sleep(0.02)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        os.close(self.fd)
