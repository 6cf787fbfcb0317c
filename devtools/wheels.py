"""Wheels of agent-exporter and its dependencies, for hosts that install it without PyPI.

`make wheels` and the throwaway-host tests build them with the same command, so the README's
real-host quick start (`pip install --no-index --find-links dist agent-exporter`) is what the
tests run; install_venv() is that quick start's venv, for tests that run the package as another user.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Venv:
    """A virtual environment with agent-exporter installed."""

    path: Path

    @property
    def python(self) -> str:
        return str(self.path / "bin" / "python")

    @property
    def exe(self) -> str:
        """The console script, agent-exporter."""
        return str(self.path / "bin" / PROJECT)


def install_venv(path: Path, wheels: Path, python: str, timeout: float = 600) -> Venv:
    """`python -m venv path`, then agent-exporter from the wheels in `wheels` only."""
    venv = Venv(path)
    for argv in ([python, "-m", "venv", str(path)],
                 [venv.python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-index",
                  "--find-links", str(wheels), PROJECT]):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return venv


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "dist"
    for wheel in build_wheels(out):
        print(wheel)
