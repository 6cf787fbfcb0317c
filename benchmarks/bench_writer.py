"""The writer's whole-process cost against the floor, measured in one run (`make bench`).

For N real agents (units running `sleep infinity` under a real systemd user manager) it runs,
interleaved, R times each:
- floor: a bare interpreter start (`python -c pass`) plus one batched `systemctl --user show` of
  the same units with the writer's properties — what any Python writer must pay at least;
- write (explicit units): `agent-exporter write` with every agent listed in the config;
- write (pattern): the same agents found through `agent-*.service` (two discovery calls more);
- write via click, no config cache: the same command through the click CLI with a fresh state
  directory each run (YAML parsed every time) — the cost without the lean path.
Each process is measured by wait4(): CPU is user + system of the process and its children
(systemctl). Peak RSS comes from a separate pass under GNU time (`/usr/bin/time -f %M`): a child
forked from this Python process would report this process's RSS as its own high-water mark.
The writer is installed into its own virtual environment with `pip install .`, as users install
it (an editable install adds an import hook).
Results are ratios against the floor measured in the same run; absolute times vary by machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.results import replace_section
from devtools.sandbox import HostUserManager, Manager, SandboxManager, host_manager_available
from textfile_writer.systemd import SHOW_PROPERTIES

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Samples:
    cpu_ms: list[float]
    wall_ms: list[float]
    rss_kb: list[int]

    def add(self, cpu: float, wall: float) -> None:
        self.cpu_ms.append(cpu)
        self.wall_ms.append(wall)


def measure(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(CPU ms incl. children, wall ms) of one process run to completion."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = (time.perf_counter() - start) * 1000
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise SystemExit(f"benchmark command failed ({proc.returncode}): {' '.join(argv)}\n{err}")
    if proc.stderr:
        proc.stderr.close()
    return (usage.ru_utime + usage.ru_stime) * 1000, wall


def peak_rss_kb(argv: list[str], env: dict[str, str]) -> int:
    """Largest resident set of the process or any child it waited for, in KiB (GNU time)."""
    done = subprocess.run(["/usr/bin/time", "-f", "%M", *argv], env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, check=True)
    return int(done.stderr.strip().splitlines()[-1])


def install_venv(work: Path) -> Path:
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin/pip"), "install", "-q", str(ROOT)], check=True)
    return venv


def bench(manager: Manager, venv: Path, work: Path, n: int, runs: int) -> dict[str, Samples]:
    units = [f"agent-bench{i:03d}.service" for i in range(n)]
    for u in units:
        manager.install_unit(u, "[Service]\nExecStart=/bin/sleep infinity\n", reload=False)
    manager.systemctl("daemon-reload")
    manager.systemctl("start", *units)
    textdir = work / f"textfile-{n}"
    textdir.mkdir()
    explicit = work / f"explicit-{n}.yml"
    explicit.write_text(f"scope: user\ntextfile_dir: {textdir}\nagents:\n" + "".join(f"  - unit: {u}\n" for u in units))
    pattern = work / f"pattern-{n}.yml"
    pattern.write_text(f"scope: user\ntextfile_dir: {textdir}\nagents:\n  - pattern: 'agent-bench*.service'\n")
    py = str(venv / "bin/python")
    exe = str(venv / "bin/agent-exporter")
    env = {**os.environ, **manager.env, "LC_ALL": "C"}
    show = ["systemctl", "--user", "show", "--property=" + ",".join(SHOW_PROPERTIES), "--", *units]
    click_code = ("import sys; from textfile_writer.cli import cli; "
                  "cli.main(args=sys.argv[1:], prog_name='agent-exporter')")
    cases = {
        "floor: python -c pass": manager.command([py, "-c", "pass"]),
        "floor: systemctl show": manager.command(show),
        "write (explicit units)": manager.command([exe, "write", "--config", str(explicit),
                                                   "--state-dir", str(work / f"state-e{n}")]),
        "write (pattern)": manager.command([exe, "write", "--config", str(pattern),
                                            "--state-dir", str(work / f"state-p{n}")]),
    }
    results = {name: Samples([], [], []) for name in [*cases, "write via click, no config cache"]}
    for _ in range(3):  # warm-up: page cache, .pyc files, config cache, CPU state
        for argv in cases.values():
            measure(argv, env)
    for i in range(runs):
        for name, argv in cases.items():
            results[name].add(*measure(argv, env))
        fresh = str(work / f"state-click-{n}-{i}")
        results["write via click, no config cache"].add(*measure(
            manager.command([py, "-c", click_code, "write", "--config", str(explicit), "--state-dir", fresh]), env))
    for name, argv in cases.items():
        results[name].rss_kb.extend(peak_rss_kb(argv, env) for _ in range(3))
    results["write via click, no config cache"].rss_kb.extend(peak_rss_kb(manager.command(
        [py, "-c", click_code, "write", "--config", str(explicit), "--state-dir", str(work / "state-rss")]), env)
        for _ in range(1))
    manager.systemctl("stop", *units)
    for u in units:
        (manager.unit_dir / u).unlink()
    manager.systemctl("daemon-reload")
    return results


def table(all_results: dict[int, dict[str, Samples]], runs: int) -> str:
    lines = [
        "| agents | what | CPU ms (median) | CPU x floor | wall ms (median) | peak RSS MiB (max) |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for n, results in all_results.items():
        floor_cpu = (statistics.median(results["floor: python -c pass"].cpu_ms)
                     + statistics.median(results["floor: systemctl show"].cpu_ms))
        floor_wall = (statistics.median(results["floor: python -c pass"].wall_ms)
                      + statistics.median(results["floor: systemctl show"].wall_ms))
        lines.append(f"| {n} | **floor** (python start + one systemctl show) | {floor_cpu:.1f} | 1.00 | "
                     f"{floor_wall:.1f} | |")
        for name, s in results.items():
            cpu = statistics.median(s.cpu_ms)
            ratio = "" if name.startswith("floor") else f"{cpu / floor_cpu:.2f}"
            lines.append(f"| {n} | {name} | {cpu:.1f} | {ratio} | {statistics.median(s.wall_ms):.1f} | "
                         f"{max(s.rss_kb) / 1024:.1f} |")
    return "\n".join(lines) + f"\n\n{runs} interleaved runs per row after 3 warm-up rounds.\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, nargs="+", default=[16, 100])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--output", type=Path, help="markdown file to write the results into")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="agent-exporter-bench-"))
    manager: Manager | None = None
    try:
        venv = install_venv(work)
        manager = HostUserManager().start() if host_manager_available() else SandboxManager().start()
        results = {n: bench(manager, venv, work, n, args.runs) for n in args.agents}
    finally:
        if manager is not None:
            manager.stop()
        shutil.rmtree(work, ignore_errors=True)
    text = table(results, args.runs)
    print(text)
    if args.output:
        write_results(args.output, text)
    return 0


def write_results(path: Path, text: str) -> None:
    machine = f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {time.strftime('%Y-%m-%d')}"
    replace_section(path, "writer-bench", f"## Writer: whole-process cost per run\n\nCommand: `make bench` "
                    f"(`python -m benchmarks.bench_writer --output benchmarks/RESULTS.md`). Machine: {machine}.\n\n"
                    f"{text}")


if __name__ == "__main__":
    sys.exit(main())
