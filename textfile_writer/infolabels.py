"""The rules of an agent's `labels:` map, the extra labels that go on agent_info only.

The info-metric pattern: team, tier, owner... are joined onto any per-agent series in PromQL
(`agent_up * on(agent) group_left(team) agent_info`), so series counts do not multiply. Pure
functions returning why a name or value is refused (None when it is fine); config.py puts the
answer after file, line and key. Imported only while a configuration file is validated.
"""

from __future__ import annotations

from .errors import shown

MAX_LABELS = 16
MAX_NAME = 128
MAX_VALUE = 1024

# Prometheus' label name rule, [a-zA-Z_][a-zA-Z0-9_]*, as sets: `re` stays off the writer's imports.
_FIRST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_REST = _FIRST | frozenset("0123456789")

RESERVED = frozenset({
    # ours: agent_info's and every per-agent family's labels, and those planned (user: several managers)
    "agent", "type", "unit", "scope", "state", "result", "reason", "expected", "timer", "user",
    # the exposition format's: histogram buckets and summary quantiles
    "le", "quantile",
    # Prometheus' target labels: on agent_info they would be renamed exported_job / exported_instance
    "job", "instance",
})


def name_problem(name: str) -> str | None:
    if not name or name[0] not in _FIRST or not _REST.issuperset(name):
        return (f"label name {shown(name)} is not a Prometheus label name (a letter or _, then letters, "
                "digits and _)")
    if len(name) > MAX_NAME:
        return f"label name {shown(name)} is longer than {MAX_NAME} characters"
    if name.startswith("__"):
        return f"label name {shown(name)} starts with __, which Prometheus reserves for itself"
    if name in RESERVED:
        return (f"label name {name!r} is one the exporter or Prometheus sets itself "
                f"(not allowed: {', '.join(sorted(RESERVED))})")
    return None


def value_problem(value: str) -> str | None:
    if value == "":
        return "is empty (Prometheus treats an empty label as no label; leave it out)"
    if len(value) > MAX_VALUE:
        return f"is longer than {MAX_VALUE} characters"
    if "\0" in value:
        return "holds a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8 text (a lone surrogate escape)"
    return None
