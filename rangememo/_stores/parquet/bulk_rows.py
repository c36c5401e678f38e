"""Rows moved into memory in bulk: many ranges of one loaded chunk, or a whole key.

Split from :mod:`.stored_rows` (which decides *what* to load); these decide
how the loaded rows become chunks, with one ``take`` or concat where a piece
at a time would cost one concat each.
"""

from __future__ import annotations

import numpy as np

from ..._core.results import Adapter
from ..._core.rows import Chunk, Rows
from .claims import expand_ranges

__all__ = ["BulkRows", "has_freq"]


def has_freq(data: object) -> bool:
    """Does ``data``'s index carry a ``freq``? (a take or a concat across a hole drops it)"""
    return getattr(getattr(data, "index", None), "freq", None) is not None


def _slice(adapter: Adapter, chunk: Chunk, lo: int, hi: int) -> Chunk | None:
    pos = chunk.positions
    i, j = (int(x) for x in np.searchsorted(pos, [lo, hi]))
    if i >= j:
        return None
    if i == 0 and j == len(pos):
        return chunk
    n = len(pos)
    return Chunk(pos[i:j], adapter.slice(chunk.data, i, j), chunk.nbytes * (j - i) // n)


class BulkRows(Rows):
    """:class:`~rangememo._core.rows.Rows` with bulk inserts (no state of its own)."""

    __slots__ = ()

    def _insert(self, chunk: Chunk, ranges: list[tuple[int, int]]) -> None:
        """Move the rows of ``chunk`` in ``ranges`` (sorted, disjoint, pending) into memory.

        In bulk: a key of K disjoint intervals loads K ranges from one segment,
        and one ``Rows.replace`` (a concat) per range made an open O(K) concats.
        The ranges between two chunks already in memory become one chunk (one
        ``take``); one inside a chunk's span goes in by ``replace``. A piece
        whose index carries a ``freq`` goes piece by piece (``Adapter.joins``).
        """
        adapter, pos = self._adapter, chunk.positions
        if len(ranges) < 4 or has_freq(chunk.data):
            for lo, hi in ranges:
                Rows.replace(self, lo, hi, _slice(adapter, chunk, lo, hi))
            return
        bounds = np.array(ranges, dtype=np.int64).reshape(-1, 2)
        starts = np.searchsorted(pos, bounds[:, 0])
        stops = np.searchsorted(pos, bounds[:, 1])
        chunks = list(self._state[0])
        has = np.nonzero(stops > starts)[0]
        firsts = pos[starts[has]]
        # The slot between stored chunks each range's rows go to; a range inside
        # a stored chunk's span (a write landed around it) goes in by replace.
        slot = np.searchsorted(np.array(self._state[1], dtype=np.int64), firsts, side="right")
        lasts = np.array([c.last for c in chunks] or [0], dtype=np.int64)
        inside = (slot > 0) & (lasts[np.maximum(slot - 1, 0)] >= firsts)
        free, slots = has[~inside], slot[~inside]
        n, new = len(pos), []
        if len(free):
            cuts = np.nonzero(np.diff(slots))[0] + 1
            for rs, b in zip(np.split(free, cuts), slots[np.r_[0, cuts]].tolist(), strict=True):
                a, z = starts[rs], stops[rs]
                lens = z - a
                count = int(lens.sum())
                i, j = int(a[0]), int(z[-1])
                if count == j - i:  # contiguous rows: a slice
                    data = adapter.slice(chunk.data, i, j)
                    piece = Chunk(pos[i:j], data, chunk.nbytes * count // n)
                else:
                    idx = expand_ranges(a, lens)
                    data = adapter.take(chunk.data, idx)
                    piece = Chunk(pos[idx], data, chunk.nbytes * count // n)
                new.append((int(b), piece))
            # Insert from the back so the slots of earlier groups stay valid.
            for b, piece in reversed(new):
                chunks.insert(b, piece)
            self._set(self._consolidate(chunks, new[-1][0] + len(new) - 1))
        for r in has[inside].tolist():
            lo, hi = ranges[r]
            Rows.replace(self, lo, hi, _slice(adapter, chunk, lo, hi))

    def _set_whole(self, parts: list[Chunk]) -> bool:
        """Make ``parts`` (sorted each, disjoint) the rows, as one chunk, if they may share one."""
        if self.mixed or any(not self._fits(parts[0], p) for p in parts[1:]):
            return False
        if len(parts) > 1:
            adapter = self._adapter
            positions = np.concatenate([p.positions for p in parts])
            data = adapter.concat([p.data for p in parts])
            if len(positions) > 1 and bool(np.any(np.diff(positions) < 0)):  # interleaved
                order = np.argsort(positions, kind="stable")
                positions, data = positions[order], adapter.take(data, order)
            parts = [Chunk(positions, data, sum(p.nbytes for p in parts))]
        self._set(parts)
        return True
