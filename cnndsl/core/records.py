"""Small records without dataclasses' start-up cost.

`@dataclass` writes each class's `__init__`, `__repr__` and `__eq__` (frozen, also `__hash__`, `__setattr__`
and `__delattr__`) as source text and compiles it every time its module is imported: about half a million
instructions a method, which for the ~70 records `cnndsl summary` imports was a third of its own start-up. A
`Record` declares its fields as `__slots__` and writes its own `__init__`, compiled once into the bytecode
cache; this base derives the rest from the slots as a dataclass would: `_fields` (the base class's first, in
the order `__init__` takes them, as Python's `ast` has), equality and a repr field by field, pattern matching
by position, and pickling and copying through `__init__`.
"""

from __future__ import annotations

import reprlib
from dataclasses import FrozenInstanceError
from typing import Any


class Record:
    """A record whose fields are its slots: equal field by field to one of its own class, and not hashable."""

    __slots__ = ()
    _fields: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._fields = cls._fields + tuple(cls.__dict__.get("__slots__", ()))
        cls.__match_args__ = cls._fields

    def _values(self) -> tuple:
        return tuple([getattr(self, name) for name in self._fields])

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]  # a record that can change is not hashable

    @reprlib.recursive_repr()
    def __repr__(self) -> str:  # `...` where a record holds itself, as a dataclass's
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{self.__class__.__qualname__}({fields})"

    def __reduce__(self) -> tuple:
        return self.__class__, self._values()


class FrozenRecord(Record):
    """A record that cannot change once made, hashable by its fields. Its `__init__` sets them through `_set`;
    this one takes every field, in order, by position."""

    __slots__ = ()

    def __init__(self, *values: Any) -> None:
        if len(values) != len(self._fields):
            raise TypeError(f"{self.__class__.__name__} takes {len(self._fields)} fields, not {len(values)}")
        self._set(*values)

    def _set(self, *values: Any) -> None:
        for name, value in zip(self._fields, values):
            object.__setattr__(self, name, value)

    def __hash__(self) -> int:
        return hash(self._values())

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")
