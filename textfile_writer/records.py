"""typing.NamedTuple for the writer's hot path, without importing `typing` or `collections`.

`typing` imports `re` (7 ms of a run that the timer starts every 10 s on every host), and
`collections` (not loaded by the interpreter's start) costs 2-3 ms with what it imports, plus
0.2-0.3 ms per namedtuple class it builds. Type checkers see typing.NamedTuple itself (mypy takes
a bare `TYPE_CHECKING` name as true); at run time the same class statement builds a tuple subclass
with the class body's fields, defaults, methods, properties and docstring, and the namedtuple API
the code uses (`_fields`, `_field_defaults`, `_make`, `_replace`, `_asdict`, the repr):

    class Counter(NamedTuple):
        cpu_ns: int
        active_enter_us: int | None = None
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple as NamedTuple
else:
    from _collections import _tuplegetter  # the C field accessor collections.namedtuple uses

    _CLASS_KEYS = frozenset({"__annotations__", "__module__", "__qualname__", "__orig_bases__"})

    def _repr(self):
        return f"{type(self).__name__}({', '.join(f'{f}={v!r}' for f, v in zip(self._fields, self, strict=True))})"

    def _make(cls, iterable):
        made = tuple.__new__(cls, iterable)
        if len(made) != len(cls._fields):
            raise TypeError(f"{cls.__name__}: expected {len(cls._fields)} values, got {len(made)}")
        return made

    def _replace(self, **changes):
        made = self._make(map(changes.pop, self._fields, self))
        if changes:
            raise ValueError(f"{type(self).__name__}: unexpected field names {sorted(changes)!r}")
        return made

    def _asdict(self):
        return dict(zip(self._fields, self, strict=True))

    def _getnewargs(self):
        return tuple(self)

    _TEMPLATES = {}  # arity -> the code of `__new__(_cls, a0, a1...)`, compiled once per arity

    def _constructor(name, fields, defaults):
        """`__new__(_cls, a, b=...)` as namedtuple builds it, so that making a record costs one call
        (AgentSample is made for every agent on every run). One compile per arity, then the code is
        copied with the field names as its argument names (they are its only locals)."""
        for f in fields:
            if not f.isidentifier() or f.startswith("_"):
                raise ValueError(f"{name}: bad field name {f!r}")
        code = _TEMPLATES.get(len(fields))
        if code is None:
            args = ", ".join(f"a{i}" for i in range(len(fields)))
            scope = {}
            exec(f"def __new__(_cls, {args}): return _tuple_new(_cls, ({args}{',' if fields else ''}))", scope)  # noqa: S102 (our own text)
            code = _TEMPLATES[len(fields)] = scope["__new__"].__code__
        new = type(_repr)(code.replace(co_varnames=("_cls", *fields), co_qualname=f"{name}.__new__"),
                          {"_tuple_new": tuple.__new__}, "__new__", tuple(defaults) or None)
        return new

    class _Records(type):
        def __new__(mcs, name, bases, namespace):
            if namespace.get("_records_root"):
                return super().__new__(mcs, name, bases, namespace)
            fields = tuple(namespace.get("__annotations__", {}))
            defaults = [namespace[f] for f in fields if f in namespace]
            if any(f in namespace for f in fields[:len(fields) - len(defaults)]):
                raise TypeError(f"{name}: a field without a default follows one with a default")
            module = namespace.get("__module__")
            base = {f: _tuplegetter(i, f"Field {i}: {f}") for i, f in enumerate(fields)}
            base.update(
                __slots__=(), __module__=module, __new__=_constructor(name, fields, defaults),
                __repr__=_repr, __getnewargs__=_getnewargs, __match_args__=fields,
                _fields=fields, _field_defaults=dict(zip(fields[len(fields) - len(defaults):], defaults, strict=True)),
                _make=classmethod(_make), _replace=_replace, _asdict=_asdict)
            body = {k: v for k, v in namespace.items() if k not in fields and k not in _CLASS_KEYS}
            body.update(__slots__=(), __module__=module, __qualname__=namespace.get("__qualname__", name))
            if base.keys() & body.keys() - {"__slots__", "__module__"}:
                # The body replaces a generated method: two classes, as typing.NamedTuple makes, so
                # that its super() reaches the generated one (a __repr__ that wraps the tuple's).
                return type(name, (type(name, (tuple,), base),), body)
            return type(name, (tuple,), {**base, **body})

    class NamedTuple(metaclass=_Records):
        _records_root = True


if TYPE_CHECKING:
    from typing import TypeVar

    _R = TypeVar("_R")

    def maker(cls: type[_R]) -> type[_R]:
        return cls
else:
    def maker(cls):
        """A faster `cls(...)` for records made for every agent on every run: given every field, in
        order, it makes the tuple without the class's Python-level __new__ (40% of the cost of a
        35-field record); given anything else, it is the class itself (defaults, errors). Type
        checkers see the class, so a call is checked as the constructor's."""
        new = tuple.__new__
        arity = len(cls._fields)

        def make(*fields):
            return new(cls, fields) if len(fields) == arity else cls(*fields)

        make.__qualname__ = f"maker({cls.__name__})"
        return make
