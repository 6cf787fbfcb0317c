"""atomic_write when its temporary file's name is already taken (a killed run with the same pid, or
a file put there by someone who may write the textfile directory): never written through."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# The child plants, at the name its own atomic_write will use, what argv[2] says, then writes.
PLANT_THEN_WRITE = (
    "import os, sys\n"
    "from textfile_writer.defaults import TEMP_SUFFIX, temp_prefix\n"
    "from textfile_writer.textfile import atomic_write\n"
    "d, what = sys.argv[1], sys.argv[2]\n"
    "tmp = os.path.join(d, f'{temp_prefix(\"agents.prom\")}{os.getpid()}{TEMP_SUFFIX}')\n"
    "if what == 'fifo':\n    os.mkfifo(tmp)\n"
    "elif what == 'hardlink':\n    os.link(os.path.join(d, 'victim'), tmp)\n"
    "else:\n    os.symlink(os.path.join(d, 'victim'), tmp)\n"
    "atomic_write(d, 'agents.prom', b'agent_up 1\\n')\n"
)


@pytest.mark.parametrize("what", ["fifo", "hardlink", "symlink"])
def test_a_taken_temporary_name_is_replaced_not_written_through(tmp_path: Path, what: str) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"another file's bytes\n")
    try:
        child = subprocess.run([sys.executable, "-c", PLANT_THEN_WRITE, str(tmp_path), what], capture_output=True,
                               text=True, timeout=20, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"atomic_write hung on a {what} at its temporary file's name")
    assert child.returncode == 0, child.stderr
    assert (tmp_path / "agents.prom").read_bytes() == b"agent_up 1\n"
    assert victim.read_bytes() == b"another file's bytes\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["agents.prom", "victim"]
