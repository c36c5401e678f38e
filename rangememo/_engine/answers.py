"""What a cached function makes of a provider's answer, and the answer it gives.

A mixin of :class:`~rangememo._engine.cache.RangeCache` (the attributes it reads
are set there): validating a provider result into a commit (``digest``), the
commits of gaps with nothing in them, and assembling the caller's answer from
the stored rows and this call's parts (``assemble``).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from .._core.entry import Entry, Fetched, Landed, Part, View, compose, present
from .._core.grid import claim
from .._core.planner import Gap
from .._core.results import Adapter, FrameAdapter, adapter_for, is_polars
from .._core.rows import Chunk, Rows, normalize
from .._errors import CacheWarning, RangememoError, ResultTypeError
from .._warn import warn
from .policy import clock_ns

if TYPE_CHECKING:
    from .options import Options, Request
    from .readahead import Readahead
    from .stats import Stats

__all__ = ["Answers"]

log = logging.getLogger("rangememo")

#: Result types whose zero-row answers mean "no rows here", whatever their schema.
_RESULTS = (pd.DataFrame, pd.Series, pa.Table)


class Answers:
    """Provider answers in, caller answers out (mixed into ``RangeCache``)."""

    options: Options
    stats: Stats
    readahead: Readahead
    counts_ahead: bool
    settle: int | None
    ttl: int | None

    def digest(
        self,
        req: Request,
        gap: Gap,
        result: Any,
        entry: Entry | None,
        started: dt.datetime | None = None,
    ) -> Fetched:
        """Validate a provider result and shape it into a commit of ``gap``.

        ``started``: the clock as the provider was called. What is final is
        decided as of then: a bar still forming when the call began may have
        been answered as it was then, however late the answer lands.
        """
        if result is None or (
            (isinstance(result, _RESULTS) or is_polars(result)) and not len(result)
        ):
            return self._nothing(req, gap, result, entry, started)
        known = entry is not None and entry.template is not None
        adapter = entry.adapter if known and entry is not None else None
        if adapter is None or not isinstance(result, adapter.types):
            if adapter is not None:
                adapter_for(result, self.options.index)  # TypeError for an alien type
                raise _kind_changed(adapter.kind, result)
            adapter = adapter_for(result, self.options.index)
        positions = adapter.positions(result, req.axis)
        axis = req.axis
        # Every row the call asked for is kept, whatever its phase on the grid.
        chunk = normalize(adapter, positions, result, gap.call_lo, gap.call_hi)
        dropped = len(positions) - len(chunk)
        if dropped:
            log.debug("dropped %d rows outside the gap %s", dropped, gap)
        self.stats.count(rows=len(chunk), nbytes=chunk.nbytes)
        if self.counts_ahead:
            self.readahead.fetched(req.key, req.lo, req.hi, chunk.positions)
        if axis.ref is not None:
            gap = claim(req.axis, req.rows_hi, gap, chunk, entry, adapter.position_tz(result))
        # A piece shaped like the key's rows takes the key's template (as commit
        # would), rather than building an empty frame (~12 µs) to throw away.
        template = entry.template if known and entry is not None else None
        rows = entry.rows if entry is not None else None
        if template is None or not rows or not adapter.same_schema(result, template):
            template = adapter.blank(result)  # kept for the key's life: none of the answer
        return self._fetched(req, gap, chunk, template, adapter, started)

    def _nothing(
        self,
        req: Request,
        gap: Gap,
        result: Any,
        entry: Entry | None,
        started: dt.datetime | None = None,
    ) -> Fetched:
        """A commit of ``gap`` with no rows: ``None`` or an empty result of any shape.

        The range is covered; a key with a schema keeps it (see Entry.conform), a
        fresh key takes the empty result's own (``None``: none yet).
        """
        if entry is not None and entry.adapter is not None and entry.template is not None:
            adapter, template = entry.adapter, entry.template
        elif result is None:
            adapter, template = FrameAdapter(self.options.index), None
        else:
            adapter = adapter_for(result, self.options.index)
            template = adapter.empty(result)
        chunk = Chunk(np.empty(0, dtype=np.int64), template, 0)
        if req.axis.ref is not None:
            gap = claim(req.axis, req.rows_hi, gap, chunk, entry)
        return self._fetched(req, gap, chunk, template, adapter, started)

    def skip(self, req: Request, gap: Gap, entry: Entry | None) -> Fetched | None:
        """A commit for a gap with no session (no call), if the schema is known."""
        if gap.needs_call or entry is None or entry.adapter is None or entry.template is None:
            return None
        empty = entry.adapter.empty(entry.template)
        log.debug("no session in %s: covered without a call", gap)
        self.stats.count(calendar_skips=1)
        chunk = Chunk(np.empty(0, dtype=np.int64), empty, 0)
        return self._fetched(req, gap, chunk, empty, entry.adapter)

    def _fetched(
        self,
        req: Request,
        gap: Gap,
        chunk: Chunk,
        template: Any,
        adapter: Adapter,
        started: dt.datetime | None = None,
    ) -> Fetched:
        """The commit of ``gap``, with the live edge held back when ``settle`` is set."""
        clock = started if started is not None else self.options.clock()
        fetched = Fetched(gap.lo, gap.hi, chunk, template, adapter, req.axis.signature, gap.hi)
        fetched.tz = req.tz
        fetched.fetched_at = clock_ns(clock) / 1e9  # a naive clock is UTC, as everywhere
        settle = self.settle
        if settle is None:
            # The default live edge: on a stepped time axis the bar holding "now"
            # (and anything later) is still forming. Int and continuous axes have none.
            if self.options.settle is False or req.axis.kind == "int" or req.axis.step == 1:
                return fetched
            settle = 0
        # Only bars ending by ``now - settle`` (grid points before its floor) are final. A naive
        # clock (and a naive axis) is read as UTC, the data-API convention.
        cut = req.axis.grid_floor(clock_ns(clock) - settle, gap.lo)
        fetched.final_hi = min(gap.hi, max(gap.lo, cut))
        if self.ttl is not None and fetched.final_hi < gap.hi:
            fetched.expires = fetched.fetched_at + self.ttl / 1e9
        return fetched

    def commit_failed(self, exc: OSError, req: Request) -> None:
        if getattr(exc, "repeated", False):  # warned about this key already
            log.debug("not cached for key %r: %s", req.key, exc)
            return
        warn(CacheWarning(f"could not store a fetch for key {req.key!r}: {exc}; result not cached"))

    # -- assembling the answer -------------------------------------------------------
    def assemble(
        self, req: Request, view: View | None, parts: list[Part], latest: Entry | None
    ) -> Any:
        """The answer for ``req``: ``view``'s rows with this call's parts laid over.

        ``parts`` are the disjoint ranges this call fetched or waited for, each
        with its rows, so nothing is read from the entry as it is now (another
        caller may have forgotten some of it). ``latest``, the entry after this
        call's commits, gives the schema as widened by what was fetched.
        """
        if not parts:
            assert view is not None
            return view.read(req.lo, req.rows_hi, req.tz)
        first, base = parts[0], view.rows if view is not None else None
        if latest is not None and latest.adapter is not None and latest.template is not None:
            adapter, template, follows = latest.adapter, latest.template, latest.follows_tz
        elif view is not None and view.adapter is not None and view.template is not None:
            adapter, template, follows = view.adapter, view.template, view.follows_tz
        else:
            adapter, template, follows = first.adapter, first.template, False
        landed = _landed(view, parts)
        if landed is not None:  # the rows as the call's own commits left them
            pieces = landed.window(req.lo, req.rows_hi)
            return present(adapter, follows, compose(adapter, pieces, template), req.tz)
        pieces, cursor = [], req.lo
        for part in sorted(parts, key=lambda p: p.lo):
            a, b = max(part.lo, cursor), min(part.hi, req.rows_hi)
            if a >= b:
                continue
            if cursor < a and base is not None:
                pieces += base.window(cursor, a)
            pieces += part.rows.window(a, b)
            cursor = max(cursor, b)
        if cursor < req.rows_hi and base is not None:
            pieces += base.window(cursor, req.rows_hi)
        return present(adapter, follows, compose(adapter, pieces, template), req.tz)


def _landed(view: View | None, parts: list[Part]) -> Rows | None:
    """The entry's rows after the call's commits, if they are ``view`` plus ``parts``.

    So only when every part was committed to the view's entry, one commit after
    another from the view's version on, with nothing else in between.
    """
    if view is None or view.entry is None or not parts:
        return None
    marks: list[Landed] = []
    for part in parts:
        if part.landed is None or part.landed.entry is not view.entry:
            return None
        marks.append(part.landed)
    marks.sort(key=lambda m: m.before)
    for i, mark in enumerate(marks):
        if mark.before != view.version + i:
            return None
    return marks[-1].rows


def _kind_changed(kind: str, result: Any) -> RangememoError:
    return ResultTypeError(
        f"the wrapped function returned a {type(result).__qualname__} "
        f"where it returned a {kind} before"
    )
