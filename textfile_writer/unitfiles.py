"""The names `systemctl list-unit-files -- PATTERN...` lists, read from the unit search path.

list-unit-files makes the manager read every matching file (about 0.4 ms of its CPU per unit,
every 10 s); a listing of the search path's directories gives the same names for a few stats and
readdirs. The rules are systemd 252's unit_file_get_list() (src/shared/install.c): for each
directory of the search path, in order, each entry
- that is not hidden (FOREACH_DIRENT skips names starting with `.`),
- whose name is a valid unit name of any kind (unit_name_is_valid(name, UNIT_NAME_ANY)),
- that one of the patterns matches (unitglob: fnmatch with FNM_NOESCAPE; no patterns: every name),
- and that is a regular file or a symbolic link, not followed: an alias, a masked unit (a link to
  /dev/null), a dangling link or a link to a directory all count; a directory (`x.service.d`,
  `x.service.wants`, a directory named `x.service`), a FIFO or a socket do not.
A name is listed once, whichever directory has it first.

Where we differ, on purpose: systemd skips a search path entry it cannot open when the error is
ENOENT, ENOTDIR or EACCES and fails the whole call on any other error (ELOOP, EIO), and on an
entry whose type it cannot read; we skip those too, so a broken directory costs its names, never
the run. A FIFO or a file in place of a directory is ENOTDIR (opendir uses O_DIRECTORY): nothing
blocks.

dirs_key() is the cache's identity of the listing; see its docstring for what it does not see.
Only `os`, `stat` and `time` (built in) are imported: the writer's hot path imports this module.
"""

from __future__ import annotations

import os
import stat
import time

from .errors import SystemdError
from .unitglob import any_match

TYPE_CHECKING = False  # typing, collections.abc: names for the type checker only
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

# systemd 252 src/basic/unit-name.h, unit-def.c: the unit types and the longest name (exclusive).
UNIT_TYPES = frozenset({"service", "mount", "swap", "socket", "target", "device", "automount", "timer",
                        "path", "slice", "scope"})
UNIT_NAME_MAX = 256
# VALID_CHARS "@" of unit-name.c: ASCII digits and letters, ":-_.\" and "@".
NAME_CHARS = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ:-_.\\@")
# A directory whose mtime or ctime is this recent may change again within the same timestamp tick
# (the kernel's coarse clock; 1 s on ext3, 2 s on FAT) without its key changing: its key is not one
# to cache on. Git calls this a racily clean index.
SETTLE_NS = 3 * 10**9
_UNSETTLED = "unsettled"

_OCTAL = "01234567"
_HEX = "0123456789abcdefABCDEF"
_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}

DirsKey = tuple[tuple[object, ...], ...]


def parse_unit_path(text: str) -> tuple[str, ...]:
    """The directories of `systemctl show --property=UnitPath` output, in order.

    systemd prints `UnitPath=dir dir ...` on one line; a directory with a space, a quote, a
    backslash, `$` or a control character is double-quoted, with `\\"`, `\\\\`, `\\$`, C escapes
    (`\\t`) and octal bytes (`\\303`) inside (shell_maybe_quote). Returns str as os.listdir would
    spell the path (undecodable bytes as surrogates). SystemdError when there is no UnitPath= line.
    """
    for line in text.splitlines():
        if line.startswith("UnitPath="):
            return tuple(_words(line[len("UnitPath="):]))
    raise SystemdError("systemctl show printed no UnitPath= line")


def _words(value: str) -> list[str]:
    words: list[str] = []
    i, n = 0, len(value)
    while i < n:
        if value[i] == " ":
            i += 1
        elif value[i] == '"':
            word, i = _quoted(value, i + 1)
            words.append(word)
        else:
            end = value.find(" ", i)
            end = n if end < 0 else end
            words.append(value[i:end])
            i = end
    return words


def _quoted(value: str, i: int) -> tuple[str, int]:
    """The word whose opening quote is just before i, unescaped, and the index after its closing quote."""
    out = bytearray()
    n = len(value)
    while i < n and value[i] != '"':
        c = value[i]
        i += 1
        if c == "\\" and i < n:
            c = value[i]
            i += 1
            if c in _ESCAPES:
                c = _ESCAPES[c]
            elif c in _OCTAL and i + 1 < n and value[i] in _OCTAL and value[i + 1] in _OCTAL:
                out.append(int(value[i - 1:i + 2], 8) & 0xFF)
                i += 2
                continue
            elif c == "x" and i + 1 < n and value[i] in _HEX and value[i + 1] in _HEX:
                out.append(int(value[i:i + 2], 16))
                i += 2
                continue
        out += c.encode("utf-8", "surrogateescape")
    return os.fsdecode(bytes(out)), i + 1


def valid_unit_name(name: str) -> bool:
    """systemd 252's unit_name_is_valid(name, UNIT_NAME_ANY): a plain name, a template (`a@.service`)
    or an instance (`a@b.service`), shorter than UNIT_NAME_MAX, with a known type after the last dot."""
    dot = name.rfind(".")
    if dot <= 0 or len(name) >= UNIT_NAME_MAX or name[dot + 1:] not in UNIT_TYPES:
        return False
    prefix = name[:dot]
    return not prefix.startswith("@") and NAME_CHARS.issuperset(prefix)


def installed(unit_path: Sequence[str], patterns: Sequence[str]) -> list[str]:
    """Sorted names of the unit files `systemctl list-unit-files -- PATTERN...` would list, for a
    manager whose search path is unit_path (no patterns: all of them)."""
    names: set[str] = set()
    for directory in unit_path:
        names.update(_listed(directory, patterns))
    return sorted(names)


def _listed(directory: str, patterns: Sequence[str]) -> Iterable[str]:
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                name = entry.name
                if (name[:1] != "." and valid_unit_name(name) and (not patterns or any_match(patterns, name))
                        and _file_or_link(entry)):
                    yield name
    except (OSError, ValueError):  # absent, not a directory, unreadable; ValueError: a NUL in the path
        return


def _file_or_link(entry: os.DirEntry[str]) -> bool:
    """DT_REG or DT_LNK (an lstat when the file system gives no type); an entry gone meanwhile is not."""
    try:
        return entry.is_symlink() or entry.is_file(follow_symlinks=False)
    except OSError:
        return False


def dirs_key(unit_path: Sequence[str], clock: Callable[[], int] = time.time_ns) -> DirsKey:
    """A cheap identity of what the search path's directories hold: per directory, in order,
    (path, st_dev, st_ino, st_mtime_ns, st_ctime_ns) by os.stat (symbolic links followed, as
    systemd follows them), or (path, None) when it is absent or no directory.

    Adding, removing or renaming an entry in a directory changes its mtime and ctime; creating or
    removing a directory, or putting another one (or a link to another) in its place, changes its
    inode; chmod changes its ctime. Not seen: a unit file's content (which does not change which
    names exist), a change inside a subdirectory (`x.service.d/`, which list-unit-files ignores),
    and file systems that keep no directory mtime. Two changes within one timestamp tick would
    leave the same key: while a directory changed in the last SETTLE_NS, the key ends with
    ("unsettled", now in ns), so it equals no other key and nothing is cached on it. Take the key
    before the listing it identifies: a change in between then only costs a second listing.
    `clock` gives the wall-clock time in ns (the time file systems stamp).
    """
    now = clock()
    parts: list[tuple[object, ...]] = []
    settled = True
    for directory in unit_path:
        try:
            st = os.stat(directory)
        except (OSError, ValueError):
            parts.append((directory, None))
            continue
        if not stat.S_ISDIR(st.st_mode):
            parts.append((directory, None))
            continue
        parts.append((directory, st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns))
        if now - max(st.st_mtime_ns, st.st_ctime_ns) < SETTLE_NS:
            settled = False
    if not settled:
        parts.append((_UNSETTLED, now))
    return tuple(parts)


def same_directories(a: DirsKey, b: DirsKey) -> bool:
    """Whether two keys saw the same directories in the same state, whether or not they were settled:
    for what changes only with a directory's listing and is re-read anyway when it changes (the
    names a cached `show` gave), not for the listing itself."""
    return _without_mark(a) == _without_mark(b)


def _without_mark(key: DirsKey) -> DirsKey:
    return key[:-1] if key and key[-1][:1] == (_UNSETTLED,) else key
