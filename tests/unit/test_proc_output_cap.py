"""proc.run bounds what it reads from a child (issue 10, group 7): a child that floods its output
is killed and the call fails in one line, with the caller's memory bounded by the cap."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from textfile_writer.errors import CommandError
from textfile_writer.proc import MAX_OUTPUT, run

# A separate interpreter, so that its peak RSS is the flood's alone; its address space is limited
# so that a reader without a cap fails there (MemoryError) instead of taking the shared machine's memory.
MEASURE = """
import json, resource, sys, time
limit = 1 << 30
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from textfile_writer.errors import CommandError
from textfile_writer.proc import run
started = time.monotonic()
try:
    done = run(json.loads(sys.argv[1]), 20)
    outcome = f"returned {len(done.stdout)} + {len(done.stderr)} characters"
except CommandError as exc:
    outcome = f"CommandError: {exc}"
except MemoryError:
    outcome = "MemoryError"
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the forked parent (pytest, whose size
# depends on what ran before), while an exec starts a new address space and a new VmHWM.
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:")).split()[1]
print(json.dumps({"outcome": outcome, "seconds": time.monotonic() - started, "maxrss_kib": int(hwm)}))
"""


def measure(argv: list[str]) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", MEASURE, json.dumps(argv)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


@pytest.mark.parametrize("flood", [["yes", "x" * 200], ["sh", "-c", "yes x >&2"]], ids=["stdout", "stderr"])
def test_a_flooding_child_is_stopped_at_the_cap(tmp_path: Path, flood: list[str]) -> None:
    pid_file = tmp_path / "pid"
    result = measure(["sh", "-c", f'echo $$ > {pid_file}; exec "$@"', "sh", *flood])
    assert str(result["outcome"]).startswith(
        f"CommandError: sh -c wrote more than {MAX_OUTPUT >> 20} MiB of output; stopped it"), result
    # the cap, read twice at most (the buffer and its decoded text), over the interpreter's own ~30 MB
    assert int(str(result["maxrss_kib"])) < (30 << 10) + 3 * (MAX_OUTPUT >> 10), result
    print(f"flood on {flood[0]}: stopped after {result['seconds']:.2f}s, peak RSS {result['maxrss_kib']} KiB")
    pid = int(pid_file.read_text())
    assert not os.path.exists(f"/proc/{pid}"), "the flooding child is still there"


def test_output_up_to_the_cap_is_returned_whole() -> None:
    done = run(["head", "-c", "100000", "/dev/zero"], 10, max_output=100000)
    assert len(done.stdout) == 100000 and done.returncode == 0
    with pytest.raises(CommandError, match=r"^head -c wrote more than 99999 bytes of output; stopped it$"):
        run(["head", "-c", "100000", "/dev/zero"], 10, max_output=99999)


def test_the_cap_counts_stdout_and_stderr_together() -> None:
    with pytest.raises(CommandError, match="wrote more than 1000 bytes"):
        run(["sh", "-c", "head -c 600 /dev/zero; head -c 600 /dev/zero >&2"], 10, max_output=1000)
