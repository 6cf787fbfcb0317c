"""typing.NamedTuple for the writer's hot path, without importing `typing`.

`typing` imports `re` (7 ms of a run that the timer starts every 10 s on every host). Type checkers
see typing.NamedTuple itself (mypy takes a bare `TYPE_CHECKING` name as true); at run time the same
class statement builds a collections.namedtuple (collections is loaded by the interpreter's start
anyway) with the class body's fields, defaults, methods, properties and docstring:

    class Counter(NamedTuple):
        cpu_ns: int
        active_enter_us: int | None = None
"""

from __future__ import annotations

from collections import namedtuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple as NamedTuple
else:
    _CLASS_KEYS = frozenset({"__annotations__", "__module__", "__qualname__", "__orig_bases__"})

    class _Records(type):
        def __new__(mcs, name, bases, namespace):
            if namespace.get("_records_root"):
                return super().__new__(mcs, name, bases, namespace)
            fields = tuple(namespace.get("__annotations__", {}))
            defaults = [namespace[f] for f in fields if f in namespace]
            if any(f in namespace for f in fields[:len(fields) - len(defaults)]):
                raise TypeError(f"{name}: a field without a default follows one with a default")
            base = namedtuple(name, fields, defaults=defaults, module=namespace.get("__module__"))
            body = {k: v for k, v in namespace.items() if k not in fields and k not in _CLASS_KEYS}
            body.update(__slots__=(), __module__=namespace.get("__module__"),
                        __qualname__=namespace.get("__qualname__", name))
            return type(name, (base,), body)

    class NamedTuple(metaclass=_Records):
        _records_root = True
