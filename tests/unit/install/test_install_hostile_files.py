"""The files install wrote and reads back (the manifest, the units) may have been replaced by anything:
each is read as a regular file of bounded size, never through a FIFO, a device or a symbolic link."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from textfile_writer.errors import InstallError
from textfile_writer.install.manifest import MANIFEST, MAX_BYTES, read_installed
from textfile_writer.install.request import interpreter_of


def test_a_fifo_for_the_manifest_is_one_line_not_a_hang(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / MANIFEST)
    done = subprocess.run([sys.executable, "-m", "textfile_writer", "uninstall", "--scope", "user", "--unit-dir",
                           str(tmp_path)], capture_output=True, text=True, timeout=20, check=False)
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "a FIFO" in lines[0] and MANIFEST in lines[0], done.stderr


@pytest.mark.parametrize("kind", ["fifo", "symlink", "device", "huge", "binary"])
def test_what_is_not_a_file_install_wrote_is_refused(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "agent-exporter.service"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "symlink":
        (tmp_path / "elsewhere").write_text("[Unit]\n")
        path.symlink_to(tmp_path / "elsewhere")
    elif kind == "device":
        path.symlink_to("/dev/zero")
    elif kind == "huge":
        with open(path, "wb") as f:
            f.truncate(MAX_BYTES + 1)
    else:
        path.write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(InstallError, match=f"cannot read {path}"):
        read_installed(str(path))


def test_a_missing_file_is_none_and_a_unit_is_read(tmp_path: Path) -> None:
    assert read_installed(str(tmp_path / "absent.service")) is None
    (tmp_path / "a.service").write_text("[Unit]\nDescription=x\n")
    assert read_installed(str(tmp_path / "a.service")) == "[Unit]\nDescription=x\n"


def test_the_interpreter_of_a_fifo_or_device_is_none_at_once(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "agent-exporter")
    assert interpreter_of(str(tmp_path / "agent-exporter")) is None
    assert interpreter_of("/dev/zero") is None
    script = tmp_path / "script"
    script.write_bytes(b"#!/opt/venv/bin/python3 -I\nimport x\n")
    assert interpreter_of(str(script)) == "/opt/venv/bin/python3"
