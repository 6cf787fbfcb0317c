"""Placeholder until the unitglob branch lands (fnmatch; replaced by the re-free matcher)."""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase


def match(pattern: str, name: str) -> bool:
    return fnmatchcase(name, pattern)


def any_match(patterns: Sequence[str], name: str) -> bool:
    return any(match(p, name) for p in patterns)
