"""The one seam through which every child process runs.

Arguments are a list (never a shell string), the locale is C so output parses the same everywhere,
output is captured, a timeout bounds every call, and a non-zero exit is returned, not raised: the
caller decides what it means. What is read from a child is capped (MAX_OUTPUT): a child that floods
its output is killed, and the call fails, before it can grow the caller's memory without bound.

It is built on os.posix_spawnp and poll rather than the subprocess module: the writer runs every
10 seconds on every host, and importing subprocess (threading, selectors, ...) costs more than
a batched `systemctl show` itself.
"""

from __future__ import annotations

import os
import select
import time

from .errors import CommandError
from .records import NamedTuple

TYPE_CHECKING = False  # typing, collections.abc: names for the type checker only
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    # (argv, timeout seconds) -> Completed. Tests and callers may pass their own.
    Runner = Callable[[Sequence[str], float], "Completed"]


class Completed(NamedTuple):
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def reason(self) -> str:
        """Why it failed, in one line: the first line of stderr, or the exit status."""
        lines = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        return lines[0] if lines else f"exit status {self.returncode}"


MAX_OUTPUT = 16 * 1024 * 1024
"""Bytes read from one child, stdout and stderr together. systemctl's largest answer here, `show` for
a batch of units (systemd.SHOW_BATCH), or `list-units` over thousands, is a few MB at most."""


class _TooMuchOutput(Exception):
    pass



def child_env(base: Mapping[str, str] | None = None, extra: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """The environment of every child: base (ours), then `extra` (None removes a variable), then
    the C locale and no pager or colours."""
    env = dict(os.environ if base is None else base)
    for key, value in (extra or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    env["LC_ALL"] = "C"
    env["LANG"] = "C"
    env["SYSTEMD_PAGER"] = ""
    env["SYSTEMD_COLORS"] = "0"
    env.pop("SYSTEMD_LESS", None)
    return env


def run(argv: Sequence[str], timeout: float, max_output: int = MAX_OUTPUT,
        env: Mapping[str, str | None] | None = None) -> Completed:
    """Run argv with LC_ALL=C and a timeout (and `env`'s changes to our environment, child_env).
    Raises CommandError only if it cannot run, times out or writes more than max_output bytes."""
    args = tuple(argv)
    out_r, out_w = os.pipe()  # close-on-exec: the child keeps only its dup2'ed copies
    err_r, err_w = os.pipe()
    try:
        pid = os.posix_spawnp(args[0], args, child_env(None, env), file_actions=[
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
    what = " ".join(args[:2])
    try:
        out, err = _read_until_eof(out_r, err_r, deadline, max_output)
        status = _wait(pid, deadline)
    except TimeoutError:
        _kill(pid)
        raise CommandError(f"{what} timed out after {timeout:.3g}s (is D-Bus or the systemd manager hung?)") from None
    except _TooMuchOutput:
        _kill(pid)
        size = f"{max_output >> 20} MiB" if max_output % (1 << 20) == 0 else f"{max_output} bytes"
        raise CommandError(f"{what} wrote more than {size} of output; stopped it") from None
    finally:
        os.close(out_r)
        os.close(err_r)
    return Completed(args, os.waitstatus_to_exitcode(status), out.decode(errors="surrogateescape"),
                     err.decode(errors="surrogateescape"))


def _kill(pid: int) -> None:
    import signal

    os.killpg(pid, signal.SIGKILL)  # the whole session: setsid made the child its leader
    os.waitpid(pid, 0)


def _read_until_eof(out_fd: int, err_fd: int, deadline: float, max_output: int) -> tuple[bytearray, bytearray]:
    buffers = {out_fd: bytearray(), err_fd: bytearray()}
    poller = select.poll()
    for fd in buffers:
        poller.register(fd, select.POLLIN)
    open_fds = len(buffers)
    total = 0
    while open_fds:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        for fd, _event in poller.poll(left * 1000):
            # never more than one byte past the cap: that byte is what proves the cap was passed
            data = os.read(fd, min(65536, max_output + 1 - total))
            if data:
                buffers[fd] += data
                total += len(data)
                if total > max_output:
                    raise _TooMuchOutput
            else:
                poller.unregister(fd)
                open_fds -= 1
    return buffers[out_fd], buffers[err_fd]


def _wait(pid: int, deadline: float) -> int:
    # Output is closed; the child is normally exiting. Still never block past the deadline.
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() >= deadline:
            raise TimeoutError
        time.sleep(0.001)
