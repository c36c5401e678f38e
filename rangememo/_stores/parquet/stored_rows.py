"""A key's rows and ledger as read from disk, loaded window by window (no I/O here).

A key reopened from disk knows, from its ledger, which segment holds the rows
of each range (newest wins), but loads nothing until a window asks for it:
:class:`SegmentRows` keeps the *pending* pieces ``(lo, hi, segment)`` and moves
each into ordinary in-memory chunks the first time a read touches it. A write
(a fetched piece, a forgotten range) makes its range known in memory, so
appends stay O(appended) and never load the key.

:class:`StoredLedger` asks the rows to load a range before it answers
``covers``/``missing`` for it: if a segment turns out to be damaged, the store
drops its range from the coverage right there, so the cache refetches it
instead of serving a hole.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Sequence

import numpy as np

from ..._core.ledger import Pair
from ..._core.results import Adapter
from ..._core.rows import Chunk, Rows
from .bulk_rows import BulkRows, has_freq
from .claims import Piece, owned, owners, shown, visible
from .segments import Segment
from .stored_ledger import StoredLedger

__all__ = ["Piece", "SegmentRows", "StoredLedger", "shown", "visible"]

#: ``load(segment, lo, hi) -> (known_lo, known_hi, chunk)``: every row of the
#: segment in ``[known_lo, known_hi)`` (which contains ``[lo, hi)``).
Loader = Callable[[Segment, int, int], tuple[int, int, Chunk]]


class SegmentRows(BulkRows):
    """Rows of a stored key: chunks in memory plus pieces still on disk."""

    __slots__ = ("_lazy", "_load", "_mutex", "_pend", "_rows", "_segs", "probe")

    def __init__(
        self,
        adapter: Adapter,
        pending: list[Piece],
        load: Loader,
        segments: Sequence[Segment] | None = None,
    ) -> None:
        """``segments`` (instead of ``pending``): a ledger's segments, whose pieces
        (:func:`visible`) are worked out only if needed. A key loaded whole on
        first use (``eager_rows``) never needs them."""
        super().__init__(adapter)
        self._load = load
        # The key's loader of last resort (KeyState.probe): a part found damaged, or
        # compacted away by another process, is recovered from instead of raised.
        self.probe: Callable[[int, int], None] | None = None
        # Loads and writes are serialised; reads of loaded rows never wait.
        self._mutex = threading.RLock()
        self._pend: tuple[list[int], list[Piece]] = ([], [])
        self._lazy: Sequence[Segment] | None = None
        self._set_pending(pending)
        if segments is not None:
            self._lazy = tuple(segments)
            self._segs = {id(s): s for s in segments if s.file is not None and s.rows}
            self._rows = sum(seg.rows for seg in self._segs.values())

    @property
    def _pending(self) -> tuple[list[int], list[Piece]]:
        if self._lazy is not None:
            # Under the mutex: a reader working the pieces out while a writer
            # splices them (``_unpend``) would put back pieces of rows it wrote.
            with self._mutex:
                if self._lazy is not None:
                    self._set_pending(visible(self._lazy))
        return self._pend

    def _set_pending(self, pieces: list[Piece]) -> None:
        self._pend = ([p[0] for p in pieces], pieces)
        # By identity: a segment's hash is its claims' (O(K) for a fragmented key).
        self._segs = {id(p[2]): p[2] for p in pieces}
        self._rows = sum(seg.rows for seg in self._segs.values())
        self._lazy = None  # last: a reader seeing no segments to work out sees the pieces

    # -- what is still on disk -------------------------------------------
    @property
    def complete(self) -> bool:
        """Is every stored row in memory?"""
        if self._lazy is not None:
            return not self._segs
        return not self._pend[1]

    @property
    def pending_rows(self) -> int:
        """Rows of the segments still (partly) on disk: an upper bound."""
        return self._rows

    def pending(self, lo: int, hi: int) -> list[Piece]:
        """The pending pieces overlapping ``[lo, hi)``."""
        starts, pieces = self._pending
        if not pieces:
            return []
        k, out = max(bisect.bisect_right(starts, lo) - 1, 0), []
        for piece in pieces[k:]:
            if piece[0] >= hi:
                break
            if piece[1] > lo:
                out.append(piece)
        return out

    def grid_ref(self) -> int | None:
        # A row still on disk marks the key's grid as well as a loaded one.
        ref = super().grid_ref()
        pieces = self._pending[1]
        return ref if ref is not None or not pieces else pieces[0][2].first

    def grid_refs(self) -> tuple[int, ...]:
        pieces = self._pending[1]
        ends = (pieces[0][2].first, pieces[-1][2].last) if pieces else ()
        return super().grid_refs() + ends

    def __len__(self) -> int:
        # Not exact while pieces are on disk (a part may be partly overridden),
        # but never 0 for a key that holds rows: the schema checks rely on that.
        return super().__len__() + self.pending_rows

    # -- reading -------------------------------------------------------------
    def window(self, lo: int, hi: int) -> list[object]:
        if self._pending[1] and self.pending(lo, hi):
            self._bring(lo, hi)
        return super().window(lo, hi)

    def first_in(self, lo: int, hi: int) -> int | None:
        if self._pending[1] and self.pending(lo, hi):
            self._bring(lo, hi)
        return super().first_in(lo, hi)

    def _bring(self, lo: int, hi: int) -> None:
        if self.probe is not None:
            self.probe(lo, hi)
        else:
            self.ensure(lo, hi)

    def frozen(self, lo: int, hi: int) -> tuple[Rows, list[tuple[int, int]]]:
        # Under the mutex: a load moves rows from pending to memory in two steps.
        with self._mutex:
            rows, _ = super().frozen(lo, hi)
            return rows, [(max(a, lo), min(b, hi)) for a, b, _ in self.pending(lo, hi)]

    def ensure(self, lo: int, hi: int) -> bool:
        """Load the stored rows of ``[lo, hi)`` not in memory yet; did it load any?

        Raises :class:`~rangememo._stores.parquet.segments.Damaged` for an unreadable segment
        (the rows loaded from other segments stay loaded).
        """
        with self._mutex:
            lazy = self._lazy
            if lazy is not None and not self._state[0] and self._spans_all(lo, hi):
                return self._ensure_whole(lazy)
            by_seg: dict[int, list[Piece]] = {}
            for p in self.pending(lo, hi):
                by_seg.setdefault(id(p[2]), []).append(p)
            loaded: dict[int, tuple[int, int, Chunk]] = {}
            try:
                for parts in by_seg.values():
                    a, b = max(lo, parts[0][0]), min(hi, parts[-1][1])
                    loaded[id(parts[0][2])] = self._load(parts[0][2], a, b)
            finally:  # what was read goes in, also when a later segment is damaged
                if loaded:
                    self._take(loaded)
            return bool(by_seg)

    def _spans_all(self, lo: int, hi: int) -> bool:
        segs = self._segs.values()
        return not segs or (lo <= min(s.first for s in segs) and hi > max(s.last for s in segs))

    def _ensure_whole(self, segments: Sequence[Segment]) -> bool:
        """Load every stored row (memory holds none), by array masks, not by pieces.

        Each segment's rows show where its claim is the newest (:func:`owners`);
        the rows of all segments become one chunk. Pieces are worked out only
        when that cannot be (differing schemas, an index with a ``freq``): for a
        key of 10,000 intervals they cost more than reading its files.
        """
        loaded: dict[int, tuple[int, int, Chunk]] = {}
        done = freq = False
        try:
            cuts, owner = owners(segments)
            shows = np.zeros(len(segments) + 1, dtype=bool)  # [-1]: unclaimed ranges
            shows[owner] = True
            parts: list[Chunk] = []
            for k, seg in enumerate(segments):
                if id(seg) not in self._segs or not shows[k]:
                    continue
                hit = loaded[id(seg)] = self._load(seg, seg.first, seg.last + 1)
                chunk = hit[2]
                # A take drops an index's freq: such a key goes by pieces (below).
                freq = freq or has_freq(chunk.data)
                mask = owned(cuts, owner, k, chunk.positions)
                if mask.all():
                    parts.append(chunk)
                elif mask.any():
                    idx = np.nonzero(mask)[0]
                    data = self._adapter.take(chunk.data, idx)
                    nbytes = chunk.nbytes * len(idx) // len(mask)
                    parts.append(Chunk(chunk.positions[idx], data, nbytes))
            done = not freq and self._set_whole(parts)
            if done:
                self._set_pending([])
        finally:
            if not done:  # by pieces, also when a segment is damaged (the loaded ones stay)
                self._set_pending(visible(segments))
                if loaded:
                    self._take(loaded)
        return bool(loaded)

    def _take(self, loaded: dict[int, tuple[int, int, Chunk]]) -> None:
        """Move loaded rows (by segment identity) into memory, in one pass over the pieces.

        One pass for all segments: a key opened whole has pieces from several
        segments, and a pass per segment made its open O(segments x pieces).
        """
        kept: list[Piece] = []
        got: dict[int, list[tuple[int, int]]] = {k: [] for k in loaded}
        for x, y, s in self._pend[1]:
            hit = loaded.get(id(s))
            lo_, hi_ = (max(x, hit[0]), min(y, hit[1])) if hit is not None else (0, 0)
            if lo_ >= hi_:
                kept.append((x, y, s))
                continue
            got[id(s)].append((lo_, hi_))
            if x < lo_:
                kept.append((x, lo_, s))
            if y > hi_:
                kept.append((hi_, y, s))
        for k, (_, _, chunk) in loaded.items():
            self._insert(chunk, got[k])
        self._set_pending(kept)

    # -- writing -------------------------------------------------------------
    def replace(self, lo: int, hi: int, piece: Chunk | None) -> None:
        with self._mutex:
            self._replace(lo, hi, piece)

    def _replace(self, lo: int, hi: int, piece: Chunk | None) -> None:
        Rows.replace(self, lo, hi, piece)
        self._unpend(lo, hi)

    def clear(self) -> None:
        with self._mutex:
            Rows.clear(self)
            self._set_pending([])

    def _unpend(self, lo: int, hi: int) -> None:
        """``[lo, hi)`` is known in memory now: no longer pending.

        Pieces are disjoint and sorted: the ones cut are a slice found by
        bisection, and the lists are spliced (no pass over every piece).
        """
        starts, pieces = self._pending
        if lo >= hi or not pieces:
            return
        k = max(bisect.bisect_right(starts, lo) - 1, 0)
        if pieces[k][1] <= lo:
            k += 1
        m = bisect.bisect_left(starts, hi, lo=k)
        if k >= m:
            return
        mid: list[Piece] = []
        a, _, seg = pieces[k]
        if a < lo:
            mid.append((a, lo, seg))
        _, b, seg = pieces[m - 1]
        if b > hi:
            mid.append((hi, b, seg))
        kept = pieces[:k] + mid + pieces[m:]
        self._pend = (starts[:k] + [p[0] for p in mid] + starts[m:], kept)
        if not kept:
            self._segs, self._rows = {}, 0
        # Otherwise ``_segs`` and ``_rows`` may still name a segment no piece
        # uses any more: an upper bound, as ``pending_rows`` promises.

    def add_segment(self, seg: Segment, claims: Sequence[Pair] | None = None) -> None:
        """Another process committed ``seg``: its claims (or ``claims``) now read from disk."""
        claims = seg.claims if claims is None else claims
        with self._mutex:
            for a, b in claims:
                self._replace(a, b, None)
            if seg.file is None or not seg.rows:
                return
            lo, hi = seg.first, seg.last + 1
            new = [(max(a, lo), min(b, hi), seg) for a, b in claims if a < hi and b > lo]
            self._set_pending(sorted(self._pending[1] + new, key=lambda p: p[0]))

    def drop(self, ranges: list[Pair]) -> None:
        """Forget the rows of ``ranges`` (a damaged segment's): none in memory or pending."""
        with self._mutex:
            for a, b in ranges:
                self._replace(a, b, None)

    def reset(self, pending: list[Piece]) -> None:
        """Start over from another ledger: nothing in memory, ``pending`` on disk."""
        with self._mutex:
            Rows.clear(self)
            self._set_pending(pending)

    def rebind(self, mapping: dict[str, Segment]) -> None:
        """Compaction moved rows to new files (same content): follow them."""
        with self._mutex:
            # A merge of the newest small segments rarely names a pending one:
            # then nothing to do (not a pass over every pending piece).
            if any(s.file in mapping for s in self._segs.values()):
                self._set_pending(
                    [(a, b, mapping.get(s.file or "", s)) for a, b, s in self._pending[1]]
                )
