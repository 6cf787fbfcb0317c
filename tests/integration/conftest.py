"""Fixtures for the integration tests: one real systemd user manager per session and its agent fleet.

Outside CI a machine that cannot run the sandbox (not root, no unshare, no systemd binary) skips
these tests with the reason; with CI=true nothing skips: a missing prerequisite fails every test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from procs import IN_CI

from devtools.harness import Fleet, UserManager, install_fleet, prerequisites_missing, stop_quietly
from devtools.stack import NODE_EXPORTER


def unavailable(why: str) -> None:
    """Skip with the reason, or under CI=true fail: CI must run every integration test."""
    if IN_CI:
        pytest.fail(f"integration prerequisite missing under CI=true: {why}", pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="session")
def sandbox_prerequisites() -> None:
    """For tests that start a user manager of their own: root, unshare, nsenter, systemd, the writer."""
    why = prerequisites_missing()
    if why:
        unavailable(why)


@pytest.fixture(scope="session")
def user_manager(sandbox_prerequisites: None) -> Iterator[UserManager]:
    """A private `systemd --user` for the whole session, stopped (units, manager, cgroups) at its end.

    Its directories are in /tmp, not pytest's deeper tmp_path: the manager's socket paths must fit
    in an AF_UNIX address (107 bytes)."""
    manager = UserManager()
    try:
        manager.start()
        yield manager
    finally:
        stop_quietly(manager)


@pytest.fixture(scope="session")
def fleet(user_manager: UserManager) -> Fleet:
    """The agent units, installed and started once; the manager's teardown stops them."""
    return install_fleet(user_manager)


@pytest.fixture
def node_exporter_bin() -> str:
    if not os.access(NODE_EXPORTER, os.X_OK):
        unavailable(f"{NODE_EXPORTER} is missing (apt-get install prometheus-node-exporter)")
    return NODE_EXPORTER
