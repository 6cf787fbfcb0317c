"""records.NamedTuple: the class statement of typing.NamedTuple, built without importing typing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from textfile_writer.records import NamedTuple, maker


class Point(NamedTuple):
    """A point."""

    x: int
    y: int = 0
    label: str = "origin"

    @property
    def norm1(self) -> int:
        return abs(self.x) + abs(self.y)

    @classmethod
    def on_axis(cls, x: int) -> Point:
        return cls(x)

    def shifted(self, dx: int) -> Point:
        return self._replace(x=self.x + dx)

    def __repr__(self) -> str:
        return f"P{super().__repr__()}"


def test_fields_defaults_and_tuple_behaviour() -> None:
    p = Point(3, -4)
    assert p == (3, -4, "origin") and isinstance(p, tuple)
    assert Point._fields == ("x", "y", "label")
    assert Point(1) == Point(x=1, y=0, label="origin")
    assert p._replace(label="a").label == "a" and p._asdict() == {"x": 3, "y": -4, "label": "origin"}
    with pytest.raises(TypeError):
        Point()  # type: ignore[call-arg]
    with pytest.raises(AttributeError):
        p.x = 1  # type: ignore[misc]
    assert not hasattr(p, "__dict__")  # slots, like typing's


def test_methods_properties_classmethods_super_and_doc() -> None:
    p = Point(3, -4)
    assert p.norm1 == 7
    assert Point.on_axis(2) == (2, 0, "origin")
    assert p.shifted(1).x == 4 and isinstance(p.shifted(1), Point)
    assert repr(p) == "PPoint(x=3, y=-4, label='origin')"
    assert Point.__doc__ == "A point." and Point.__module__ == __name__ and Point.__qualname__ == "Point"


def test_a_field_without_default_after_one_with_is_refused() -> None:
    with pytest.raises(TypeError, match="without a default follows"):
        class Bad(NamedTuple):
            a: int = 0
            b: int  # type: ignore[misc]


def test_typing_is_not_imported() -> None:
    code = "import sys; import textfile_writer.records, textfile_writer.model; print('typing' in sys.modules)"
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])  # the checkout: -S leaves site-packages out
    assert out.stdout.strip() == "False"


class Plain(NamedTuple):
    a: int
    b: str = "b"

    def both(self) -> str:
        return f"{self.a}{self.b}"


def test_a_body_that_replaces_nothing_makes_one_class() -> None:
    assert Plain.__mro__ == (Plain, tuple, object)  # no intermediate class: cheaper to build
    assert Point.__mro__[2] is tuple  # Point's own __repr__ wraps the generated one
    p = Plain(1)
    assert p.both() == "1b" and Plain(a=2, b="c") == (2, "c") and repr(p) == "Plain(a=1, b='b')"
    assert Plain._make([3, "x"]) == Plain(3, "x") and Plain._field_defaults == {"b": "b"}
    with pytest.raises(TypeError):
        Plain._make([1])
    with pytest.raises(ValueError, match="unexpected field names"):
        p._replace(c=1)  # type: ignore[call-arg]


def test_constructors_of_the_same_arity_keep_their_own_names_and_defaults() -> None:
    class Two(NamedTuple):
        left: int
        right: int = 5

    assert Two(right=1, left=2) == (2, 1) and Two(7) == (7, 5)
    assert Plain(b="z", a=0) == (0, "z")  # same arity as Two, its own argument names


def test_a_field_name_that_could_clash_with_the_constructor_is_refused() -> None:
    with pytest.raises(ValueError, match="bad field name"):
        class Bad(NamedTuple):
            _cls: int


def test_maker_makes_what_the_class_makes() -> None:
    """records.maker: every field given is the fast path, anything else is the class itself (its
    defaults, its errors); each gives a record of the class, equal to the constructor's."""
    make = maker(Point)
    fast = make(3, 4, "p")
    assert type(fast) is Point and fast == Point(3, 4, "p") and fast.norm1 == 7 and fast.label == "p"
    defaulted = make(3)
    assert type(defaulted) is Point and defaulted == Point(3) and defaulted.label == "origin"
    with pytest.raises(TypeError):
        make(1, 2, "three", 4)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        make()  # type: ignore[call-arg]
