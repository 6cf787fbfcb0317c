"""The writer's CPU per run from the Debian package against the venv install, on a throwaway host.

One host (devtools.throwaway): the .deb installed with apt-get (/usr/bin/agent-exporter on Debian's
python3 and python3-* modules, bytecode from the postinst's py3compile) and, beside it, the README's
venv (`python3 -m venv /opt/agent-exporter`, the wheels installed with pip), and the reference's
16 agents as system services. Both writers run as root on the same config, each with a textfile
and a state directory of its own, interleaved (package, venv, package, ...) after a few warm-up
runs; the CPU of each run (user + system, the child's rusage) is measured inside the host by a
driver on Debian's python3. Prints the medians, the spread and the machine's load average before
and after: the machine is shared.

    .venv/bin/python -m benchmarks.bench_package [--runs 40]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from devtools.fleet import DEMO_FLEET
from devtools.throwaway import HOST_PYTHON, SHARE_MOUNT, ThrowawayHost
from devtools.wheels import build_wheels

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "/etc/agent-exporter/agents.yml"
VENV = "/opt/agent-exporter"
DRIVER = """
import json, os, resource, statistics, subprocess, sys
runs, warmup = int(sys.argv[1]), 5
writers = {"package": "/usr/bin/agent-exporter", "venv": "/opt/agent-exporter/bin/agent-exporter"}
costs = {name: [] for name in writers}
for i in range(warmup + runs):
    for name, exe in writers.items():
        os.makedirs(f"/tmp/bench/{name}", exist_ok=True)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([exe, "write", "--scope", "system", "--config", sys.argv[2], "--textfile-dir",
                        f"/tmp/bench/{name}", "--state-dir", f"/tmp/bench/{name}-state"], check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if i >= warmup:
            costs[name].append((after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000)
print(json.dumps(costs))
"""


def config_text() -> str:
    support = [a for a in DEMO_FLEET[:16] if a.type == "support"]
    lines = ["scope: system", "agents:", *(f"  - unit: {a.unit}\n    type: support" for a in support),
             '  - pattern: "agent-*.service"']
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    host = ThrowawayHost()
    try:
        subprocess.run([sys.executable, str(ROOT / "packaging" / "build_deb.py"), "--output", str(host.share),
                        "--work", str(host.base / "deb")], check=True, stdout=subprocess.DEVNULL)
        build_wheels(host.share / "wheels")
        host.start()
        host.run(["rm", "-f", "/usr/sbin/policy-rc.d"])  # this image's: no service starts (see test_deb.py)
        deb = next(host.share.glob("agent-exporter_*_all.deb")).name
        host.run(["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-y", "-q", "install",
                  f"{SHARE_MOUNT}/{deb}"], timeout=300)
        host.systemctl("disable", "--now", "agent-exporter.timer", "agent-exporter-server.socket")
        host.run(["sh", "-ec", f"python3 -m venv {VENV}\n{VENV}/bin/pip install --quiet --no-index "
                  f"--find-links {SHARE_MOUNT}/wheels agent-exporter"], timeout=300)
        host.write_file(CONFIG, config_text())
        for agent in DEMO_FLEET[:16]:
            host.write_file(f"/etc/systemd/system/{agent.unit}", agent.unit_text(python=HOST_PYTHON))
        host.systemctl("daemon-reload")
        host.systemctl("start", "--no-block", *(a.unit for a in DEMO_FLEET[:16] if a.kind != "stopped"))
        load_before = os.getloadavg()
        done = host.run(["python3", "-c", DRIVER, str(args.runs), CONFIG], timeout=1800)
        load_after = os.getloadavg()
        costs: dict[str, list[float]] = json.loads(done.stdout)
    finally:
        host.stop()
    print(f"{args.runs} interleaved runs each, 16 agents, system scope, as root on a throwaway host")
    print(f"load average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
          f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f} ({os.cpu_count()} CPUs)")
    for name, values in costs.items():
        ordered = sorted(values)
        q1, median, q3 = (ordered[len(ordered) * k // 4] for k in (1, 2, 3))
        print(f"{name:8s} CPU per run: median {median:.1f} ms (quartiles {q1:.1f}-{q3:.1f} ms, "
              f"min {ordered[0]:.1f}, max {ordered[-1]:.1f})")


if __name__ == "__main__":
    main()
