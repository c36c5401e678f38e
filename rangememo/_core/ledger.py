"""The ledger: which half-open int64 ranges of one key are covered (pure, no I/O).

Coverage is of *requests*, not rows: a fetched range is covered even where the
provider returned nothing. Two states are kept:

* *final* ranges (``covered``), never fetched again;
* *provisional* ranges (the live edge), each with the time it was fetched and
  the time it expires: served until then, refetched after.

Bounds follow one convention, half-open ``[lo, hi)`` (``portion.closedopen``),
so adjacent requests merge into one piece instead of leaving gaps.

Final coverage is a :class:`~rangememo._core.spans.Spans` (O(log K) lookups, cheap
inserts); fetch stamps and provisional marks are short sorted tuples whose
length is bounded whatever the number of fetches (docs/decisions.md, "Ledger
at scale"). ``portion`` is only built on demand (``covered``, ``live``).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .records import (
    PROVISIONAL_LIMIT,
    STAMP_LIMIT,
    Provisional,
    Stamp,
    State,
    cut,
    fold,
    record_hi,
    subtract,
    trimmed,
)
from .spans import EMPTY, Spans

if TYPE_CHECKING:
    # portion costs ~20 ms to import (it reads its own package metadata): it is
    # imported where an interval is built, so `import rangememo` does not pay it.
    import portion as P

__all__ = [
    "PROVISIONAL_LIMIT",
    "STAMP_LIMIT",
    "Ledger",
    "Provisional",
    "Stamp",
    "State",
    "pairs",
    "span",
]

Pair = tuple[int, int]


def span(lo: int, hi: int) -> P.Interval:
    """The half-open interval ``[lo, hi)``."""
    import portion as P

    return P.closedopen(lo, hi)


def pairs(interval: P.Interval) -> list[Pair]:
    """The disjoint ``(lo, hi)`` pieces of a half-open interval, in order."""
    return [(int(a.lower), int(a.upper)) for a in interval if not a.empty]


@dataclass(slots=True)
class Ledger:
    """Covered ranges of one key. Mutated only under the key's write lock.

    Readers may run concurrently (threads): every mutation *replaces* the
    final spans and the ``provisional``/``stamps`` tuples rather than editing
    them (all three are immutable), so a reader always sees one consistent
    snapshot, and :meth:`copy` shares them.
    """

    _final: Spans = EMPTY
    provisional: tuple[Provisional, ...] = ()  # sorted by ``lo``, disjoint
    stamps: tuple[Stamp, ...] = ()  # sorted by ``lo``, disjoint

    # -- queries (O(log K) plus the size of the answer) -------------------
    @property
    def covered(self) -> P.Interval:
        """Final coverage as a ``portion`` interval (built on each access: not for hot paths)."""
        import portion as P

        return P.Interval(*(span(a, b) for a, b in self._final))

    @covered.setter
    def covered(self, value: P.Interval) -> None:
        self._final = Spans.of(pairs(value))

    def live(self, now: float) -> P.Interval:
        """Final coverage plus unexpired provisional ranges, as ``portion`` (not for hot paths)."""
        import portion as P

        marks = (span(p.lo, p.hi) for p in self.provisional if _live(p, now))
        return P.Interval(*(span(a, b) for a, b in self._final), *marks)

    def covers(self, lo: int, hi: int, now: float = 0.0) -> bool:
        """Is all of ``[lo, hi)`` covered (final, or provisional until it expires)?"""
        if self._final.covers(lo, hi):
            return True
        return bool(self.provisional) and not self.missing(lo, hi, now)

    def overlaps(self, lo: int, hi: int) -> bool:
        """Does final coverage hold any position of ``[lo, hi)``?"""
        return self._final.overlaps(lo, hi)

    def missing(self, lo: int, hi: int, now: float = 0.0) -> list[Pair]:
        """The maximal sub-ranges of ``[lo, hi)`` not covered, in order."""
        gaps = self._final.missing(lo, hi)
        if not gaps or not self.provisional:
            return gaps
        marks = self.provisional
        i = bisect_right(marks, lo, key=record_hi)
        live: list[Pair] = []
        while i < len(marks) and marks[i].lo < hi:
            if _live(marks[i], now):
                live.append((marks[i].lo, marks[i].hi))
            i += 1
        return subtract(gaps, live) if live else gaps

    def window(self, lo: int, hi: int) -> list[Pair]:
        """The final pieces overlapping ``[lo, hi)``, clipped to it."""
        return self._final.window(lo, hi)

    def intervals(self) -> list[Pair]:
        """Final covered pieces."""
        return list(self._final)

    @property
    def empty(self) -> bool:
        return not self._final and not self.provisional

    def states(self) -> list[State]:
        """Every covered piece with its state and fetch time, in order."""
        out: list[State] = []
        stamps = self.stamps
        for lo, hi in self._final:
            cursor = lo
            i = bisect_right(stamps, lo, key=record_hi)
            while i < len(stamps) and stamps[i].lo < hi:
                st = stamps[i]
                a, b = max(st.lo, lo), min(st.hi, hi)
                if cursor < a:
                    out.append(State(cursor, a, "final", None))
                out.append(State(a, b, "empty" if st.empty else "final", st.fetched))
                cursor = b
                i += 1
            if cursor < hi:
                out.append(State(cursor, hi, "final", None))
        out += [State(p.lo, p.hi, "provisional", p.fetched, p.expires) for p in self.provisional]
        return sorted(out, key=lambda x: x.lo)

    # -- mutations -------------------------------------------------------
    def add(self, lo: int, hi: int, fetched: float = 0.0, empty: bool = False) -> None:
        """Record ``[lo, hi)`` as final (``empty``: the provider had no rows)."""
        if lo >= hi:
            return
        self._final = self._final.add(lo, hi)
        left, right = cut(self.stamps, lo, hi)
        new = Stamp(lo, hi, fetched, empty)
        # A stamp merges with a touching neighbour of the same kind, keeping the
        # older fetch time ("fetched no later than"), so a key grown a bar at a
        # time keeps a handful of stamps, not one per fetch; past STAMP_LIMIT,
        # ``fold`` merges more (docs/decisions.md, "Ledger at scale").
        if left and left[-1].empty == empty and left[-1].hi == lo:
            new = Stamp(left[-1].lo, hi, min(left[-1].fetched, fetched), empty)
            left = left[:-1]
        if right and right[0].empty == empty and right[0].lo == hi:
            new = Stamp(new.lo, right[0].hi, min(right[0].fetched, new.fetched), empty)
            right = right[1:]
        self.stamps = fold((*left, new, *right), self._final.overlaps)
        if self.provisional:
            self.provisional = trimmed(self.provisional, lo, hi)

    def add_provisional(self, lo: int, hi: int, fetched: float, expires: float) -> None:
        """Record ``[lo, hi)`` as provisional, replacing older claims on it.

        Past :data:`PROVISIONAL_LIMIT` marks, those expiring soonest go (expired
        ones first): a dropped mark is only fetched again, never served wrong.
        """
        if lo >= hi:
            return
        # Kept even when already expired: it records that the range is live
        # data (served never, or until ``expires``) and when it was fetched.
        left, right = cut(self.provisional, lo, hi)
        new = Provisional(lo, hi, fetched, expires)
        # Touching marks of one fetch and expiry are one mark (merging loses nothing).
        if (
            left
            and left[-1].hi == lo
            and (left[-1].fetched, left[-1].expires) == (fetched, expires)
        ):
            new = Provisional(left[-1].lo, hi, fetched, expires)
            left = left[:-1]
        if (
            right
            and right[0].lo == hi
            and (right[0].fetched, right[0].expires) == (fetched, expires)
        ):
            new = Provisional(new.lo, right[0].hi, fetched, expires)
            right = right[1:]
        marks = (*left, new, *right)
        while len(marks) > PROVISIONAL_LIMIT:  # the soonest to expire: expired ones first
            gone = min(range(len(marks)), key=lambda k: marks[k].expires)
            marks = marks[:gone] + marks[gone + 1 :]
        self.provisional = marks

    def remove(self, lo: int, hi: int) -> None:
        """Forget ``[lo, hi)`` (final and provisional)."""
        if lo >= hi:
            return
        self._final = self._final.remove(lo, hi)
        self.provisional = trimmed(self.provisional, lo, hi)
        left, right = cut(self.stamps, lo, hi)
        # Stamps beside the cut that no longer touch any coverage go with it.
        if left and not self._final.overlaps(left[-1].lo, left[-1].hi):
            left = left[:-1]
        if right and not self._final.overlaps(right[0].lo, right[0].hi):
            right = right[1:]
        self.stamps = (*left, *right)

    def prune(self, now: float) -> None:
        """Drop provisional ranges that have expired."""
        self.provisional = tuple(p for p in self.provisional if p.expires > now)

    def take(self, other: Ledger) -> None:
        """Become ``other`` (its values are shared: they are never edited)."""
        self._final, self.provisional, self.stamps = other._final, other.provisional, other.stamps

    # -- persistence (plain JSON-able data; no pickle) -------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "covered": [list(p) for p in self._final],
            "provisional": [[p.lo, p.hi, p.fetched, p.expires] for p in self.provisional],
            "stamps": [[t.lo, t.hi, t.fetched, t.empty] for t in self.stamps],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Ledger:
        """Read ``to_json``'s form, also as older versions wrote it (records in any order)."""
        ledger = cls()
        ledger._final = Spans.of_written(list(data.get("covered", [])))
        for a, b, f, e in sorted(data.get("provisional", []), key=lambda r: int(r[0])):
            ledger.add_provisional(int(a), int(b), float(f), float(e))
        # Plain lists while folding (a Stamp costs 1 µs to build): old files hold one per fetch.
        recs: list[list[Any]] = []
        for a, b, f, e in sorted(data.get("stamps", []), key=lambda r: int(r[0])):
            lo, hi, fetched, empty = int(a), int(b), float(f), bool(e)
            if recs and recs[-1][1] > lo:  # overlapping (never written so): the first wins
                if hi <= recs[-1][1]:
                    continue
                lo = recs[-1][1]
            last = recs[-1] if recs else None
            if last and last[3] == empty and last[1] == lo:
                last[1], last[2] = hi, min(last[2], fetched)
            else:
                recs.append([lo, hi, fetched, empty])
        stamps = [Stamp(*r) for r in recs]
        ledger.stamps = fold(tuple(stamps), ledger._final.overlaps)
        return ledger

    def copy(self) -> Ledger:
        """A plain ledger with this one's values (shared: they are never edited)."""
        return Ledger(self._final, self.provisional, self.stamps)

    def prepare(self, lo: int, hi: int) -> None:
        """Make ``[lo, hi)`` readable before a snapshot (a stored ledger loads it)."""


def _live(mark: Provisional, now: float) -> bool:
    """Is a provisional range served at ``now``? Until it expires, and never one
    without a ``ttl`` (its expiry is its fetch time), even if the clock reads
    earlier than that fetch (set back, an NTP step): it is refetched. ``now``
    of ``-inf`` counts every mark (``stale_if_error`` serving expired rows).
    """
    return mark.expires > now and (mark.expires > mark.fetched or now == _ALWAYS)


_ALWAYS = float("-inf")
