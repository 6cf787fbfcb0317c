"""The one seam through which every child process runs.

Arguments are a list (never a shell string), the locale is C so output parses the same everywhere,
output is captured, a timeout bounds every call, and a non-zero exit is returned, not raised: the
caller decides what it means.

It is built on os.posix_spawnp and poll rather than the subprocess module: the writer runs every
10 seconds on every host, and importing subprocess (threading, selectors, ...) costs more than
a batched `systemctl show` itself.
"""

from __future__ import annotations

import os
import select
import time
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

from .errors import CommandError


class Completed(NamedTuple):
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def reason(self) -> str:
        """Why it failed, in one line: the first line of stderr, or the exit status."""
        lines = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        return lines[0] if lines else f"exit status {self.returncode}"


Runner = Callable[[Sequence[str], float], Completed]
"""(argv, timeout seconds) -> Completed. Tests and callers may pass their own."""


def child_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env["LC_ALL"] = "C"
    env["LANG"] = "C"
    env["SYSTEMD_PAGER"] = ""
    env["SYSTEMD_COLORS"] = "0"
    env.pop("SYSTEMD_LESS", None)
    return env


def run(argv: Sequence[str], timeout: float) -> Completed:
    """Run argv with LC_ALL=C and a timeout. Raises CommandError only if it cannot run or times out."""
    args = tuple(argv)
    out_r, out_w = os.pipe()  # close-on-exec: the child keeps only its dup2'ed copies
    err_r, err_w = os.pipe()
    try:
        pid = os.posix_spawnp(args[0], args, child_env(), file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, out_w, 1),
            (os.POSIX_SPAWN_DUP2, err_w, 2),
        ], setsid=True)
    except OSError as exc:
        for fd in (out_r, out_w, err_r, err_w):
            os.close(fd)
        reason = "command not found" if isinstance(exc, FileNotFoundError) else exc.strerror
        raise CommandError(f"{args[0]}: {reason}") from None
    os.close(out_w)
    os.close(err_w)
    deadline = time.monotonic() + timeout
    try:
        out, err = _read_until_eof(out_r, err_r, deadline)
        status = _wait(pid, deadline)
    except TimeoutError:
        import signal

        os.killpg(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        what = " ".join(args[:2])
        raise CommandError(f"{what} timed out after {timeout:g}s (is D-Bus or the systemd manager hung?)") from None
    finally:
        os.close(out_r)
        os.close(err_r)
    return Completed(args, os.waitstatus_to_exitcode(status), out.decode(errors="surrogateescape"),
                     err.decode(errors="surrogateescape"))


def _read_until_eof(out_fd: int, err_fd: int, deadline: float) -> tuple[bytes, bytes]:
    chunks: dict[int, list[bytes]] = {out_fd: [], err_fd: []}
    poller = select.poll()
    for fd in chunks:
        poller.register(fd, select.POLLIN)
    open_fds = len(chunks)
    while open_fds:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        for fd, _event in poller.poll(left * 1000):
            data = os.read(fd, 65536)
            if data:
                chunks[fd].append(data)
            else:
                poller.unregister(fd)
                open_fds -= 1
    return b"".join(chunks[out_fd]), b"".join(chunks[err_fd])


def _wait(pid: int, deadline: float) -> int:
    # Output is closed; the child is normally exiting. Still never block past the deadline.
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() >= deadline:
            raise TimeoutError
        time.sleep(0.001)
