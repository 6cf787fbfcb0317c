"""package.py: the Debian package's units, and what its postinst and prerm ask of the installer.

The accounts are answered by the installer tests' stand-in behind the runner seam
(tests/install_fixtures.py); the directories, their groups and modes are real. The package itself,
installed, upgraded, removed and purged, is tested on a booted host in tests/integration/package/.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from install_fixtures import GID, UID, FakeSystem, Out, mode_of, needs_root

from textfile_writer import __version__
from textfile_writer.install import package, units
from textfile_writer.install.plan import Refused
from textfile_writer.install.request import Request


def test_the_units_are_the_installers_for_the_packages_paths() -> None:
    rendered = package.package_units()
    assert list(rendered) == list(units.UNIT_NAMES)
    writer = rendered[units.WRITER_SERVICE]
    assert ("ExecStart=/usr/bin/agent-exporter write --scope system --textfile-dir /var/lib/prometheus/node-exporter "
            "--textfile-name agents.prom --config /etc/agent-exporter/agents.yml\n") in writer
    assert "\nUser=agent-exporter\n" in writer and "\nGroup=agent-exporter\n" in writer
    for text in rendered.values():
        assert f"# Shipped by the agent-exporter Debian package (agent-exporter {__version__})" in text
        assert "agent-exporter install" not in text.splitlines()[0]
    for name in (units.WRITER_SERVICE, units.SERVER_SERVICE):
        # the package's paths hide nothing the services need: the strongest settings
        assert "ProtectHome=yes\n" in rendered[name] and "PrivateTmp=yes\n" in rendered[name]
    assert "ListenStream=127.0.0.1:9200\n" in rendered[units.SERVER_SOCKET]


def package_request(tmp_path: Path) -> Request:
    return package.request(str(tmp_path / "node-exporter"))


@needs_root
def test_setup_shares_the_directory_and_undo_gives_it_back(tmp_path: Path) -> None:
    textfile_dir = tmp_path / "node-exporter"
    textfile_dir.mkdir(mode=0o755)
    manifest = tmp_path / "agent-exporter.install.json"
    fake, out = FakeSystem(), Out()
    assert package.setup(fake, out, package_request(tmp_path), str(manifest))
    assert fake.groups == {"agent-exporter": GID} and fake.users == {"agent-exporter": UID}
    assert mode_of(textfile_dir) == (GID, 0o2775)
    assert f"  write {manifest} (what uninstall reverts)" in out
    assert not [c for c in fake.calls if c[0] == "systemctl"], fake.calls  # the units are dpkg's
    # a second configure (an upgrade) changes nothing
    out = Out()
    assert not package.setup(fake, out, package_request(tmp_path), str(manifest))
    assert out[-1] == "nothing to change: already installed as asked"
    # removal: the textfile and its lock go, the directory is as it was; the accounts wait for purge
    (textfile_dir / "agents.prom").write_text("x 1\n")
    (textfile_dir / ".agents.prom.lock").write_text("")
    (textfile_dir / "other.prom").write_text("y 1\n")
    assert package.undo(fake, Out(), str(manifest))
    assert sorted(os.listdir(textfile_dir)) == ["other.prom"]
    assert mode_of(textfile_dir) == (0, 0o755)
    assert not manifest.exists()
    assert fake.users == {"agent-exporter": UID}
    assert not package.undo(fake, Out(), str(manifest))


@needs_root
@pytest.mark.parametrize(("gid", "mode", "advice"), [
    (777, 0o2775, "is group-writable for metrics, but the package's units run the writer with group agent-exporter; "
                  "give it back to root's group for the package to arrange: chgrp root {d}, then run "
                  "dpkg --configure -a"),
    (GID, 0o2755, "belongs to group agent-exporter, which cannot write it (mode 2755); make it group-writable "
                  "again: chmod 2775 {d}, then run dpkg --configure -a"),
])
def test_setup_says_what_to_do_with_a_directory_another_package_changed(tmp_path: Path, gid: int, mode: int,
                                                                         advice: str) -> None:
    textfile_dir = tmp_path / "node-exporter"
    textfile_dir.mkdir()
    os.chown(textfile_dir, 0, gid)
    textfile_dir.chmod(mode)
    manifest = tmp_path / "agent-exporter.install.json"
    fake = FakeSystem(groups={"metrics": 777, "agent-exporter": GID}, users={"agent-exporter": UID})
    with pytest.raises(Refused) as refused:
        package.setup(fake, Out(), package_request(tmp_path), str(manifest))
    assert str(refused.value) == f"textfile directory {textfile_dir} " + advice.format(d=textfile_dir)
    assert mode_of(textfile_dir) == (gid, mode) and not manifest.exists()
