"""Wheels of agent-exporter and its dependencies, for hosts that install it without PyPI.

`make wheels` and the throwaway-host tests build them with the same command, so the README's
real-host quick start (`pip install --no-index --find-links dist agent-exporter`) is what the
tests run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "agent-exporter"


def build_wheels(dest: Path, python: str = sys.executable, timeout: float = 600) -> list[Path]:
    """pip wheel of this checkout into dest (the dependencies' wheels too); the files it holds."""
    dest.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([python, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
                           "--wheel-dir", str(dest), str(ROOT)],
                          capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"pip wheel failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return sorted(dest.glob("*.whl"))


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "dist"
    for wheel in build_wheels(out):
        print(wheel)
