"""Unit-name patterns matched as systemd matches them: glibc fnmatch(3) with FNM_NOESCAPE.

systemd compares a unit name with a pattern by `strv_fnmatch(patterns, name, FNM_NOESCAPE)`, so
`systemctl list-units -- agent-*` and this module must agree on every pattern. The fnmatch module
does not (it builds a regular expression, imports `re`, and reads `[a-` or `[[` differently); this
is a port of glibc's single-byte matcher (posix/fnmatch_loop.c) in the C locale, where the manager
runs:

- `*` matches any run of characters, `/` and a leading `.` included (no FNM_PATHNAME, FNM_PERIOD);
  `?` any one character; a backslash is an ordinary character (FNM_NOESCAPE).
- `[...]` matches one character of the set; `[!...]` and `[^...]` one not in it; a `]` right after
  `[`, `[!` or `[^` belongs to the set; `a-z` is a range of byte values; `[:digit:]` and the other
  eleven POSIX classes of the C locale; `[=a=]` and `[.a.]` name the character `a` itself.
- glibc's edges, kept: a `[` with no closing `]` is a literal `[` (`[ab` matches "[ab", `[[`
  matches "[["); but an unknown class (`[[:foo:]]`), a `[.ab.]` of two characters, a range with
  no end (`[a-`, `[a-[.b`) or an unterminated `[.`/`[=` after a matching member make the bracket
  match nothing at that place.

Strings are compared as their UTF-8 bytes (one character per byte, as in the C locale); a NUL ends
the pattern and the name, as in C. Under a UTF-8 locale glibc compares characters instead: the two
agree on ASCII, which is all a valid unit name holds. POSIXLY_CORRECT in the manager's environment
would make `[^` literal; it is taken as unset.

Cost: the star backtracking keeps only the last `*` (each other element takes one character), so a
match takes at most len(pattern) * len(name) steps, never exponential; patterns with `*` only take
str.find's time.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing, collections.abc: names for the type checker only
if TYPE_CHECKING:
    from collections.abc import Iterable


_LOWER = "abcdefghijklmnopqrstuvwxyz"
_UPPER = _LOWER.upper()
_DIGIT = "0123456789"
_PUNCT = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
_CNTRL = "".join(map(chr, range(32))) + "\x7f"
# wctype(3) names of the C locale and their members (bytes 0x80-0xff belong to none).
_CLASSES = {
    "alnum": _LOWER + _UPPER + _DIGIT, "alpha": _LOWER + _UPPER, "blank": " \t", "cntrl": _CNTRL,
    "digit": _DIGIT, "graph": _LOWER + _UPPER + _DIGIT + _PUNCT, "lower": _LOWER,
    "print": _LOWER + _UPPER + _DIGIT + _PUNCT + " ", "punct": _PUNCT, "space": " \t\n\v\f\r",
    "upper": _UPPER, "xdigit": _DIGIT + "abcdefABCDEF",
}
# glibc's CHAR_CLASS_MAX_LENGTH (CHARCLASS_NAME_MAX): a longer `[:name` makes the bracket fail.
_CLASS_NAME_MAX = 2048
_FAIL = -1  # the bracket does not match this character
_LITERAL = -2  # the bracket is unterminated: `[` is an ordinary character


def any_match(patterns: Iterable[str], name: str) -> bool:
    """True when one of the patterns matches name (systemd's strv_fnmatch)."""
    return any(match(pattern, name) for pattern in patterns)


def match(pattern: str, name: str) -> bool:
    """glibc fnmatch(pattern, name, FNM_NOESCAPE) == 0, in the C locale. Remembered for the run:
    discovery and the agents' labelling ask the same questions (patterns x units, bounded by the
    configuration and the units it finds)."""
    known = _ANSWERS.get((pattern, name))
    if known is None:
        known = _ANSWERS[pattern, name] = _fnmatch(pattern, name)
    return known


_ANSWERS: dict[tuple[str, str], bool] = {}


_PLANS: dict[str, tuple[str, tuple[str, ...]]] = {}


def _fnmatch(pattern: str, name: str) -> bool:
    plan = _PLANS.get(pattern)
    if plan is None:
        plan = _PLANS[pattern] = _plan(pattern)
    wide, parts = plan
    if "\0" in name:
        name = name[:name.index("\0")]
    if not name.isascii():
        name = _bytewise(name)
    return _stars_only(parts, name) if parts else _match(wide, name)


def _plan(pattern: str) -> tuple[str, tuple[str, ...]]:
    """What matching with the pattern needs of it, worked out once a run: the pattern up to a NUL,
    one character a byte (the same text for ASCII), and for a pattern of `*` only its parts
    between the stars (else ())."""
    if "\0" in pattern:
        pattern = pattern[:pattern.index("\0")]
    wide = pattern if pattern.isascii() else _bytewise(pattern)
    return wide, tuple(wide.split("*")) if "?" not in wide and "[" not in wide else ()


def _bytewise(text: str) -> str:
    """One character per UTF-8 byte (surrogate escapes give back the bytes os.listdir could not decode)."""
    return text.encode("utf-8", "surrogateescape").decode("latin-1")


def _stars_only(parts: tuple[str, ...], name: str) -> bool:
    if len(parts) == 1:
        return parts[0] == name
    first, last = parts[0], parts[-1]
    if len(first) + len(last) > len(name) or not name.startswith(first) or not name.endswith(last):
        return False
    at, end = len(first), len(name) - len(last)
    for part in parts[1:-1]:
        found = name.find(part, at, end)
        if found < 0:
            return False
        at = found + len(part)
    return True


def _match(pattern: str, name: str) -> bool:
    p = n = 0
    star_p, star_n = -1, 0
    plen, nlen = len(pattern), len(name)
    while True:
        if p < plen:
            if pattern[p] == "*":
                p += 1
                star_p, star_n = p, n
                continue
            if n < nlen:
                after = _element(pattern, p, name[n])
                if after >= 0:
                    p, n = after, n + 1
                    continue
        elif n == nlen:
            return True
        if star_p < 0 or star_n >= nlen:
            return False
        star_n += 1
        p, n = star_p, star_n


def _element(pattern: str, p: int, ch: str) -> int:
    """Where the pattern goes on after the element at p matched ch, or _FAIL."""
    c = pattern[p]
    if c == "?":
        return p + 1
    if c == "[":
        after = _bracket(pattern, p + 1, ch)
        if after != _LITERAL:
            return after
    return p + 1 if c == ch else _FAIL


def _at(pattern: str, i: int) -> str:
    """pattern[i], or "" past its end (C's NUL: less than every character)."""
    return pattern[i] if i < len(pattern) else ""


def _bracket(pattern: str, i: int, fn: str) -> int:
    """The bracket expression whose `[` is just before i, against the character fn: the index
    after its `]` when it matches, _FAIL, or _LITERAL. The order of the tests is glibc's."""
    negate = _at(pattern, i) in ("!", "^")
    if negate:
        i += 1
    c = _at(pattern, i)
    i += 1
    while True:
        member = True  # c starts an ordinary member (glibc's normal_bracket)
        if c == "[" and _at(pattern, i) == ":":
            end, cls = _class_name(pattern, i)
            if end == _FAIL:
                return _FAIL
            if end != _LITERAL:
                if cls is None:
                    return _FAIL
                if fn in cls:
                    return _skip(pattern, end, negate)
                c, i, member = _at(pattern, end), end + 1, False
        elif c == "[" and _at(pattern, i) == "=":
            sym = _at(pattern, i + 1)
            if sym and _at(pattern, i + 2) == "=" and _at(pattern, i + 3) == "]":
                if fn == sym:
                    return _skip(pattern, i + 4, negate)
                c, i, member = _at(pattern, i + 4), i + 5, False
        elif c == "":
            return _LITERAL
        if member:
            if c == "[" and _at(pattern, i) == ".":
                end, sym = _collating(pattern, i)
                if end < 0 or len(sym) != 1:
                    return _FAIL
                is_range = _at(pattern, end) == "-" and _at(pattern, end + 1) != ""
                if not is_range and fn == sym:
                    return _skip(pattern, end, negate)
                cold, i = sym, end
            else:
                nxt = _at(pattern, i + 1)
                is_range = _at(pattern, i) == "-" and nxt not in ("", "]")
                if not is_range and c == fn:
                    return _skip(pattern, i, negate)
                cold = c
            c = _at(pattern, i)
            i += 1
            if c == "-" and _at(pattern, i) != "]":
                cend = _at(pattern, i)
                i += 1
                if cend == "[" and _at(pattern, i) == ".":
                    end, sym = _collating(pattern, i)
                    if end < 0 or len(sym) != 1:
                        return _FAIL
                    cend, i = sym, end
                elif cend == "":
                    return _FAIL
                if cold <= fn <= cend:
                    return _skip(pattern, i, negate)
                c = _at(pattern, i)
                i += 1
        if c == "]":
            return i if negate else _FAIL


def _class_name(pattern: str, i: int) -> tuple[int, str | None]:
    """`[:name:]` whose `:` is at i: (index after it, the class's members or None for an unknown
    name), (_LITERAL, None) when it is no class (the `[` is then an ordinary member), or
    (_FAIL, None) for a name longer than glibc takes."""
    k = i
    while True:
        if k - i == _CLASS_NAME_MAX:
            return _FAIL, None
        k += 1
        c = _at(pattern, k)
        if c == ":" and _at(pattern, k + 1) == "]":
            return k + 2, _CLASSES.get(pattern[i + 1:k])
        if c < "a" or c >= "z":  # glibc's own test: `z` ends a name too
            return _LITERAL, None


def _collating(pattern: str, i: int) -> tuple[int, str]:
    """`[.sym.]` whose first `.` is at i: (index after it, sym), or (_FAIL, "") when unterminated."""
    k = i
    while True:
        k += 1
        c = _at(pattern, k)
        if c == "." and _at(pattern, k + 1) == "]":
            return k + 2, pattern[i + 1:k]
        if c == "":
            return _FAIL, ""


def _skip(pattern: str, i: int, negate: bool) -> int:
    """A member matched: the index after the bracket's `]` (found by glibc's own, simpler scan),
    _FAIL when negated, _LITERAL when there is no `]` (glibc 2.36; 2.29 failed there)."""
    while True:
        c = _at(pattern, i)
        i += 1
        if c == "]":
            return _FAIL if negate else i
        if c == "":
            return _LITERAL
        if c == "[" and _at(pattern, i) == ":":
            k, count = i, 0
            while True:
                k += 1
                count += 1
                if count == _CLASS_NAME_MAX:
                    return _FAIL
                cc = _at(pattern, k)
                if cc == ":" and _at(pattern, k + 1) == "]":
                    break
                if cc < "a" or cc >= "z":
                    k = i - 2
                    break
            i = k + 2
        elif c == "[" and _at(pattern, i) == "=":
            if _at(pattern, i + 1) == "" or _at(pattern, i + 2) != "=" or _at(pattern, i + 3) != "]":
                return _FAIL
            i += 4
        elif c == "[" and _at(pattern, i) == ".":
            k = i
            while True:
                k += 1
                cc = _at(pattern, k)
                if cc == "":
                    return _FAIL
                if cc == "." and _at(pattern, k + 1) == "]":
                    break
            i = k + 2
