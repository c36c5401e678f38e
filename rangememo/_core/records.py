"""The ledger's per-range records: fetch stamps and provisional marks (pure).

Both are kept as short tuples sorted by ``lo`` and disjoint, cut and spliced by
bisection; :data:`STAMP_LIMIT` and :data:`PROVISIONAL_LIMIT` bound their length
whatever the number of fetches (docs/decisions.md, "Ledger at scale").
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable
from typing import TypeVar

from .struct import Struct

__all__ = [
    "PROVISIONAL_LIMIT",
    "STAMP_LIMIT",
    "Provisional",
    "Stamp",
    "State",
    "cut",
    "fold",
    "record_hi",
    "record_lo",
    "subtract",
    "trimmed",
]

Pair = tuple[int, int]

#: At most this many fetch stamps per key: past it, neighbours fold pairwise.
STAMP_LIMIT = 512
#: At most this many provisional marks per key: past it, the soonest to expire go.
PROVISIONAL_LIMIT = 64


class Provisional(Struct):
    """A fetched range at the live edge: served until ``expires``."""

    __slots__ = ("lo", "hi", "fetched", "expires")
    lo: int
    hi: int
    fetched: float
    expires: float

    def __init__(self, lo: int, hi: int, fetched: float, expires: float) -> None:
        self.lo, self.hi, self.fetched, self.expires = lo, hi, fetched, expires


class Stamp(Struct):
    """When a final range was fetched, and whether it held no rows."""

    __slots__ = ("lo", "hi", "fetched", "empty")
    lo: int
    hi: int
    fetched: float
    empty: bool

    def __init__(self, lo: int, hi: int, fetched: float, empty: bool) -> None:
        self.lo, self.hi, self.fetched, self.empty = lo, hi, fetched, empty


class State(Struct):
    """One piece of coverage: ``"final"``, ``"empty"`` or ``"provisional"``."""

    __slots__ = ("lo", "hi", "state", "fetched", "expires")
    lo: int
    hi: int
    state: str
    fetched: float | None
    expires: float | None

    def __init__(
        self, lo: int, hi: int, state: str, fetched: float | None, expires: float | None = None
    ) -> None:
        self.lo, self.hi, self.state, self.fetched, self.expires = lo, hi, state, fetched, expires


_T = TypeVar("_T", Provisional, Stamp)


def record_lo(r: Provisional | Stamp) -> int:
    return r.lo


def record_hi(r: Provisional | Stamp) -> int:
    return r.hi


def cut(records: tuple[_T, ...], lo: int, hi: int) -> tuple[tuple[_T, ...], tuple[_T, ...]]:
    """Sorted disjoint records before and after ``[lo, hi)``, cut where they straddle it."""
    i = bisect_right(records, lo, key=record_hi)  # the first ending after lo
    j = bisect_left(records, hi, key=record_lo)  # the first starting at or after hi
    left: tuple[_T, ...] = records[:i]
    right: tuple[_T, ...] = records[j:]
    if i < j and records[i].lo < lo:
        head: _T = records[i].replace(hi=lo)
        left = left + (head,)  # noqa: RUF005 (mypy mistypes the unpacked form here)
    if i < j and records[j - 1].hi > hi:
        tail: _T = records[j - 1].replace(lo=hi)
        right = (tail,) + right  # noqa: RUF005 (mypy mistypes the unpacked form here)
    return left, right


def trimmed(records: tuple[_T, ...], lo: int, hi: int) -> tuple[_T, ...]:
    """Records with ``[lo, hi)`` cut out of them."""
    left, right = cut(records, lo, hi)
    return left + right


def fold(stamps: tuple[Stamp, ...], covered: Callable[[int, int], bool]) -> tuple[Stamp, ...]:
    """At most :data:`STAMP_LIMIT` stamps, merging neighbours (the older fetch time).

    First those of one kind with nothing ``covered`` between them (a fragmented
    key's pieces); then, if still too many, neighbours pairwise ("empty" only if
    both were), halving the count. Rare, so O(1) amortised per add. The result
    has no touching stamps of one kind, as ``Ledger.add`` leaves them, so a
    ledger read back from JSON equals its writer.
    """
    if len(stamps) <= STAMP_LIMIT:
        return stamps
    out = _merged(stamps, lambda a, b: a.empty == b.empty and not covered(a.hi, b.lo))
    while len(out) > STAMP_LIMIT:
        pairs_ = zip(out[::2], out[1::2], strict=False)
        folded = [
            Stamp(a.lo, b.hi, min(a.fetched, b.fetched), a.empty and b.empty) for a, b in pairs_
        ]
        out = _merged(
            (*folded, *out[len(folded) * 2 :]), lambda a, b: a.empty == b.empty and a.hi == b.lo
        )
    return out


def _merged(stamps: tuple[Stamp, ...], joins: Callable[[Stamp, Stamp], bool]) -> tuple[Stamp, ...]:
    """Sorted stamps with each neighbour that ``joins`` the one before merged into it."""
    out = [stamps[0]]
    for st in stamps[1:]:
        last = out[-1]
        if joins(last, st):
            out[-1] = Stamp(last.lo, st.hi, min(last.fetched, st.fetched), last.empty)
        else:
            out.append(st)
    return tuple(out)


def subtract(gaps: list[Pair], cuts: list[Pair]) -> list[Pair]:
    """``gaps`` minus ``cuts`` (both sorted, disjoint)."""
    out: list[Pair] = []
    for a, b in gaps:
        for c, d in cuts:
            if d <= a or c >= b:
                continue
            if c > a:
                out.append((a, c))
            a = d
            if a >= b:
                break
        if a < b:
            out.append((a, b))
    return out
