"""The merge: fetched pieces in, one exact result out (pure, no I/O).

A key's rows live in a short list of *chunks*: sorted, non-overlapping runs of
``(positions, data)``. A new piece is inserted as its own chunk and adjacent
chunks are consolidated geometrically (a chunk merges into its neighbour once
it reaches half the neighbour's size), so appending a day to a 1e6-row key
copies O(appended) rows amortised, not the whole key, while the chunk count
stays O(log N). Reading a window slices the one or two chunks it touches.
"""

from __future__ import annotations

import bisect
from typing import Any

import numpy as np

from .adapter import Adapter, Positions
from .struct import Struct

__all__ = ["Chunk", "Rows", "normalize"]

#: Above this many chunks, the smallest ones are merged regardless of ratio
#: (middle inserts can defeat the geometric rule).
MAX_CHUNKS = 48

#: Neighbours that together hold at most this many bytes always merge: copying
#: them costs little next to ``pd.concat``'s own overhead, and a key growing a
#: bar at a time then keeps its newest rows in one chunk, so a window over them
#: is one slice, not a concat of the geometric rule's many small chunks. (Rows
#: copied per append stay bounded by this; the geometric rule takes over above.)
SMALL_BYTES = 64 * 1024


class Chunk(Struct):
    """Sorted rows: ``positions[i]`` is the position of row ``i`` of ``data``."""

    __slots__ = ("positions", "data", "nbytes")
    positions: Positions
    data: Any
    nbytes: int

    def __init__(self, positions: Positions, data: Any, nbytes: int = 0) -> None:
        self.positions, self.data, self.nbytes = positions, data, nbytes

    @property
    def first(self) -> int:
        return int(self.positions[0])

    @property
    def last(self) -> int:
        return int(self.positions[-1])

    def __len__(self) -> int:
        return len(self.positions)


def normalize(adapter: Adapter, positions: Positions, data: Any, lo: int, hi: int) -> Chunk:
    """Sort a fetched piece by position and keep only rows in ``[lo, hi)``.

    The sort is stable, so rows sharing a position keep the provider's order.
    """
    if len(positions) > 1 and bool(np.any(positions[1:] < positions[:-1])):
        order = np.argsort(positions, kind="stable")
        positions, data = positions[order], adapter.take(data, order)
    n = len(positions)
    if not n or (positions[0] >= lo and positions[n - 1] < hi):
        # All inside, the usual answer: held as a slice (a new object), not the
        # provider's own, which it may write to later (a live buffer it reuses);
        # copy-on-write then copies its side, not ours.
        return Chunk(positions, adapter.slice(data, 0, n), adapter.nbytes(data))
    i, j = np.searchsorted(positions, [lo, hi], side="left")
    if i or j < n:
        # Copied, not sliced: a view would keep the whole answer alive (a
        # provider's page of 100,000 rows for 5 asked) while the budget counts 5.
        positions, data = positions[i:j].copy(), adapter.own(data, int(i), int(j))
    return Chunk(positions, data, adapter.nbytes(data))


class Rows:
    """All stored rows of one key, as consolidated chunks.

    Mutations build a new chunk list and swap it in, so a concurrent reader
    (another thread) always sees a consistent list.
    """

    __slots__ = ("_adapter", "_state", "mixed", "nbytes")

    def __init__(self, adapter: Adapter) -> None:
        self._adapter = adapter
        # (chunks, first position of each): swapped together, never edited.
        self._state: tuple[list[Chunk], list[int]] = ([], [])
        self.nbytes = 0
        # Have pieces of differing schemas been stored? Until then every chunk
        # shares one schema and merges need no check (the hot path).
        self.mixed = False

    def __len__(self) -> int:
        return sum(len(c) for c in self._state[0])

    @property
    def chunks(self) -> list[Chunk]:
        return self._state[0]

    @classmethod
    def of(cls, adapter: Adapter, chunk: Chunk) -> Rows:
        """The rows of one chunk (a fetched piece read like stored rows)."""
        rows = cls(adapter)
        if len(chunk):
            rows._set([chunk])
        return rows

    def frozen(self, lo: int, hi: int) -> tuple[Rows, list[tuple[int, int]]]:
        """These rows as of now, never to change; and the parts of ``[lo, hi)`` not loaded.

        By reference: the chunk list is swapped on mutation, never edited, so
        the copy shares it (no rows are copied).
        """
        rows = Rows.__new__(Rows)  # no __init__: its empty state would be thrown away
        rows._adapter, rows._state, rows.nbytes = self._adapter, self._state, self.nbytes
        return rows, []

    def grid_ref(self) -> int | None:
        """A stored row's position (a point of the key's grid), if any."""
        chunks = self._state[0]
        return chunks[0].first if chunks else None

    def grid_refs(self) -> tuple[int, ...]:
        """The first and last stored rows' positions (points of the key's grid), if any."""
        chunks = self._state[0]
        return (chunks[0].first, chunks[-1].last) if chunks else ()

    # -- reading ---------------------------------------------------------
    def window(self, lo: int, hi: int) -> list[Any]:
        """The data pieces holding rows with ``lo <= position < hi``, in order."""
        (chunks, firsts), out = self._state, []
        k = max(bisect.bisect_right(firsts, lo) - 1, 0)
        for chunk in chunks[k:]:
            if chunk.first >= hi:
                break
            if chunk.last < lo:
                continue
            pos = chunk.positions
            i = 0 if chunk.first >= lo else int(pos.searchsorted(lo, "left"))
            j = len(pos) if chunk.last < hi else int(pos.searchsorted(hi, "left"))
            if i < j:
                # Always a slice, even of a whole chunk: a new object (index and
                # columns included) that the caller may mutate freely.
                out.append(self._adapter.slice(chunk.data, i, j))
        return out

    def first_in(self, lo: int, hi: int) -> int | None:
        """The first stored position in ``[lo, hi)``, if any."""
        chunks, firsts = self._state
        for chunk in chunks[max(bisect.bisect_right(firsts, lo) - 1, 0) :]:
            if chunk.first >= hi:
                break
            i = int(chunk.positions.searchsorted(lo, "left"))
            if i < len(chunk):
                pos = int(chunk.positions[i])
                return pos if pos < hi else None
        return None

    # -- writing ---------------------------------------------------------
    def replace(self, lo: int, hi: int, piece: Chunk | None) -> None:
        """Drop stored rows in ``[lo, hi)`` and insert ``piece`` (newest wins)."""
        held = self._state[0]
        if piece is not None and len(piece) and held and held[-1].last < min(lo, piece.first):
            # An append past every stored row (the live-update path): nothing
            # to cut, and the piece goes last.
            self._set(self._consolidate([*held, piece], len(held)))
            return
        chunks = self._cut(lo, hi) if lo < hi else list(held)
        if piece is not None and len(piece):
            k = bisect.bisect_left([c.first for c in chunks], piece.first)
            chunks.insert(k, piece)
            chunks = self._consolidate(chunks, k)
        self._set(chunks)

    def clear(self) -> None:
        self._set([])

    def adopt(self, adapter: Adapter) -> None:
        """Hold rows of another result kind from now on (only while empty)."""
        assert not self._state[0], "adopt() of rows that hold rows"
        self._adapter = adapter

    def _set(self, chunks: list[Chunk]) -> None:
        self._state = (chunks, [c.first for c in chunks])
        # The positions array is as much a part of a key's memory as its rows.
        self.nbytes = sum(c.nbytes + c.positions.nbytes for c in chunks)

    def _cut(self, lo: int, hi: int) -> list[Chunk]:
        """The chunk list without rows in ``[lo, hi)`` (views, no copies)."""
        out: list[Chunk] = []
        for chunk in self._state[0]:
            if chunk.last < lo or chunk.first >= hi:
                out.append(chunk)
                continue
            pos, n = chunk.positions, len(chunk)
            i, j = (int(x) for x in pos.searchsorted([lo, hi], "left"))
            # Slices are views; their size is estimated pro rata (a budget, not an audit).
            if i > 0:
                part = self._adapter.slice(chunk.data, 0, i)
                out.append(Chunk(pos[:i], part, chunk.nbytes * i // n))
            if j < n:
                part = self._adapter.slice(chunk.data, j, n)
                out.append(Chunk(pos[j:], part, chunk.nbytes * (n - j) // n))
        return out

    def _merge(self, a: Chunk, b: Chunk) -> Chunk:
        if a.last > b.first:  # interleaved: should not happen, but stay exact
            positions = np.concatenate([a.positions, b.positions])
            order = np.argsort(positions, kind="stable")
            data = self._adapter.take(self._adapter.concat([a.data, b.data]), order)
            return Chunk(positions[order], data, a.nbytes + b.nbytes)
        positions = np.concatenate([a.positions, b.positions])
        return Chunk(positions, self._adapter.concat([a.data, b.data]), a.nbytes + b.nbytes)

    def _consolidate(self, chunks: list[Chunk], k: int) -> list[Chunk]:
        # Geometric rule around the insertion point: merge with a neighbour
        # while the smaller of the two is at least half the larger (or both are small).
        while True:
            merged = False
            for left in (k - 1, k):
                if left >= 0 and left + 1 < len(chunks):
                    a, b = len(chunks[left]), len(chunks[left + 1])
                    small = chunks[left].nbytes + chunks[left + 1].nbytes <= SMALL_BYTES
                    close = small or 2 * min(a, b) >= max(a, b)
                    if close and self._fits(chunks[left], chunks[left + 1]):
                        chunks[left : left + 2] = [self._merge(chunks[left], chunks[left + 1])]
                        k, merged = left, True
                        break
            if not merged:
                break
        while len(chunks) > MAX_CHUNKS:
            k = min(range(len(chunks)), key=lambda i: len(chunks[i]))
            left = (
                k - 1
                if k == len(chunks) - 1 or (k > 0 and len(chunks[k - 1]) <= len(chunks[k + 1]))
                else k
            )
            # Prefer a neighbour of the same schema; past the bound, merge anyway
            # (then those rows answer with the widened dtype, as pd.concat gives).
            other = k if left == k - 1 else k - 1
            if (
                0 <= other < len(chunks) - 1
                and not self._fits(chunks[left], chunks[left + 1])
                and self._fits(chunks[other], chunks[other + 1])
            ):
                left = other
            chunks[left : left + 2] = [self._merge(chunks[left], chunks[left + 1])]
        return chunks

    def _fits(self, a: Chunk, b: Chunk) -> bool:
        """May ``a`` and ``b`` share a chunk? Only with one exact schema: each piece
        keeps its own dtypes, so an answer is ``pd.concat`` of the pieces it spans.
        (Nor across a hole in an index with a ``freq``: see ``Adapter.joins``.)"""
        if not self._adapter.joins(a.data, b.data):
            return False
        if not self.mixed:
            return True
        sig = self._adapter.signature
        return bool(sig(a.data) == sig(b.data))
