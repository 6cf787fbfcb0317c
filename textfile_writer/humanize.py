"""Numbers for people: sizes, durations, percentages — shared by `status` and the landing page."""

from __future__ import annotations

import math


def _known(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def size_kb(kb: float | None, missing: str = "-") -> str:
    """KiB as '512 KiB', '2.0 MiB', '3.0 GiB'."""
    if kb is None or not _known(kb) or kb < 0:
        return missing
    for unit, size in (("GiB", 1024.0 * 1024), ("MiB", 1024.0)):
        if kb >= size:
            return f"{kb / size:.1f} {unit}"
    return f"{kb:.0f} KiB"


def duration(seconds: float | None, missing: str = "-") -> str:
    """Seconds as '5s', '1m 1s', '1h 1m', '1d 1h' (the two largest units)."""
    if seconds is None or not _known(seconds) or seconds < 0:
        return missing
    s = int(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {s}s"
    return f"{s}s"


def span(seconds: float | None, missing: str = "-") -> str:
    """Seconds as one coarse unit, rounded down, for phrases such as '2 min ago': '5 s', '2 min',
    '1 h', '3 d'."""
    if seconds is None or not _known(seconds) or seconds < 0:
        return missing
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return f"{int(seconds)} s"


def percent(value: float | None, missing: str = "-", suffix: str = "") -> str:
    return f"{value:.1f}{suffix}" if value is not None and _known(value) else missing


def count(value: float | None, missing: str = "-") -> str:
    return f"{value:.0f}" if value is not None and _known(value) else missing


def plural(count: int, noun: str) -> str:
    """"1 pattern", "2 patterns", "0 patterns"."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
