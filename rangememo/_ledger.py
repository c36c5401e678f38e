"""The ledger: which half-open int64 ranges of one key are covered (pure, no I/O).

Coverage is of *requests*, not rows: a fetched range is covered even where the
provider returned nothing. Two states are kept:

* *final* ranges (``covered``), never fetched again;
* *provisional* ranges (the live edge), each with the time it was fetched and
  the time it expires: served until then, refetched after.

Bounds follow one convention, half-open ``[lo, hi)`` (``portion.closedopen``),
so adjacent requests merge into one piece instead of leaving gaps.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import portion as P

__all__ = ["Ledger", "Provisional", "Stamp", "State", "pairs", "span"]

Pair = tuple[int, int]


def span(lo: int, hi: int) -> P.Interval:
    """The half-open interval ``[lo, hi)``."""
    return P.closedopen(lo, hi)


def pairs(interval: P.Interval) -> list[Pair]:
    """The disjoint ``(lo, hi)`` pieces of a half-open interval, in order."""
    return [(int(a.lower), int(a.upper)) for a in interval if not a.empty]


@dataclass(frozen=True, slots=True)
class Provisional:
    """A fetched range at the live edge: served until ``expires``."""

    lo: int
    hi: int
    fetched: float
    expires: float


@dataclass(frozen=True, slots=True)
class Stamp:
    """When a final range was fetched, and whether it held no rows."""

    lo: int
    hi: int
    fetched: float
    empty: bool


@dataclass(frozen=True, slots=True)
class State:
    """One piece of coverage: ``"final"``, ``"empty"`` or ``"provisional"``."""

    lo: int
    hi: int
    state: str
    fetched: float | None
    expires: float | None = None


@dataclass(slots=True)
class Ledger:
    """Covered ranges of one key. Mutated only under the key's write lock.

    Readers may run concurrently (threads): every mutation *replaces* the
    ``covered`` interval and ``provisional`` tuple rather than editing them, so
    a reader always sees one consistent snapshot.
    """

    covered: P.Interval = field(default_factory=P.empty)
    provisional: tuple[Provisional, ...] = ()
    stamps: tuple[Stamp, ...] = ()

    # -- queries ---------------------------------------------------------
    def live(self, now: float) -> P.Interval:
        """Final coverage plus provisional ranges that have not expired."""
        cov = self.covered
        for p in self.provisional:
            if p.expires > now:
                cov = cov | span(p.lo, p.hi)
        return cov

    def covers(self, lo: int, hi: int, now: float = 0.0) -> bool:
        """Is all of ``[lo, hi)`` covered? (bisects: cheap at any size)"""
        req = span(lo, hi)
        if req in self.covered:
            return True
        return bool(self.provisional) and req in self.live(now)

    def missing(self, lo: int, hi: int, now: float = 0.0) -> list[Pair]:
        """The maximal sub-ranges of ``[lo, hi)`` not covered, in order."""
        req = span(lo, hi)
        cov = self.live(now) if self.provisional else self.covered
        if req in cov:
            return []
        # ``req - cov`` builds cov's complement (O(k)); ``cov & req`` bisects.
        return pairs(req - (cov & req))

    def intervals(self) -> list[Pair]:
        """Final covered pieces."""
        return pairs(self.covered)

    @property
    def empty(self) -> bool:
        return self.covered.empty and not self.provisional

    def states(self) -> list[State]:
        """Every covered piece with its state and fetch time, in order."""
        out: list[State] = []
        for lo, hi in self.intervals():
            cursor = lo
            for st in sorted(self.stamps, key=lambda x: x.lo):
                a, b = max(st.lo, lo), min(st.hi, hi)
                if a >= b:
                    continue
                if cursor < a:
                    out.append(State(cursor, a, "final", None))
                out.append(State(a, b, "empty" if st.empty else "final", st.fetched))
                cursor = b
            if cursor < hi:
                out.append(State(cursor, hi, "final", None))
        out += [State(p.lo, p.hi, "provisional", p.fetched, p.expires) for p in self.provisional]
        return sorted(out, key=lambda x: x.lo)

    # -- mutations -------------------------------------------------------
    def add(self, lo: int, hi: int, fetched: float = 0.0, empty: bool = False) -> None:
        """Record ``[lo, hi)`` as final (``empty``: the provider had no rows)."""
        if lo >= hi:
            return
        self.covered = self.covered | span(lo, hi)
        # Adjacent stamps of the same kind merge, keeping the older fetch time
        # ("fetched no later than"), so a key grown a bar at a time keeps a
        # handful of stamps, not one per fetch.
        kept, new = [], Stamp(lo, hi, fetched, empty)
        for st in _trim(self.stamps, lo, hi):
            if st.empty == empty and (st.hi == new.lo or st.lo == new.hi):
                new = Stamp(
                    min(st.lo, new.lo), max(st.hi, new.hi), min(st.fetched, new.fetched), empty
                )
            else:
                kept.append(st)
        self.stamps = (*kept, new)
        if self.provisional:
            self.provisional = _trim(self.provisional, lo, hi)

    def add_provisional(self, lo: int, hi: int, fetched: float, expires: float) -> None:
        """Record ``[lo, hi)`` as provisional, replacing older claims on it."""
        if lo >= hi:
            return
        # Kept even when already expired: it records that the range is live
        # data (served never, or until ``expires``) and when it was fetched.
        self.provisional = (*_trim(self.provisional, lo, hi), Provisional(lo, hi, fetched, expires))

    def remove(self, lo: int, hi: int) -> None:
        """Forget ``[lo, hi)`` (final and provisional)."""
        if lo >= hi:
            return
        self.covered = self.covered - span(lo, hi)
        self.provisional = _trim(self.provisional, lo, hi)
        self.stamps = _trim(self.stamps, lo, hi)

    def prune(self, now: float) -> None:
        """Drop provisional ranges that have expired."""
        self.provisional = tuple(p for p in self.provisional if p.expires > now)

    # -- persistence (plain JSON-able data; no pickle) -------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "covered": [list(p) for p in self.intervals()],
            "provisional": [[p.lo, p.hi, p.fetched, p.expires] for p in self.provisional],
            "stamps": [[t.lo, t.hi, t.fetched, t.empty] for t in self.stamps],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Ledger:
        ledger = cls()
        ledger.covered = _union(span(int(a), int(b)) for a, b in data.get("covered", []))
        ledger.provisional = tuple(
            Provisional(int(a), int(b), float(f), float(e))
            for a, b, f, e in data.get("provisional", [])
        )
        ledger.stamps = tuple(
            Stamp(int(a), int(b), float(f), bool(e)) for a, b, f, e in data.get("stamps", [])
        )
        return ledger

    def copy(self) -> Ledger:
        """A plain ledger with this one's values (shared: they are never edited)."""
        return Ledger(self.covered, self.provisional, self.stamps)

    def prepare(self, lo: int, hi: int) -> None:
        """Make ``[lo, hi)`` readable before a snapshot (a stored ledger loads it)."""


def _union(items: Iterable[P.Interval]) -> P.Interval:
    # One ``P.Interval(*pieces)`` sorts once; a chain of ``|`` re-sorts each time.
    return P.Interval(*items)


_T = TypeVar("_T", Provisional, Stamp)


def _trim(records: tuple[_T, ...], lo: int, hi: int) -> tuple[_T, ...]:
    """Records with ``[lo, hi)`` cut out of them."""
    out: list[_T] = []
    for r in records:
        if r.hi <= lo or r.lo >= hi:
            out.append(r)
            continue
        if r.lo < lo:
            out.append(replace(r, hi=lo))
        if r.hi > hi:
            out.append(replace(r, lo=hi))
    return tuple(out)
