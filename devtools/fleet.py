"""Demo and benchmark agents: real units that sleep, hold memory, burn a little CPU or crash-loop."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, replace

from .sandbox import Manager

# A long-lived agent: optionally holds `mb` MiB of touched memory and burns ~`busy` of one core.
_AGENT = (
    "import time\n"
    "mb, busy = {mb}, {busy}\n"
    "hold = bytearray(mb * 1024 * 1024)\n"
    "for i in range(0, len(hold), 4096): hold[i] = 1\n"
    "while True:\n"
    "    t = time.monotonic()\n"
    "    while busy and time.monotonic() - t < busy * 0.1: pass\n"
    "    time.sleep(0.1 * (1 - busy))\n"
)


@dataclass(frozen=True)
class DemoAgent:
    name: str
    type: str
    # run | stopped | failed | crashloop, and issue 12's cases: oom (a child outgrows MemoryMax every
    # 20 s; the kernel kills it), timer (a oneshot every 30 s), limit (hits its start limit), http (answers
    # on `port`, probed by the writer)
    kind: str = "run"
    mb: int = 0
    busy: float = 0.0
    port: int = 0

    @property
    def unit(self) -> str:
        return f"{self.name}.service"

    @property
    def timer(self) -> str | None:
        return f"{self.name}.timer" if self.kind == "timer" else None

    def unit_text(self, python: str = sys.executable) -> str:
        """The unit file. `python` runs the agents that are Python programs: a throwaway host (own
        /tmp, homes not its own) needs one from its root, such as Debian's /usr/bin/python3."""
        limit = "StartLimitBurst=3\nStartLimitIntervalSec=1h\n" if self.kind == "limit" else "StartLimitIntervalSec=0\n"
        desc = f"[Unit]\nDescription=agent-exporter demo agent {self.name}\n{limit}\n[Service]\n"
        if self.kind == "crashloop":
            return desc + "ExecStart=/bin/sh -c 'sleep 1; exit 1'\nRestart=always\nRestartSec=200ms\n"
        if self.kind == "failed":
            return desc + "ExecStart=/bin/sh -c 'exit 3'\n"
        if self.kind == "limit":  # exits 0 at once and is restarted until systemd refuses: start-limit-hit
            return desc + "ExecStart=/bin/true\nRestart=always\nRestartSec=100ms\n"
        if self.kind == "timer":
            return desc + "Type=oneshot\nExecStart=/bin/sh -c 'sleep 2'\n"
        if self.kind == "oom":
            child = f"{python} -c \\\"bytearray(128 << 20)\\\""
            return desc + (f"MemoryMax=32M\nMemorySwapMax=0\n"
                           f"ExecStart=/bin/sh -c 'while :; do {child}; sleep 20; done'\n")
        if self.kind == "http":
            return desc + f"ExecStart={python} -m http.server --bind 127.0.0.1 {self.port}\n"
        if self.mb or self.busy:
            return desc + f"ExecStart={python} -c {_quote(_AGENT.format(mb=self.mb, busy=self.busy))}\n"
        return desc + "ExecStart=/bin/sleep infinity\n"

    def timer_text(self) -> str:
        return "[Timer]\nOnActiveSec=1s\nOnUnitActiveSec=30s\n"


def _quote(code: str) -> str:
    # systemd's ExecStart= takes C-style escapes inside double quotes
    return '"' + code.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


DEMO_FLEET = (
    DemoAgent("agent-core_dev", "primary", mb=24, busy=0.05),
    DemoAgent("agent-planner", "primary", mb=12, busy=0.15),
    DemoAgent("agent-research", "primary", mb=40),
    DemoAgent("agent-codegen", "primary", mb=16, busy=0.3),
    DemoAgent("agent-reviewer", "primary", mb=8),
    DemoAgent("agent-tester", "primary", mb=8, busy=0.02),
    DemoAgent("agent-docs", "primary", kind="failed"),
    DemoAgent("agent-data", "primary", mb=32),
    DemoAgent("agent-ingest", "primary", kind="crashloop"),
    DemoAgent("agent-scheduler", "primary"),
    DemoAgent("agent-memory", "primary", mb=64),
    DemoAgent("agent-router", "primary", mb=4),
    DemoAgent("agent-security", "primary", kind="stopped"),
    DemoAgent("agent-metrics", "support", mb=6),
    DemoAgent("agent-backup", "support", kind="stopped"),
    DemoAgent("agent-notify", "support"),
    # issue 12's cases, beside the reference's 16
    DemoAgent("agent-embedder", "primary", kind="oom"),
    DemoAgent("agent-reports", "primary", kind="timer"),
    DemoAgent("agent-webhook", "primary", kind="limit"),
    DemoAgent("agent-gateway", "primary", kind="http"),
)


def with_ports(fleet: tuple[DemoAgent, ...], free_port: Callable[[], int]) -> tuple[DemoAgent, ...]:
    """The fleet with a loopback port picked for each agent that answers HTTP."""
    return tuple(replace(a, port=free_port()) if a.kind == "http" else a for a in fleet)


def install_fleet(manager: Manager, fleet: tuple[DemoAgent, ...] = DEMO_FLEET) -> None:
    """Install every agent's unit (and timer) and start all but the stopped ones; a timer starts its agent."""
    for agent in fleet:
        manager.install_unit(agent.unit, agent.unit_text(), reload=False)
        if agent.timer:
            manager.install_unit(agent.timer, agent.timer_text(), reload=False)
    manager.systemctl("daemon-reload")
    started = [a.timer or a.unit for a in fleet if a.kind != "stopped"]
    manager.systemctl("start", "--no-block", *started)


def config_yaml(textfile_dir: str, fleet: tuple[DemoAgent, ...] = DEMO_FLEET, interval: float = 10) -> str:
    support = [a for a in fleet if a.type == "support"]
    probed = [a for a in fleet if a.kind == "http" and a.type != "support"]
    lines = ["scope: user", f"textfile_dir: {textfile_dir}", f"interval_seconds: {interval:g}", "agents:"]
    lines += [f"  - unit: {a.unit}\n    type: support" for a in support]
    lines += [f"  - unit: {a.unit}\n    type: {a.type}\n    probe: {{url: 'http://127.0.0.1:{a.port}/'}}"
              for a in probed]
    lines += ['  - pattern: "agent-*.service"', "    type: primary"]
    return "\n".join(lines) + "\n"
