"""The package's layout: every writer module is under the import-linter contract, and the contracts hold."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

import textfile_writer

PACKAGE = Path(textfile_writer.__file__).parent
REPO = PACKAGE.parent
ENTRY_POINTS = {"__init__", "__main__"}


def contracts() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    assert parser.read(REPO / ".importlinter")
    return parser


def test_every_root_module_is_a_writer_module_under_contract() -> None:
    """A new module at the root is the writer's: it must be named in the contract that keeps the
    writer away from the server and the installer, or the contract silently stops covering it."""
    listed = {m.removeprefix("textfile_writer.") for m in
              contracts()["importlinter:contract:writer"]["source_modules"].split()}
    on_disk = {p.stem for p in PACKAGE.glob("*.py")} - ENTRY_POINTS
    assert listed == on_disk


def test_the_three_rooms_are_packages() -> None:
    rooms = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert rooms == {"server", "install"}


def test_the_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--no-cache", "--config", str(REPO / ".importlinter")],
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    names = [s for s in contracts().sections() if s.startswith("importlinter:contract:")]
    assert f"Contracts: {len(names)} kept, 0 broken." in done.stdout
