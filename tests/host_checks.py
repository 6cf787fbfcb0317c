"""What the tests on a throwaway host (devtools.throwaway) ask about the installed writer: a file's
identity, the writer unit's journal, and the textfile once the timer has replaced it."""

from __future__ import annotations

import time

from devtools.throwaway import ThrowawayHost
from textfile_writer.install import units


def stat_line(host: ThrowawayHost, path: str) -> str:
    """Inode, mtime, owner, group and mode: what changes when a file is replaced ('' when missing)."""
    return host.run(["stat", "-c", "%i %Y.%y %U %G %a", "--", path], check=False).stdout.strip()


def journal(host: ThrowawayHost, unit: str = units.WRITER_SERVICE, lines: int = 40) -> str:
    return host.run(["journalctl", "--no-pager", "-o", "cat", "-n", str(lines), "-u", unit], check=False).stdout


def wait_for_rewrite(host: ThrowawayHost, textfile: str, timeout: float = 30) -> str:
    """The textfile's text after the timer's writer has replaced it at least once more."""
    first = stat_line(host, textfile)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = stat_line(host, textfile)
        if now and now != first:
            return host.run(["cat", textfile]).stdout
        time.sleep(0.2)
    raise AssertionError(f"{textfile} was not rewritten within {timeout}s; writer log:\n{journal(host)}")


def node_exporter_metrics(host: ThrowawayHost, port: int) -> str:
    """What Debian's prometheus-node-exporter service, started already, serves once it serves the
    agents' file; checks that it runs as its own user."""
    pid = host.show("prometheus-node-exporter.service", "MainPID")["MainPID"]
    assert host.run(["stat", "-c", "%U", f"/proc/{pid}"]).stdout.strip() == "prometheus"
    deadline = time.monotonic() + 30
    body = ""
    while time.monotonic() < deadline:
        done = host.run(["curl", "-sf", f"http://127.0.0.1:{port}/metrics"], check=False)
        body = done.stdout
        if done.returncode == 0 and "agent_up{" in body:
            break
        time.sleep(0.3)
    return body
