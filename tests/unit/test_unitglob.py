"""unitglob.py against the real program: glibc's fnmatch(3) with FNM_NOESCAPE, called through ctypes.

systemd matches unit patterns with strv_fnmatch(patterns, name, FNM_NOESCAPE); libc's fnmatch is
that very function. In this process LC_CTYPE is the environment's (C.UTF-8 here), under which glibc
compares characters; on ASCII that is the C locale's byte comparison, so the property test draws
ASCII. Non-ASCII cases are checked against fnmatch in a child process under LC_ALL=C.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fnmatch
import json
import os
import subprocess
import sys
import time

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from textfile_writer.unitglob import any_match, match

FNM_NOESCAPE = 2
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.fnmatch.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int]
_libc.fnmatch.restype = ctypes.c_int


def libc_match(pattern: str, name: str) -> bool:
    return _libc.fnmatch(pattern.encode("utf-8", "surrogateescape"), name.encode("utf-8", "surrogateescape"),
                         FNM_NOESCAPE) == 0


# Pieces that reach every branch of glibc's bracket code: negations, `]` first, ranges and their
# ends, classes (valid, invalid, unterminated, with the `z` glibc's scan stops at), equivalence
# classes and collating symbols, a backslash that escapes nothing.
PATTERN_PIECES = st.sampled_from([
    "a", "b", "z", "-", "]", "[", "!", "^", "*", "?", "\\", ":", "=", ".", "/", " ",
    "[a-c]", "[!a]", "[^b]", "[]a]", "[!]]", "[a-]", "[-a]", "[:alpha:]", "[:digit:]", "[:upper:]", "[:foo:]",
    "[:", ":]", "[=a=]", "[=", "=]", "[.a.]", "[.-.]", "[.", ".]", "[[:space:]]", "[[:xdigiz:]]",
])
NAME_CHARS = st.sampled_from(list("abz-]![^*?\\:=./ 1A\t"))


@settings(max_examples=3000, deadline=None)
@given(st.lists(PATTERN_PIECES, max_size=8).map("".join), st.lists(NAME_CHARS, max_size=8).map("".join))
@example("[[", "[[")
@example("[a-", "a")
@example("*a*a*a*b", "aaaaab")
def test_match_is_libc_fnmatch_noescape(pattern: str, name: str) -> None:
    assert match(pattern, name) == libc_match(pattern, name), (pattern, name)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("agent-*?[]!.@service\\x20")), max_size=30),
       st.text(alphabet=st.sampled_from(list("agent-.@service\\x20")), max_size=40))
def test_unit_like_patterns_and_names(pattern: str, name: str) -> None:
    assert match(pattern, name) == libc_match(pattern, name), (pattern, name)


@pytest.mark.parametrize(("pattern", "name", "expected"), [
    ("agent-*.service", "agent-a.service", True),
    ("agent-*.service", "agent-.service", True),
    ("agent-*.service", "agent-a.socket", False),
    ("*", "", True),
    ("", "", True),
    ("", "a", False),
    ("a*b*c", "abc", True),
    ("a*b*c", "acb", False),
    ("a?c", "abc", True),
    ("a?c", "ac", False),
    ("*.service", ".service", True),         # no FNM_PERIOD: a leading dot is an ordinary character
    ("a*c", "a/b/c", True),                  # no FNM_PATHNAME
    ("agent-we\\x20*", "agent-we\\x20ird.service", True),  # FNM_NOESCAPE: `\` is itself
    ("\\*", "\\abc", True),
    ("\\*", "*", False),
    ("[abc]", "b", True),
    ("[a-c]x", "bx", True),
    ("[a-c]x", "dx", False),
    ("[!a-c]", "d", True),
    ("[^a-c]", "b", False),
    ("[]a]", "]", True),
    ("[!]a]", "]", False),
    ("[!]a]", "b", True),
    ("[a-]", "-", True),
    ("[[:digit:]]x", "7x", True),
    ("[[:digit:][:upper:]]", "Q", True),
    ("[[:digit:]]", "a", False),
    ("[=a=]", "a", True),
    ("[.a.]", "a", True),
    ("[[.-.]]", "-", True),
    ("[.-.]", "-", False),                   # not a collating symbol: the set `.`-`.`
])
def test_explicit_cases(pattern: str, name: str, expected: bool) -> None:
    assert match(pattern, name) is expected
    assert libc_match(pattern, name) is expected


# Edges of glibc's brackets, and what Python's fnmatch (a regular expression) says: unitglob is glibc.
@pytest.mark.parametrize(("pattern", "name", "glibc", "python"), [
    ("[ab", "[ab", True, True),         # unterminated: a literal `[`...
    ("[[", "[[", True, True),           # ...even when `[` matched a member first (glibc 2.36; 2.29 failed)
    ("[a", "a", False, False),
    ("[a-", "[a-", False, True),        # a range with no end: glibc fails, fnmatch reads a literal
    ("[[[=", "[[[=", False, True),      # a member matched, then a broken `[=`: glibc fails
    ("[[:foo:]]", "f", False, False),   # an unknown class
    ("[[:alpha:]]", "a", True, False),  # fnmatch knows no classes: the set `[:alph`, then `]`
    ("[[:alpha:]]", ":]", False, True),
    ("[=a=]", "a", True, True),
    ("[^a]", "b", True, False),         # glibc negates with `^` too (without POSIXLY_CORRECT)
    ("[\\]]", "\\]", True, True),        # FNM_NOESCAPE: the set is just `\`, then a literal `]`
])
def test_glibc_edges_and_where_python_fnmatch_differs(pattern: str, name: str, glibc: bool, python: bool) -> None:
    assert libc_match(pattern, name) is glibc
    assert match(pattern, name) is glibc
    assert fnmatch.fnmatchcase(name, pattern) is python


def test_class_names_past_glibcs_limit() -> None:
    # CHARCLASS_NAME_MAX (2048): glibc gives up on a longer `[:name`, even one that is no class
    for length in (2046, 2047, 2048, 2049, 3000):
        pattern = "[[:" + "a" * length + "1]"
        assert match(pattern, "[") == libc_match(pattern, "["), length
        pattern = "[x[:" + "a" * length + "1]"
        assert match(pattern, "x") == libc_match(pattern, "x"), length


NON_ASCII = [
    ("[é]", "é"), ("[é]", "\udcc3"), ("é*", "éa"), ("[!a]", "é"), ("?", "é"), ("??", "é"),
    ("[a-é]", "\udcc3"), ("[\udcff]", "\udcff"), ("*\udcff*", "a\udcffb"), ("agent-*", "agent-\udcff.service"),
    ("[[:alpha:]]", "é"), ("[!x]?", "é"),
]


def test_non_ascii_is_bytes_as_in_the_c_locale() -> None:
    # A child under LC_ALL=C: fnmatch compares bytes there, as the manager does.
    code = (
        "import ctypes, ctypes.util, json, sys\n"
        "libc = ctypes.CDLL(ctypes.util.find_library('c'))\n"
        "cases = json.loads(sys.stdin.read())\n"
        "enc = lambda s: s.encode('utf-8', 'surrogateescape')\n"
        "print(json.dumps([libc.fnmatch(enc(p), enc(n), 2) == 0 for p, n in cases]))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("LC_") and k != "LANG"}
    done = subprocess.run([sys.executable, "-c", code], input=json.dumps(NON_ASCII), env={**env, "LC_ALL": "C"},
                          capture_output=True, text=True, check=True, timeout=60)
    expected = json.loads(done.stdout)
    assert [match(p, n) for p, n in NON_ASCII] == expected
    assert True in expected and False in expected


def test_a_nul_ends_pattern_and_name_as_in_c() -> None:
    assert match("a\0b", "a") and match("a", "a\0b") and match("a\0*", "a")


def test_hostile_patterns_take_polynomial_time() -> None:
    name = "a" * 255
    for pattern in ("*a" * 100 + "*b", "*?" * 100 + "*b", "*[a]" * 100 + "*b", "*" + "[!b]" * 200 + "b"):
        start = time.monotonic()
        assert match(pattern, name) is False
        assert time.monotonic() - start < 2, pattern
    assert match("*a" * 100 + "*", name) is True


def test_any_match() -> None:
    assert any_match(["x*", "agent-*"], "agent-a.service")
    assert not any_match(["x*", "y*"], "agent-a.service")
    assert not any_match([], "agent-a.service")
