"""Fixtures of the deploy tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devtools.harness import UserManager, stop_quietly


@pytest.fixture
def manager(sandbox_prerequisites: None) -> Iterator[UserManager]:
    """A user manager of this test's own: the session's `user_manager` and its fleet are shared by
    other tests that count every agent-*.service in it."""
    m = UserManager()
    try:
        m.start()
        yield m
    finally:
        stop_quietly(m)
