"""Disjoint half-open int ranges in sorted chunks: O(log K) lookups, cheap inserts (pure).

:class:`Spans` is the ledger's coverage. It is *immutable*: ``add``/``remove``
return a new value, so a reader holding one (a call's view, another thread) sees
one consistent moment with no lock, and a ledger copy costs nothing.

Layout: the ranges, sorted and never touching (touching ones are one range),
live in chunks of at most ``2 * CHUNK`` parallel ``lo``/``hi`` lists, with the
last ``hi`` of every chunk in ``tops``. A lookup bisects ``tops`` then one chunk
(O(log K)); an insert or removal rebuilds the chunks it touches and the chunk
index (O(CHUNK + K / CHUNK) pointer copies, a few microseconds at K = 10^5),
sharing every other chunk with the value it came from.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator

__all__ = ["CHUNK", "EMPTY", "Spans"]

Pair = tuple[int, int]

#: Ranges per chunk (a chunk holds up to twice this before it splits).
CHUNK = 128


class Spans:
    """Sorted, disjoint, non-touching half-open ``[lo, hi)`` ranges (immutable)."""

    __slots__ = ("_his", "_los", "_n", "_tops")

    def __init__(
        self, los: list[list[int]], his: list[list[int]], n: int, tops: list[int] | None = None
    ) -> None:
        # Chunk lists are shared between values: never edited after this point.
        self._los, self._his, self._n = los, his, n
        self._tops = [h[-1] for h in his] if tops is None else tops

    @classmethod
    def of(cls, pairs: Iterable[Pair]) -> Spans:
        """The union of any ``(lo, hi)`` pairs (unsorted, overlapping, empty ones ignored)."""
        los: list[int] = []
        his: list[int] = []
        for lo, hi in sorted((int(a), int(b)) for a, b in pairs if a < b):
            if his and lo <= his[-1]:
                if hi > his[-1]:
                    his[-1] = hi
            else:
                los.append(lo)
                his.append(hi)
        return cls(*_chunked(los, his), len(los))

    @classmethod
    def of_written(cls, pairs: list[list[int]]) -> Spans:
        """``of(pairs)`` for ranges as ``to_json`` writes them: sorted, disjoint, not touching.

        Checked in a few list passes (~1 ms at 10,000 ranges, where ``of``'s
        sort and generator take ~5); anything else goes through ``of``.
        """
        try:
            los = [p[0] for p in pairs]
            his = [p[1] for p in pairs]
        except (IndexError, KeyError, TypeError):
            return cls.of(pairs)  # type: ignore[arg-type]
        ints = all(type(x) is int for x in los) and all(type(x) is int for x in his)
        if (
            ints
            and len(pairs) == len(los)
            and all(len(p) == 2 for p in pairs)
            and all(a < b for a, b in zip(los, his, strict=True))
            and all(h < lo for h, lo in zip(his, los[1:], strict=False))
        ):
            return cls(*_chunked(los, his), len(los))
        return cls.of((a, b) for a, b in pairs)

    # -- queries -------------------------------------------------------------
    def __len__(self) -> int:
        return self._n

    def __bool__(self) -> bool:
        return self._n > 0

    def __iter__(self) -> Iterator[Pair]:
        for los, his in zip(self._los, self._his, strict=True):
            yield from zip(los, his, strict=True)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Spans):
            return NotImplemented
        return self._n == other._n and list(self) == list(other)

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        shown = list(self) if self._n <= 8 else [*list(self)[:4], "...", *list(self)[-2:]]
        return f"Spans({self._n}: {shown})"

    def _after(self, x: int) -> tuple[int, int]:
        """Chunk and index of the first range with ``hi > x`` (``(len, 0)``: none)."""
        c = bisect_right(self._tops, x)
        if c == len(self._tops):
            return c, 0
        return c, bisect_right(self._his[c], x)

    def covers(self, lo: int, hi: int) -> bool:
        """Is all of ``[lo, hi)`` inside one range? (an empty request is covered)"""
        if lo >= hi:
            return True
        c, k = self._after(lo)
        return c < len(self._tops) and self._los[c][k] <= lo and hi <= self._his[c][k]

    def overlaps(self, lo: int, hi: int) -> bool:
        """Does any range hold a position of ``[lo, hi)``?"""
        if lo >= hi:
            return False
        c, k = self._after(lo)
        return c < len(self._tops) and self._los[c][k] < hi

    def window(self, lo: int, hi: int) -> list[Pair]:
        """The ranges overlapping ``[lo, hi)``, clipped to it, in order."""
        out: list[Pair] = []
        if lo >= hi:
            return out
        c, k = self._after(lo)
        while c < len(self._tops):
            los, his = self._los[c], self._his[c]
            while k < len(los):
                a = los[k]
                if a >= hi:
                    return out
                out.append((max(a, lo), min(his[k], hi)))
                k += 1
            c, k = c + 1, 0
        return out

    def missing(self, lo: int, hi: int) -> list[Pair]:
        """The maximal sub-ranges of ``[lo, hi)`` no range holds, in order."""
        out: list[Pair] = []
        cursor = lo
        for a, b in self.window(lo, hi):
            if cursor < a:
                out.append((cursor, a))
            cursor = b
        if cursor < hi:
            out.append((cursor, hi))
        return out

    # -- new values ----------------------------------------------------------
    def add(self, lo: int, hi: int) -> Spans:
        """This plus ``[lo, hi)``, merged with the ranges it overlaps or touches."""
        if lo >= hi:
            return self
        c, k = bisect_left(self._tops, lo), 0  # first range with hi >= lo: touching counts
        if c < len(self._tops):
            k = bisect_left(self._his[c], lo)
        end = self._after(hi)
        end = self._step(end, lambda a: a <= hi)  # one that starts at or before hi touches
        if (c, k) != end:
            lo = min(lo, self._los[c][k])
            last = self._before(end)
            hi = max(hi, self._his[last[0]][last[1]])
        return self._splice((c, k), end, [lo], [hi])

    def remove(self, lo: int, hi: int) -> Spans:
        """This without ``[lo, hi)``."""
        if lo >= hi:
            return self
        start = self._after(lo)
        end = self._step(self._after(hi), lambda a: a < hi)
        if start == end:
            return self
        new_lo: list[int] = []
        new_hi: list[int] = []
        first, last = start, self._before(end)
        if self._los[first[0]][first[1]] < lo:
            new_lo.append(self._los[first[0]][first[1]])
            new_hi.append(lo)
        if self._his[last[0]][last[1]] > hi:
            new_lo.append(hi)
            new_hi.append(self._his[last[0]][last[1]])
        return self._splice(start, end, new_lo, new_hi)

    def _step(self, pos: tuple[int, int], include: Callable[[int], bool]) -> tuple[int, int]:
        """``pos`` moved past its range when ``include(range's lo)`` holds."""
        c, k = pos
        if c < len(self._tops) and include(self._los[c][k]):
            k += 1
            if k == len(self._los[c]):
                c, k = c + 1, 0
        return c, k

    def _before(self, pos: tuple[int, int]) -> tuple[int, int]:
        """The position just before ``pos`` (which is not the first)."""
        c, k = pos
        if k > 0:
            return c, k - 1
        return c - 1, len(self._los[c - 1]) - 1

    def _splice(
        self, start: tuple[int, int], end: tuple[int, int], new_lo: list[int], new_hi: list[int]
    ) -> Spans:
        """Ranges ``[start, end)`` replaced by the new ones (already merged with them)."""
        n = len(self._tops)
        if n == 0:
            return Spans(*_chunked(list(new_lo), list(new_hi)), len(new_lo))
        (c0, k0), (c1, k1) = start, end
        # The chunks to rebuild: from the one ``start`` is in (the last when it
        # is the very end) to the one ``end`` cuts into.
        first = min(c0, n - 1)
        last = min(max(first, c1 if k1 > 0 else c1 - 1), n - 1)
        los, his = list(self._los[first]), list(self._his[first])
        for c in range(first + 1, last + 1):  # list += list: copies in C, not per item
            los += self._los[c]
            his += self._his[c]
        sizes = [len(self._los[c]) for c in range(first, last + 1)]
        s = sum(sizes[: c0 - first]) + k0
        e = sum(sizes[: c1 - first]) + k1
        removed = e - s
        los[s:e], his[s:e] = new_lo, new_hi
        # A small middle takes in a neighbour, so removals never leave crumbs of chunks.
        if len(los) < CHUNK // 4:
            if last + 1 < n:
                last += 1
                los, his = los + self._los[last], his + self._his[last]
            elif first > 0:
                first -= 1
                los, his = self._los[first] + los, self._his[first] + his
        mid_lo, mid_hi = _chunked(los, his)
        return Spans(
            self._los[:first] + mid_lo + self._los[last + 1 :],
            self._his[:first] + mid_hi + self._his[last + 1 :],
            self._n - removed + len(new_lo),
            self._tops[:first] + [h[-1] for h in mid_hi] + self._tops[last + 1 :],
        )


EMPTY = Spans([], [], 0)


def _chunked(los: list[int], his: list[int]) -> tuple[list[list[int]], list[list[int]]]:
    """Parallel lists cut into chunks of ``CHUNK`` (one chunk when at most ``2 * CHUNK``)."""
    n = len(los)
    if n == 0:
        return [], []
    if n <= 2 * CHUNK:
        return [los], [his]
    size = -(-n // -(-n // CHUNK))  # equal chunks of at most CHUNK: no crumb at the end
    cuts = range(0, n, size)
    return [los[i : i + size] for i in cuts], [his[i : i + size] for i in cuts]
