"""Slotted value records for the core's small, hot types (pure).

Why not dataclasses: Python 3.11 compiles every generated method of every
dataclass at import (~0.6 ms each with ``frozen=True, slots=True``, ~10 ms
of rangememo's ~30 ms import for 17 of them), and a frozen dataclass'
``__init__`` goes through ``object.__setattr__`` field by field, which the hit
path pays on every record it builds. A subclass lists its fields in
``__slots__`` and writes its own ``__init__``; this base adds what the
dataclasses gave: value equality and hashing over the fields, a repr, and
:meth:`replace`. Records are immutable by convention (nothing in rangememo
assigns to a record's field after ``__init__`` unless its docstring says so).
"""

from __future__ import annotations

from typing import Any, Self

__all__ = ["Struct"]


class Struct:
    """Equality, hashing, repr and ``replace`` from a subclass' ``__slots__``."""

    __slots__ = ()  # each subclass lists its fields, in its constructor's order

    def _names(self) -> tuple[str, ...]:
        names: tuple[str, ...] = self.__slots__
        return names

    def _fields(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._names())

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Struct)  # for the type checker: type(other) is ours
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash((type(self), self._fields()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._names())
        return f"{type(self).__name__}({fields})"

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` (field names to new values) applied."""
        names = self._names()
        unknown = set(changes) - set(names)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field(s) {sorted(unknown)}")
        new = object.__new__(type(self))
        for name in names:
            setattr(new, name, changes[name] if name in changes else getattr(self, name))
        return new
