"""Demo and benchmark agents: real units that sleep, hold memory, burn a little CPU or crash-loop."""

from __future__ import annotations

import sys
from dataclasses import dataclass

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
    kind: str = "run"  # run | stopped | failed | crashloop
    mb: int = 0
    busy: float = 0.0

    @property
    def unit(self) -> str:
        return f"{self.name}.service"

    def unit_text(self) -> str:
        desc = f"[Unit]\nDescription=agent-exporter demo agent {self.name}\nStartLimitIntervalSec=0\n\n[Service]\n"
        if self.kind == "crashloop":
            return desc + "ExecStart=/bin/sh -c 'sleep 1; exit 1'\nRestart=always\nRestartSec=200ms\n"
        if self.kind == "failed":
            return desc + "ExecStart=/bin/sh -c 'exit 3'\n"
        if self.mb or self.busy:
            return desc + f"ExecStart={sys.executable} -c {_quote(_AGENT.format(mb=self.mb, busy=self.busy))}\n"
        return desc + "ExecStart=/bin/sleep infinity\n"


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
)


def install_fleet(manager: Manager, fleet: tuple[DemoAgent, ...] = DEMO_FLEET) -> None:
    """Install every agent's unit and start all but the stopped ones."""
    for agent in fleet:
        manager.install_unit(agent.unit, agent.unit_text(), reload=False)
    manager.systemctl("daemon-reload")
    started = [a.unit for a in fleet if a.kind != "stopped"]
    manager.systemctl("start", "--no-block", *started)


def config_yaml(textfile_dir: str, fleet: tuple[DemoAgent, ...] = DEMO_FLEET, interval: float = 10) -> str:
    support = [a for a in fleet if a.type == "support"]
    lines = ["scope: user", f"textfile_dir: {textfile_dir}", f"interval_seconds: {interval:g}", "agents:"]
    lines += [f"  - unit: {a.unit}\n    type: support" for a in support]
    lines += ['  - pattern: "agent-*.service"', "    type: primary"]
    return "\n".join(lines) + "\n"
