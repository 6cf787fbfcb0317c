"""`agent-exporter serve` against node_exporter's textfile collector, serving the same file, in one run.

Both servers are started here on free loopback ports and stopped by PID at the end:
- agent-exporter serve --textfile-dir DIR
- prometheus-node-exporter --collector.disable-defaults --collector.textfile
  --collector.textfile.directory=DIR --web.listen-address=127.0.0.1:<free>
The file is a realistic one (16 agents, every family of DESIGN.md's contract). `wrk --latency`
measures requests per second and p99 latency for /metrics, plain and with `Accept-Encoding: gzip`
(what Prometheus sends), alternating the servers run by run (which one goes first alternates too).
Medians over the rounds are reported, with each server's resident memory (VmRSS at the end and
the peak, VmHWM) read from /proc. The table is printed and written to --output.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.results import replace_section
from devtools.stack import NODE_EXPORTER, NodeExporter, Processes, free_port, http_get, wait_answering
from devtools.textfiles import fleet, render, serve_argv, write_textfile

ROOT = Path(__file__).resolve().parent.parent

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


@dataclass
class Series:
    rps: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)


def rss_kb(pid: int) -> tuple[int, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    get = lambda key: int(re.search(rf"{key}:\s+(\d+) kB", status).group(1))  # type: ignore[union-attr]  # noqa: E731
    return get("VmRSS"), get("VmHWM")


def wrk(url: str, duration: int, connections: int, gzip: bool) -> tuple[float, float]:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", url]
    if gzip:
        argv[1:1] = ["-H", "Accept-Encoding: gzip"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=duration + 60).stdout
    if re.search(r"Non-2xx or 3xx responses", out) or re.search(r"Socket errors:.*(read|write) [1-9]", out):
        raise SystemExit(f"wrk saw errors against {url}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"\n\s+99%\s+([\d.]+)(us|ms|s|m)\n", out).groups()  # type: ignore[union-attr]
    return rps, float(value) * UNITS[unit]


def samples(text: bytes) -> set[str]:
    """The agent samples of an exposition, order- and format-insensitive (node_exporter re-renders)."""
    out = set()
    for line in text.decode().splitlines():
        if line.startswith("agent") and not line.startswith("agent_exporter_textfile_age"):
            name_labels, value = line.rsplit(" ", 1)
            name, _, labels = name_labels.partition("{")
            pairs = sorted(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels))
            out.add(f"{name}{pairs} {float(value)!r}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="runs per server and scenario (default 3)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "RESULTS.md",
                        help="markdown file whose server section is replaced")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 unless serve makes 10x node_exporter's requests/s with a lower p99 "
                             "and stays under 30 MB RSS")
    args = parser.parse_args()
    if shutil.which("wrk") is None or not os.access(NODE_EXPORTER, os.X_OK):
        raise SystemExit("wrk or node_exporter is missing: apt-get install wrk prometheus-node-exporter")

    command = " ".join([os.path.relpath(sys.executable, ROOT) if sys.executable.startswith(str(ROOT))
                        else sys.executable, "-m", "benchmarks.bench_server", *sys.argv[1:]])
    with tempfile.TemporaryDirectory(prefix="bench-server-") as tmp:
        textdir = Path(tmp) / "textfile"
        textdir.mkdir()
        textfile = textdir / "agents.prom"
        write_textfile(textfile, render(fleet()))
        procs = Processes(Path(tmp))
        try:
            ours_port = free_port()
            serve = procs.start(serve_argv("--textfile-dir", str(textdir), "--web.listen-address",
                                           f"127.0.0.1:{ours_port}"), "serve")
            node = NodeExporter(procs, textdir).start()
            urls = {"agent-exporter serve": f"http://127.0.0.1:{ours_port}/metrics",
                    "node_exporter textfile": node.url}
            wait_answering(serve, urls["agent-exporter serve"], "agent-exporter serve", lambda: procs.log("serve"), 20)
            pids = {"agent-exporter serve": serve.pid, "node_exporter textfile": node.proc.pid if node.proc else 0}
            bodies = {name: http_get(url)[1] for name, url in urls.items()}
            same = samples(bodies["agent-exporter serve"]) == samples(bodies["node_exporter textfile"])
            if not same:
                raise SystemExit("the two servers do not serve the same agent samples")
            for url in urls.values():  # warm-up
                wrk(url, 2, args.connections, gzip=False)

            results: dict[tuple[str, str], Series] = {}
            order = list(urls)
            for r in range(args.rounds):
                for scenario in ("plain", "gzip"):
                    for name in (order if r % 2 == 0 else order[::-1]):
                        rps, p99 = wrk(urls[name], args.duration, args.connections, gzip=scenario == "gzip")
                        s = results.setdefault((name, scenario), Series())
                        s.rps.append(rps)
                        s.p99_ms.append(p99)
                        print(f"round {r + 1} {scenario:5} {name:24} {rps:10.0f} req/s  p99 {p99:8.2f} ms",
                              file=sys.stderr)
            memory = {name: rss_kb(pid) for name, pid in pids.items()}
        finally:
            procs.stop_all()

    version_run = subprocess.run([NODE_EXPORTER, "--version"], capture_output=True, text=True, check=False)
    ne_version = (version_run.stdout + version_run.stderr).splitlines()[:1] or ["?"]
    cpu = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    lines = [
        "# `agent-exporter serve` against node_exporter's textfile collector",
        "",
        f"Command: `{command}` (from the repository root). "
        f"{args.rounds} rounds x {args.duration}s per server and scenario, alternating; "
        f"`wrk -t1 -c{args.connections} --latency` on /metrics of the same 16-agent file "
        f"({len(bodies['agent-exporter serve'])} bytes served by serve, both servers checked to serve "
        f"the same agent samples); medians over the rounds.",
        "",
        f"Machine: {os.cpu_count()} CPUs, {cpu.group(1) if cpu else platform.machine()}, Linux "
        f"{platform.release()}; Python {platform.python_version()}; {ne_version[0].strip()}.",
        "",
        "| scenario | server | requests/s | p99 latency | RSS now / peak |",
        "|---|---|---:|---:|---:|",
    ]
    verdict = []
    for scenario in ("plain", "gzip"):
        for name in urls:
            s = results[(name, scenario)]
            now, peak = memory[name]
            lines.append(f"| {scenario} | {name} | {statistics.median(s.rps):,.0f} | "
                         f"{statistics.median(s.p99_ms):.2f} ms | {now / 1024:.1f} / {peak / 1024:.1f} MB |")
        ours, theirs = results[("agent-exporter serve", scenario)], results[("node_exporter textfile", scenario)]
        ratio = statistics.median(ours.rps) / statistics.median(theirs.rps)
        lower = statistics.median(ours.p99_ms) < statistics.median(theirs.p99_ms)
        verdict.append((scenario, ratio, lower))
    peak_ours = memory["agent-exporter serve"][1] / 1024
    lines += ["", "Against the targets (at least 10x node_exporter's requests/s, a lower p99, RSS under 30 MB):", ""]
    for scenario, ratio, lower in verdict:
        lines.append(f"- {scenario}: {ratio:.1f}x the requests/s; p99 {'lower' if lower else 'NOT lower'}")
    lines.append(f"- serve's peak RSS: {peak_ours:.1f} MB ({'under' if peak_ours < 30 else 'OVER'} 30 MB)")
    text = "\n".join(lines) + "\n"
    print(text)
    section = text.replace("# `agent-exporter serve`", "## Server: `agent-exporter serve`", 1)
    replace_section(args.output, "server-bench", section)
    met = all(r >= 10 and lower for _s, r, lower in verdict) and peak_ours < 30
    return 0 if met or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
