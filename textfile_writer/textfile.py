"""Atomic file replacement and the lock that keeps overlapping runs apart.

The temporary file lives in the target's own directory (a rename across filesystems is not
atomic) and its name does not end in `.prom`, so node_exporter never reads a half-written file.
On any failure the temporary file is removed and the previous target is untouched.

Both live in directories other users may be able to write (a textfile directory shared with other
exporters, a group-writable one): a name there may already hold a symbolic link, a FIFO or another
user's file. Neither is ever opened through a link, waited on, or trusted because of its name.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import time

from .defaults import TEMP_SUFFIX, temp_prefix
from .errors import LockError, WriteError
from .files import describe

TYPE_CHECKING = False  # `types` costs the write path ~1 ms to import, for an annotation
if TYPE_CHECKING:
    from types import TracebackType


def atomic_write(directory: str, name: str, data: bytes, mode: int = 0o644) -> None:
    """Replace directory/name with data: temp file, write, fsync, chmod, rename, fsync dir."""
    target = os.path.join(directory, name)
    tmp = os.path.join(directory, f"{temp_prefix(name)}{os.getpid()}{TEMP_SUFFIX}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    try:
        try:
            fd = os.open(tmp, flags, mode)
        except FileExistsError:
            # Left by a killed run that had our pid, or put there: never written through (a FIFO
            # would block, a link would lead elsewhere, a hard link would truncate another file).
            _unlink_quietly(tmp)
            fd = os.open(tmp, flags, mode)
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


def remove_stale_temps(directory: str, *names: str) -> None:
    """The temporary files for each of `names` in `directory` left by runs that were killed (we hold
    the lock, so none is live): the textfile's, and the state directory's; one listing."""
    prefixes = tuple(temp_prefix(name) for name in names)
    try:
        entries = os.listdir(directory)
    except OSError:
        return
    for entry in entries:
        if entry.startswith(prefixes) and entry.endswith(TEMP_SUFFIX):
            _unlink_quietly(os.path.join(directory, entry))


# A lock file is trusted when nobody who cannot already write its directory (and so replace the lock
# and the textfile anyway) can have made it or can open it: a user who can open it could hold a
# shared flock and stop every run.
_LOCK_ATTEMPTS = 5


def _lock_problem(st: os.stat_result, dir_st: os.stat_result) -> str | None:
    """Why the lock file `st` in the directory `dir_st` cannot be trusted, or None."""
    if not stat.S_ISREG(st.st_mode):
        return f"not a regular file ({describe(st.st_mode)})"
    if st.st_nlink != 1:
        return "a file with other names (hard links)"
    if st.st_uid not in (os.geteuid(), 0) and dir_st.st_mode & stat.S_IWOTH:
        return f"owned by uid {st.st_uid} in a directory anybody may write"
    if st.st_mode & 0o007:
        return "open to every user, who could hold it"
    if st.st_mode & 0o070 and not _group_writes(st, dir_st):
        return "open to a group that cannot write the directory"
    return None


def _group_writes(st: os.stat_result, dir_st: os.stat_result) -> bool:
    """The file's group may write the directory (the installer makes the textfile directory
    group-writable and setgid for the writer's group)."""
    return st.st_gid == dir_st.st_gid and bool(dir_st.st_mode & stat.S_IWGRP)


class RunLock:
    """An exclusive flock on path, waited for up to timeout seconds.

    The lock file is made 0600, or 0640 when its group is the one that may write the directory (so
    a root run and the installed writer's user share it); an existing one that is not a regular
    file, or that others could have made or can open (see _lock_problem), is replaced, and a run
    that cannot replace it fails and says so. After the flock is taken the name must still hold
    the locked file: another run may have replaced it meanwhile.
    """

    def __init__(self, path: str, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self.fd = -1
        self.made = False  # this run created the lock file (forget() may take it away again)

    def __enter__(self) -> None:
        deadline = time.monotonic() + self.timeout
        for _attempt in range(_LOCK_ATTEMPTS):
            self.made = False
            fd = self._open()
            try:
                self._flock(fd, deadline)
                if self._still_named(fd):
                    self.fd = fd
                    return
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)
        raise WriteError(f"cannot take lock file {self.path}: it keeps being replaced")

    def _open(self) -> int:
        directory = os.path.dirname(self.path) or "."
        try:
            dir_st = os.stat(directory)
        except OSError as exc:
            raise WriteError(f"cannot open lock file {self.path}: {exc.strerror or exc}") from exc
        for _attempt in range(_LOCK_ATTEMPTS):
            try:
                # O_EXCL never follows a link: a new file of ours, in the mode we choose.
                fd = os.open(self.path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            except FileExistsError:
                pass
            except OSError as exc:
                raise WriteError(f"cannot create lock file {self.path}: {exc.strerror or exc}") from exc
            else:
                mode = 0o640 if _group_writes(os.fstat(fd), dir_st) else 0o600
                os.fchmod(fd, mode)  # exactly, whatever the umask
                self.made = True
                return fd
            try:
                # Read-only is enough for flock; a FIFO does not block the open with O_NONBLOCK.
                fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENXIO):  # a symbolic link, a socket
                    raise WriteError(f"cannot open lock file {self.path}: {exc.strerror or exc}") from exc
                try:
                    found = os.lstat(self.path)
                except FileNotFoundError:
                    continue
                problem = f"not a regular file ({describe(found.st_mode)})"
            else:
                found = os.fstat(fd)
                untrusted = _lock_problem(found, dir_st)
                if untrusted is None:
                    return fd
                os.close(fd)
                problem = untrusted
            self._replace(found, problem)
        raise WriteError(f"cannot open lock file {self.path}: it keeps being replaced")

    def _replace(self, found: os.stat_result, problem: str) -> None:
        """Remove the untrusted file `found` if the name still holds it (the next attempt makes ours)."""
        try:
            now = os.lstat(self.path)
            if (now.st_dev, now.st_ino) == (found.st_dev, found.st_ino):
                os.unlink(self.path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise WriteError(f"lock file {self.path} is {problem}; cannot replace it "
                             f"({exc.strerror or exc}): remove it") from exc

    def _flock(self, fd: int, deadline: float) -> None:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockError(f"another run still holds {self.path} after {self.timeout:g}s") from None
                time.sleep(0.02)

    def _still_named(self, fd: int) -> bool:
        st = os.fstat(fd)
        try:
            now = os.lstat(self.path)
        except FileNotFoundError:
            return False
        return (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino)

    def forget(self) -> None:
        """Take away the lock file this run made, while still holding it: a run that fails before
        it writes leaves the directory as it found it. A run waiting on the same file finds the
        name gone once it has the lock (_still_named) and starts again with a file of its own."""
        if self.made and self.fd >= 0 and self._still_named(self.fd):
            try:
                os.unlink(self.path)
            except OSError:
                pass  # (contextlib would import collections on the write path)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        os.close(self.fd)
