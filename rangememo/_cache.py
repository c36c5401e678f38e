"""RangeCache: one cached function — binds calls, plans, fetches gaps, assembles.

The async and sync paths share everything but the waiting: asyncio tasks and
futures for ``async def`` functions, threads and ``concurrent.futures`` for
plain ones (so a sync wrapper never needs, or touches, an event loop).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import warnings
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np
import portion as P

from ._axis import Axis, Closed, axis_of, span_ns
from ._binding import Binder, KeySpec
from ._entry import Entry, Fetched, Part, View, compose, present
from ._errors import CacheWarning, InvalidRange, RangememoError, ResultTypeError
from ._frames import Adapter, adapter_for
from ._ledger import pairs, span
from ._merge import Chunk, normalize
from ._planner import Gap, Policy, plan_gaps
from ._policy import RateLimit, SessionCalendar, clock_ns, to_units
from ._stats import Stats
from ._store import Store, default_store

__all__ = ["Options", "RangeCache", "Request"]

log = logging.getLogger("rangememo")


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class Options:
    """Everything ``range_cached`` was configured with."""

    key: KeySpec = None
    start: str = "start"
    end: str = "end"
    step: Any = None
    closed: Closed = "both"
    index: str | None = None
    settle: Any = None
    ttl: Any = None
    max_concurrency: int = 4
    namespace: str | None = None
    version: int | str = 0
    clock: Callable[[], dt.datetime] = _utcnow
    readahead: Any = None
    lookback: Any = None
    coalesce: Any = None
    max_span: Any = None
    rate_limit: tuple[int, float] | None = None
    calendar: Any = None

    @property
    def plans(self) -> bool:
        """Does planning need more than the ledger (so a Policy is built)?"""
        return any(
            v is not None
            for v in (self.readahead, self.lookback, self.coalesce, self.max_span, self.calendar)
        )


@dataclass(slots=True)
class Request:
    """One call, bound and encoded."""

    bound: Any  # inspect.BoundArguments
    key: Hashable
    axis: Axis
    lo: int
    hi: int  # end of what a fetch of the request covers
    rows_hi: int  # end of the rows the answer holds

    @property
    def tz(self) -> str | None:
        """The timezone of the caller's bounds, as text (``None``: naive)."""
        return str(self.axis.tz) if self.axis.aware else None


class RangeCache:
    """The state behind one decorated function."""

    def __init__(self, fn: Callable[..., Any], options: Options, store: Store | None) -> None:
        if options.closed not in ("both", "left"):
            raise InvalidRange(f"closed must be 'both' or 'left', got {options.closed!r}")
        if options.max_concurrency < 1:
            raise InvalidRange(f"max_concurrency must be >= 1, got {options.max_concurrency!r}")
        self.fn = fn
        self.options = options
        self._store = store  # None: the default store, opened on first use
        self.binder = Binder(fn, options.key, options.start, options.end)
        base = options.namespace or f"{fn.__module__}.{fn.__qualname__}"
        self.namespace = f"{base}@v{options.version}"
        self.stats = Stats()
        self.settle = span_ns(options.settle, "settle")
        self.ttl = span_ns(options.ttl, "ttl")
        self.limit = RateLimit(*options.rate_limit) if options.rate_limit else None
        self.calendar = SessionCalendar(options.calendar) if options.calendar is not None else None
        # In-flight fetches per key (interval-level single flight).
        self.inflight: dict[Hashable, list[Any]] = {}
        self.lock = threading.Lock()

    @property
    def store(self) -> Store:
        store = self._store
        if store is None:
            store = self._store = default_store()
        return store

    # -- binding -------------------------------------------------------------
    def request(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
        binder = self.binder
        bound = binder.bind(args, kwargs)
        arguments = bound.arguments
        step = self.options.step
        if callable(step):
            step = step(**binder.keywords(arguments))
        axis = axis_of(arguments[binder.start], arguments[binder.end], step, self.options.closed)
        lo, hi, rows_hi = axis.request(arguments[binder.start], arguments[binder.end])
        return Request(bound, binder.key(arguments), axis, lo, hi, rows_hi)

    def attach(self, req: Request, entry: Entry | None) -> None:
        """Put the request on the key's grid: through a row the key already holds."""
        axis = req.axis
        if entry is None or entry.rows is None or axis.closed != "both" or axis.step == 1:
            return
        ref = entry.rows.grid_ref()
        if ref is not None:
            req.axis = axis = dataclasses.replace(axis, ref=ref)
            req.hi = axis.grid_next(req.rows_hi - 1)

    def now(self) -> float:
        return self.options.clock().timestamp()

    # -- the hot path ----------------------------------------------------------
    def view(self, req: Request, entry: Entry | None) -> View | None:
        """The moment of ``entry`` this call answers from (``None``: nothing cached)."""
        if entry is None:
            return None
        entry.check_axis(req.axis.signature, req.key)
        return entry.view(req.lo, req.hi)

    def hit(self, req: Request, view: View | None) -> tuple[bool, Any]:
        """Serve ``req`` from ``view`` if it is fully covered."""
        if view is None:
            return False, None
        ledger = view.ledger
        now = self.now() if ledger.provisional else 0.0
        if view.rows is None or not ledger.covers(req.lo, req.hi, now):
            return False, None
        self.stats.count(hits=1)
        return True, view.read(req.lo, req.rows_hi, req.tz)

    def policy(self, req: Request, extend: bool = True) -> Policy:
        """The planning options of this call in its axis' units."""
        o, axis = self.options, req.axis
        if not o.plans:
            return Policy(step=axis.step)
        timed = axis.kind != "int"
        calendar = self.calendar if timed else None
        return Policy(
            step=axis.step,
            max_span=to_units(o.max_span, axis, "max_span"),
            coalesce=to_units(o.coalesce, axis, "coalesce"),
            readahead=to_units(o.readahead, axis, "readahead") if extend else None,
            lookback=to_units(o.lookback, axis, "lookback") if extend else None,
            # Never read ahead into the future, nor past the live edge.
            edge=axis.grid_floor(clock_ns(o.clock()) - (self.settle or 0), req.lo)
            if timed
            else None,
            sessions=(lambda lo, hi: calendar.spans(axis, lo, hi)) if calendar else None,
        )

    def plan(self, req: Request, view: View | None, make: Callable[[Gap], Any]) -> Any:
        """Register new flights for the gaps; return ``(new, waits)``."""
        ledger = view.ledger if view is not None else None
        now = self.now() if ledger is not None and ledger.provisional else 0.0
        policy = self.policy(req)
        with self.lock:
            flights = self.inflight.setdefault(req.key, [])
            plan = plan_gaps(req.lo, req.hi, ledger, flights, now, policy)
            new = [make(g) for g in plan.gaps]
            flights.extend(new)
            if not flights:  # covered meanwhile (another thread): keep no empty list
                del self.inflight[req.key]
        partial = ledger is not None and ledger.covered.overlaps(span(req.lo, req.hi))
        refetch = 0
        if ledger is not None and ledger.provisional:
            refetch = sum(
                1 for g in plan.gaps for p in ledger.provisional if p.lo < g.hi and g.lo < p.hi
            )
        self.stats.count(
            partial_hits=int(partial), misses=int(not partial), provisional_refetches=refetch
        )
        return new, plan.waits

    def replan(self, req: Request, entry: Entry | None, gap: Gap) -> tuple[list[Gap], list[Part]]:
        """What of a planned gap is still missing once a shared store's lock is held.

        Also the parts of the gap another process covered meanwhile, with their
        rows as of now (the call answers with them, not with a later read).
        """
        if entry is None:
            return [gap], []
        view = entry.view(gap.lo, gap.hi)
        policy = self.policy(req, False)
        gaps = plan_gaps(gap.lo, gap.hi, view.ledger, (), self.now(), policy).gaps
        if gaps == [gap] or view.rows is None or view.adapter is None:
            return gaps, []
        done = span(gap.lo, gap.hi) - P.Interval(*(span(g.lo, g.hi) for g in gaps))
        rows, adapter, template = view.rows, view.adapter, view.template
        return gaps, [Part(a, b, rows, adapter, template) for a, b in pairs(done)]

    def land(self, req: Request, flight: Any) -> None:
        """A flight is over (committed or failed): stop sharing it."""
        with self.lock:
            flights = self.inflight.get(req.key)
            if flights is not None and flight in flights:
                flights.remove(flight)
                if not flights:
                    del self.inflight[req.key]

    # -- one provider call -------------------------------------------------------
    def gap_call(self, req: Request, gap: Gap) -> tuple[tuple[Any, ...], dict[str, Any]]:
        start, end = req.axis.bounds(gap.call_lo, gap.call_hi)
        log.debug("fetch %s key=%r [%s, %s]", self.namespace, req.key, start, end)
        self.stats.count(calls=1)
        return self.binder.with_range(req.bound, start, end)

    def digest(self, req: Request, gap: Gap, result: Any, entry: Entry | None) -> Fetched:
        """Validate a provider result and shape it into a commit of ``gap``."""
        adapter = entry.adapter if entry is not None and entry.adapter is not None else None
        if adapter is None or not isinstance(result, adapter.types):
            if adapter is not None:
                adapter_for(result, self.options.index)  # TypeError for an alien type
                raise _kind_changed(adapter.kind, result)
            adapter = adapter_for(result, self.options.index)
        positions = adapter.positions(result, req.axis)
        axis = req.axis
        rows_hi = axis.last(gap.call_lo, gap.call_hi) + 1 if axis.closed == "both" else gap.call_hi
        chunk = normalize(adapter, positions, result, gap.call_lo, rows_hi)
        dropped = len(positions) - len(chunk)
        if dropped:
            log.debug("dropped %d rows outside the gap %s", dropped, gap)
        self.stats.count(rows=len(chunk), nbytes=chunk.nbytes)
        if axis.ref is None and len(chunk) and axis.closed == "both" and gap.call_hi == gap.hi:
            # The key's first rows show where its grid lies: claim only up to
            # the grid point after what was asked, as later requests will.
            on_grid = dataclasses.replace(axis, ref=chunk.first)
            hi = max(gap.lo + 1, min(gap.hi, on_grid.grid_next(rows_hi - 1)))
            gap = Gap(gap.lo, hi, gap.call_lo, min(gap.call_hi, hi))
        return self._fetched(req, gap, chunk, adapter.empty(result), adapter)

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
        self, req: Request, gap: Gap, chunk: Chunk, template: Any, adapter: Adapter
    ) -> Fetched:
        """The commit of ``gap``, with the live edge held back when ``settle`` is set."""
        clock = self.options.clock()
        fetched = Fetched(gap.lo, gap.hi, chunk, template, adapter, req.axis.signature, gap.hi)
        fetched.tz = req.tz
        fetched.fetched_at = clock.timestamp()
        if self.settle is None:
            return fetched
        if req.axis.kind == "int":
            raise InvalidRange("settle= needs datetime or date bounds, not ints")
        # Only bars ending by ``now - settle`` (grid points before its floor) are final. A naive
        # clock (and a naive axis) is read as UTC, the data-API convention.
        cut = req.axis.grid_floor(clock_ns(clock) - self.settle, gap.lo)
        fetched.final_hi = min(gap.hi, max(gap.lo, cut))
        if self.ttl is not None and fetched.final_hi < gap.hi:
            fetched.expires = fetched.fetched_at + self.ttl / 1e9
        return fetched

    def commit_failed(self, exc: OSError, req: Request) -> None:
        warnings.warn(
            CacheWarning(f"could not store a fetch for key {req.key!r}: {exc}; result not cached"),
            stacklevel=4,
        )

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


def _kind_changed(kind: str, result: Any) -> RangememoError:
    return ResultTypeError(
        f"the wrapped function returned a {type(result).__qualname__} "
        f"where it returned a {kind} before"
    )
