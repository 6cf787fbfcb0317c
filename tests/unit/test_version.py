"""One version: textfile_writer.__version__ (which setup.cfg reads) is what `agent-exporter --version`
says and what a written file's agent_exporter_build_info carries, and CHANGELOG.md has a section
for it, or collects what comes next under Unreleased."""

from __future__ import annotations

import configparser
import re
import subprocess
from pathlib import Path

from captured import CGROUP_ROOT, fleet_replay
from cli_checks import EXE

import textfile_writer
from textfile_writer import writer
from textfile_writer.cgroups import Cgroupfs
from textfile_writer.collect import Clock
from textfile_writer.config import parse_config
from textfile_writer.options import Settings

ROOT = Path(__file__).resolve().parents[2]
VERSION = textfile_writer.__version__
# Keep a Changelog: "## [Unreleased]" or "## [1.2.3] - 2026-11-24", newest first.
SECTION = re.compile(r"^## \[(?P<name>[^\]]+)\](?: - (?P<date>\d{4}-\d\d-\d\d))?$", re.M)


def test_setup_cfg_reads_the_version_from_the_package() -> None:
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    assert setup["metadata"]["version"] == "attr: textfile_writer.__version__"


def test_version_option_says_the_package_version() -> None:
    done = subprocess.run([*EXE, "--version"], capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout) == (0, f"agent-exporter, version {VERSION}\n"), done.stderr


def test_build_info_carries_the_package_version(tmp_path: Path) -> None:
    """A run of the writer (on captured systemd answers) writes the version it was built from."""
    (tmp_path / "textfile").mkdir()
    config = parse_config(f"scope: user\ntextfile_dir: {tmp_path / 'textfile'}\n", "c.yml")
    settings = Settings(config=config, state_dir=str(tmp_path / "state"), timeout=5.0, verbose=False)
    writer.write(settings, runner=fleet_replay(), cgroupfs=Cgroupfs(str(CGROUP_ROOT)),
                 clock=Clock(wall=lambda: 1_800_000_000.0, monotonic_ns=lambda: 10**18), proc_root="/proc")
    text = (tmp_path / "textfile" / config.textfile_name).read_text()
    found = re.findall(r"^agent_exporter_build_info\{(.*)\} (\S+)$", text, re.M)
    assert found == [(f'version="{VERSION}"', "1")], text[-500:]


def test_changelog_has_a_section_for_the_version() -> None:
    sections = [(m["name"], m["date"]) for m in SECTION.finditer((ROOT / "CHANGELOG.md").read_text())]
    names = [name for name, _ in sections]
    assert names, "CHANGELOG.md has no '## [...]' sections"
    assert "Unreleased" not in names[1:], "Unreleased, when there, is the first section"
    undated = [name for name, date in sections if name != "Unreleased" and date is None]
    assert not undated, f"a released version's section needs its date (## [{undated[0]}] - YYYY-MM-DD)"
    # the version is released (its own section), or is the next one, collected under Unreleased
    assert VERSION in names or names[0] == "Unreleased", f"CHANGELOG.md has no section for {VERSION}"
    released = [name for name, _ in sections if name != "Unreleased"]
    assert released == sorted(released, key=lambda v: tuple(int(p) for p in v.split(".")), reverse=True)
    assert (ROOT / "LICENSE").read_text().split()[:3] == ["Apache", "License", "Version"]
