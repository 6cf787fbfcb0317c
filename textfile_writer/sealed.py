"""The writer's own files in Python's marshal format, sealed with a CRC-32 of their payload: the
unit cache (unitcache.py) and the state file (state.py).

A sealed file is marshal's (FORMAT, CRC-32 of the payload, the payload), the payload marshalled
apart. The checksum proves the payload is the one this writer made, so a file read on every run is
not checked again value by value (that checking cost as much as reading the file); a file that is
not the writer's own (cut, a flipped byte, another program's, another format) is a reason, never a
value. Only `marshal` and `zlib` (its CRC-32) are imported: this is on the write path.
"""

from __future__ import annotations

import marshal
from zlib import crc32

TYPE_CHECKING = False  # typing costs the write path an import of `re`
if TYPE_CHECKING:
    from typing import Any

# What marshal raises for bytes that are not one of its values (or one too large or deep)
UNREADABLE = (EOFError, ValueError, TypeError, AttributeError, MemoryError, RecursionError)


def seal(fmt: str, value: Any) -> bytes:
    """`value` (built-in types only: marshal refuses anything else itself) sealed as format `fmt`."""
    payload = marshal.dumps(value)
    return marshal.dumps((fmt, crc32(payload), payload))


def unseal(raw: bytes, fmt: str) -> tuple[Any, str | None]:
    """(the value sealed in `raw`, None), or (None, why not: "has another format" or "is corrupt")."""
    try:
        found, crc, payload = marshal.loads(raw)  # noqa: S302 - checked before its payload is read
        if found != fmt:
            return None, "has another format"
        if type(payload) is not bytes or crc32(payload) != crc:
            return None, "is corrupt"
        return marshal.loads(payload), None  # noqa: S302 - the writer's own, by its checksum
    except UNREADABLE:
        return None, "is corrupt"
