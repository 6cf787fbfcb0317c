"""Realistic textfiles for the server's tests and benchmark, rendered by the writer's own renderer.

A fleet like the reference setup's (13 primary agents, 3 support ones, some failed or inactive),
turned into the writer's model and rendered by `textfile_writer.metrics.render`: the server is
tested on exactly what the writer produces, with one renderer in the tree.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from textfile_writer.metrics import render as render_snapshot
from textfile_writer.model import AgentSample, HostSample, Snapshot

HOST = HostSample(memory_total_bytes=16318976 * 1024, memory_used_bytes=6123456 * 1024,
                  disk_total_bytes=102400000 * 1024, disk_used_bytes=41234567 * 1024, load=(0.42, 0.37, 0.3))


@dataclass(frozen=True)
class Agent:
    name: str
    type: str = "primary"
    state: str = "active"
    memory_kb: float | None = 204800.0
    cpu_percent: float | None = 1.5
    uptime_seconds: float = 3600.0
    restarts: int = 0
    tasks: int = 4
    # Health (issue 12): why it is unhealthy, and what the words for it are made of
    reason: str | None = None
    result: str | None = None
    exit_code: int | None = None
    exit_signal: int | None = None
    exited_ago: float | None = None  # seconds before the file's time that its main process exited
    recent_starts: int = 0

    def sample(self, now: float) -> AgentSample:
        return AgentSample(
            name=self.name, type=self.type, unit=f"{self.name}.service", scope="system", state=self.state,
            load_state="loaded", memory_bytes=None if self.memory_kb is None else int(self.memory_kb * 1024),
            cpu_seconds=None if self.cpu_percent is None else round(self.cpu_percent * 36, 3),
            cpu_percent=self.cpu_percent, uptime_seconds=self.uptime_seconds,
            start_time_seconds=now - self.uptime_seconds if self.uptime_seconds else None,
            restarts=self.restarts, tasks=self.tasks, reason=self.reason, result=self.result,
            exit_code=self.exit_code, exit_signal=self.exit_signal,
            exit_time_seconds=None if self.exited_ago is None else now - self.exited_ago,
            recent_starts=self.recent_starts)


def fleet() -> list[Agent]:
    """13 primary agents and 3 support ones, as in the reference setup, with some variety."""
    names = ["core", "planner", "memory", "search", "browser", "coder", "reviewer", "scheduler",
             "notifier", "indexer", "crawler", "summarizer", "translator"]
    agents = [Agent(f"agent-{n}_dev", "primary", memory_kb=100000.0 + 4096 * i, cpu_percent=0.25 * i,
                    uptime_seconds=3600.0 * i + 59, restarts=i % 3)
              for i, n in enumerate(names)]
    agents[4] = Agent("agent-browser_dev", "primary", state="failed", memory_kb=0.0, cpu_percent=0.0,
                      uptime_seconds=0.0, restarts=7, tasks=0)
    agents += [Agent("agent-gateway", "support", memory_kb=1536000.0, cpu_percent=12.3,
                     uptime_seconds=90061.0, restarts=1),
               Agent("agent-watchdog", "support", memory_kb=8192.0, cpu_percent=0.1, uptime_seconds=61.0),
               Agent("agent-backup", "support", state="inactive", memory_kb=0.0, cpu_percent=None,
                     uptime_seconds=0.0, restarts=0, tasks=0)]
    return agents


def snapshot(agents: Sequence[Agent], timestamp: float | None = None) -> Snapshot:
    ts = time.time() if timestamp is None else timestamp
    return Snapshot(agents=tuple(a.sample(ts) for a in agents), host=HOST, timestamp=ts,
                    duration_seconds=0.041, collect_errors=0, version="0.1.0")


def render(agents: Sequence[Agent], timestamp: float | None = None) -> bytes:
    """The textfile the writer would write for these agents (at `timestamp`, default now)."""
    return render_snapshot(snapshot(agents, timestamp)).encode()


def write_textfile(path: Path, data: bytes, mtime: float | None = None) -> None:
    """Atomically, as the writer does: a temporary file in the same directory, then rename."""
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_bytes(data)
    if mtime is not None:
        os.utime(tmp, (mtime, mtime))
    os.replace(tmp, path)


def serve_argv(*args: str) -> list[str]:
    """The real command line: `agent-exporter serve`."""
    return [sys.executable, "-m", "textfile_writer", "serve", *args]
