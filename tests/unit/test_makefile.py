"""The Makefile's two install sets: `make demo` installs what the demo runs and nothing of the tests'
(issue 14), and `make test` after `make demo` still adds all of the tests' own. Read from `make -n`
(what make would run) on a fresh stamp directory: nothing is installed."""

from __future__ import annotations

import configparser
import os
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# What only the tests use: the Debian packages the Makefile names for them, and every `test` extra.
TEST_ONLY_APT = ("prometheus-alertmanager", "chromium", "fonts-dejavu-core", "shellcheck", "slowhttptest",
                 "curl", "openssl", "dbus", "iproute2")


def extras() -> list[str]:
    parser = configparser.ConfigParser()
    assert parser.read(REPO / "setup.cfg")
    lines = parser["options.extras_require"]["test"].split()
    names = [re.split(r"[<>=!~\[;]", line)[0] for line in lines]
    assert "pytest" in names and "mypy" in names  # the extras are read, not an empty list
    return names


def dry_run(target: str, venv: Path) -> str:
    # (as a make of its own: under `make test` the environment says make[1], which would print its
    # directory, and MAKEFLAGS would pass on -n or -j of the outer make)
    env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    done = subprocess.run(["make", "-n", target, f"VENV={venv}"], cwd=REPO, capture_output=True,
                          text=True, timeout=60, check=False, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def installs(plan: str) -> tuple[set[str], list[str]]:
    """(the Debian packages the plan checks for, its pip install lines)."""
    apt = set()
    for found in re.finditer(r"for p in ([^;]*); do dpkg-query", plan):
        apt |= set(found.group(1).split())
    return apt, [line for line in plan.splitlines() if " -m pip install " in line]


def test_demo_installs_no_test_extra_and_no_test_package(tmp_path: Path) -> None:
    plan = dry_run("demo", tmp_path / "venv")
    apt, pip = installs(plan)
    assert {"prometheus", "prometheus-node-exporter", "systemd", "util-linux", "python3-venv"} <= apt
    assert not apt & set(TEST_ONLY_APT), plan
    assert pip == [f"{tmp_path}/venv/bin/python -m pip install -q -e ."], plan
    words = set(re.findall(r"[\w.-]+", plan.lower()))
    assert not words & {name.lower() for name in extras()}, plan
    assert "[test]" not in plan
    assert plan.rstrip().endswith("-m devtools.demo")


def test_test_after_demo_adds_what_the_demo_left_out(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    for made in ("bin/python", ".apt-demo-stamp", ".pip-demo-stamp"):  # what `make demo` leaves
        (venv / made).touch()
    plan = dry_run("test", venv)
    apt, pip = installs(plan)
    assert set(TEST_ONLY_APT) <= apt
    assert f"{venv}/bin/python -m pip install -q -e '.[test]'" in pip
    assert " -m venv " not in plan  # the demo's venv is kept
    assert "install -q -e .\n" not in plan  # and its runtime install not repeated


def test_demo_after_test_installs_nothing(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    for made in ("bin/python", ".apt-demo-stamp", ".pip-demo-stamp", ".apt-stamp", ".pip-stamp"):
        (venv / made).touch()
    assert dry_run("demo", venv).strip() == f"{venv}/bin/python -m devtools.demo"
