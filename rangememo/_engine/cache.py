"""RangeCache: one cached function — binds calls, plans, fetches gaps, assembles.

The async and sync paths share everything but the waiting: asyncio tasks and
futures for ``async def`` functions, threads and ``concurrent.futures`` for
plain ones (so a sync wrapper never needs, or touches, an event loop).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from .._core.axis import Axis, Closed, axis_of, span_ns
from .._core.entry import Entry, Fetched, Landed, Part, View, compose, present
from .._core.grid import claim, fit
from .._core.ledger import Ledger
from .._core.planner import Gap, Policy, plan_gaps
from .._core.results import Adapter, FrameAdapter, adapter_for, is_polars
from .._core.rows import Chunk, Rows, normalize
from .._errors import CacheWarning, InvalidOption, RangememoError, ResultTypeError
from .._stores.base import Store
from .._warn import remember_caller, warn
from .binding import Binder, KeySpec
from .bounds import as_string, coerce_bounds
from .identity import default_namespace, describe, fingerprint
from .policy import RateLimit, SessionCalendar, clock_ns, to_units
from .readahead import Readahead, auto_cap
from .stats import Stats
from .validate import check_options, is_auto

__all__ = ["Options", "RangeCache", "Request"]

log = logging.getLogger("rangememo")

#: Result types whose zero-row answers mean "no rows here", whatever their schema.
_RESULTS = (pd.DataFrame, pd.Series, pa.Table)


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
    readahead: Any = "auto"
    max_readahead: Any = None
    lookback: Any = None
    coalesce: Any = None
    max_span: Any = None
    rate_limit: tuple[int, float] | None = None
    calendar: Any = None
    stale_if_error: bool = False
    coerce_bounds: bool = False

    def __post_init__(self) -> None:
        check_options(self)  # InvalidOption at decoration, naming the value

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
    rows_hi: int  # end of the rows the answer holds
    strings: bool = False  # the caller's bounds were ISO strings (coerce_bounds=True)

    @property
    def hi(self) -> int:
        """End of what the answer needs covered: what was asked (a fetch may claim more)."""
        return self.rows_hi

    @property
    def tz(self) -> str | None:
        """The timezone of the caller's bounds, as text (``None``: naive)."""
        return str(self.axis.tz) if self.axis.aware else None


class Landings:
    """When each key last had a flight land, on a counter (changed under the cache's lock).

    Bounded: keys that fell out count as landed at the newest stamp that fell
    out, which can only make a caller read its entry once more.
    """

    __slots__ = ("clock", "floor", "last", "size")

    def __init__(self, size: int = 4096) -> None:
        self.clock = self.floor = 0
        self.size = size
        self.last: OrderedDict[Hashable, int] = OrderedDict()

    def stamp(self) -> int:
        return self.clock

    def note(self, key: Hashable) -> None:
        self.clock += 1
        self.last[key] = self.clock
        self.last.move_to_end(key)
        if len(self.last) > self.size:
            self.floor = max(self.floor, self.last.popitem(last=False)[1])

    def since(self, key: Hashable, seen: int) -> bool:
        return self.last.get(key, self.floor) > seen


class RangeCache:
    """The state behind one decorated function."""

    def __init__(
        self,
        fn: Callable[..., Any],
        options: Options,
        store: Store | None,
        default: Callable[[], Store] | None = None,
    ) -> None:
        if not callable(fn):
            raise InvalidOption(f"range_cached decorates a function, got {fn!r}")
        self.fn = fn
        self.options = options
        self._store = store  # None: the default store, opened on first use
        # The engine knows stores only by their interface: which store is the
        # default is the front door's business (rangememo._stores.default).
        self._default = default
        self.binder = Binder(fn, options.key, options.start, options.end)
        # Distinct functions never share entries; changed code is never served silently.
        self.name, self.code = describe(fn), fingerprint(fn)
        persistent = store is None or store.persistent
        base = options.namespace or default_namespace(fn, persistent)
        version = f"code-{self.code[:12]}" if options.version == "auto" else f"v{options.version}"
        self.namespace = f"{base}@{version}"
        self._code_checked = False
        self.stats = Stats()
        # None: the default live edge (the forming bar of a stepped time axis);
        # False: every bar final.
        self.settle = None if options.settle is False else span_ns(options.settle, "settle")
        self.ttl = span_ns(options.ttl, "ttl")
        self.limit = RateLimit(*options.rate_limit) if options.rate_limit else None
        self.calendar = SessionCalendar(options.calendar) if options.calendar is not None else None
        # In-flight fetches per key (interval-level single flight).
        self.inflight: dict[Hashable, list[Any]] = {}
        self.landings = Landings()
        # Adaptive readahead: each key's recent marches, the rows fetched ahead.
        self.readahead = Readahead(self.stats)
        self.counts_ahead = options.readahead is not None or options.lookback is not None
        self.lock = threading.Lock()

    @property
    def store(self) -> Store:
        store = self._store
        if store is None:
            if self._default is None:
                raise InvalidOption(f"{self.name}: no store given and no default store")
            store = self._store = self._default()
        if not self._code_checked:
            self._code_checked = True
            self._check_code(store)
        return store

    def _check_code(self, store: Store) -> None:
        before = store.record_code(self.namespace, self.name, self.code)
        if before is None:
            return
        version = self.options.version
        bump = f"version={version + 1}" if isinstance(version, int) else "another version="
        warn(
            CacheWarning(
                f"the entries of {self.name} (namespace {self.namespace!r}) were written by "
                f"other code (fingerprint {before[:12]}, now {self.code[:12]}) and are served "
                f"as before. If the change alters what it returns, pass {bump} (or "
                'version="auto": start afresh whenever the code changes), or call cache_clear()'
            )
        )

    # -- binding -------------------------------------------------------------
    def request(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
        binder = self.binder
        bound = binder.bind(args, kwargs)
        arguments = bound.arguments
        start, end, strings = arguments[binder.start], arguments[binder.end], False
        if self.options.coerce_bounds:
            start, end, strings = coerce_bounds(start, end)
        step = self.options.step
        if callable(step):
            step = step(**binder.keywords(arguments))
        axis = axis_of(start, end, step, self.options.closed)
        if axis.kind == "int" and self.settle is not None:
            raise InvalidOption(
                f"settle={self.options.settle!r} needs datetime or date bounds, "
                f"not ints ({start!r}); drop settle= for int bounds"
            )
        remember_caller()
        lo, _, rows_hi = axis.request(start, end)
        if axis.step > 1 and axis.closed == "both":
            # The caller's grid runs through its start (built directly: replace() costs 8 µs).
            a = axis
            axis = Axis(
                a.kind, a.aware, a.tz, a.step, a.closed, a.timestamp_out, lo, a.unit, a.numpy_out
            )
        return Request(bound, binder.key(arguments), axis, lo, rows_hi, strings)

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
        if self.readahead.unused:
            self.used(req)
        return True, view.read(req.lo, req.rows_hi, req.tz)

    def policy(self, req: Request, extend: bool = True) -> Policy:
        """The planning options of this call in its axis' units."""
        o, axis = self.options, req.axis
        if not o.plans:
            return Policy(step=axis.step)
        timed = axis.kind != "int"
        calendar = self.calendar if timed else None
        auto = is_auto(o.readahead)
        # Adaptive windows end on the grid (readable bounds); fixed ones as they always did.
        stepped = axis.step > 1 and extend and auto
        bounds = calendar.bounds(axis) if calendar is not None and extend else None
        return Policy(
            step=axis.step,
            max_span=to_units(o.max_span, axis, "max_span"),
            coalesce=to_units(o.coalesce, axis, "coalesce"),
            readahead=to_units(o.readahead, axis, "readahead") if extend and not auto else None,
            lookback=to_units(o.lookback, axis, "lookback") if extend else None,
            # Never read ahead into the future, nor past the live edge.
            edge=axis.grid_floor(clock_ns(o.clock()) - (self.settle or 0), req.lo)
            if timed
            else None,
            sessions=(lambda lo, hi: calendar.spans(axis, lo, hi)) if calendar else None,
            auto=auto_cap(o.max_readahead, axis) if extend and auto else None,
            first=bounds[0] if bounds is not None else None,
            last=bounds[1] if bounds is not None else None,
            floor=(lambda pos: axis.grid_floor(pos, req.lo)) if stepped else None,
            ceil=(lambda pos: axis.grid_ceil(pos)) if stepped else None,
        )

    def plan(self, req: Request, view: View | None, make: Callable[[Gap], Any], seen: int) -> Any:
        """Register new flights for the gaps; return ``(new, waits)``.

        ``None`` when a flight of the key landed after ``seen`` (the landing
        stamp taken before ``view`` was read): its range is in the store but
        may not be in ``view``, and no longer in flight, so the caller reads
        the entry again rather than fetch that range a second time.
        """
        ledger = view.ledger if view is not None else None
        now = self.now() if ledger is not None and ledger.provisional else 0.0
        policy = self.policy(req)
        with self.lock:
            if self.landings.since(req.key, seen):
                return None
            flights = self.inflight.setdefault(req.key, [])
            trail = self.readahead.trail(req.key) if policy.auto is not None else None
            plan = plan_gaps(req.lo, req.hi, ledger, flights, now, policy, trail)
            if plan.trail is not None:  # under the lock: concurrent plans step in turn
                self.readahead.keep(req.key, plan.trail)
            fitted = (fit(req.axis, req.rows_hi, g, view, flights) for g in plan.gaps)
            new = [make(g) for g in fitted if g is not None]
            flights.extend(new)
            if not flights:  # covered meanwhile (another thread): keep no empty list
                del self.inflight[req.key]
        partial = ledger is not None and ledger.overlaps(req.lo, req.hi)
        refetch = 0
        if ledger is not None and ledger.provisional:
            refetch = sum(
                1 for g in plan.gaps for p in ledger.provisional if p.lo < g.hi and g.lo < p.hi
            )
        self.stats.count(
            partial_hits=int(partial), misses=int(not partial), provisional_refetches=refetch
        )
        return new, plan.waits

    def used(self, req: Request) -> None:
        """Count the rows fetched ahead (by earlier calls) that this call's range holds."""
        self.readahead.used(req.key, req.lo, req.hi)

    def missing(self, req: Request, ledger: Ledger | None, claims: list[tuple[int, int]]) -> bool:
        """Is any of the call's range neither covered in ``ledger`` nor claimed by its flights?

        ``claims`` count even where they are only provisional (the live edge),
        which the call answers from without fetching it again.
        """
        # Claims first, in plain ints: the ledger is asked only of what they leave.
        left = _subtract(req.lo, req.hi, claims)
        if not left or ledger is None:
            return bool(left)
        now = self.now() if ledger.provisional else 0.0
        return not all(ledger.covers(a, b, now) for a, b in left)

    def missing_in(self, view: View | None, gap: Gap) -> tuple[tuple[int, int], ...]:
        """The part of ``gap`` that ``view`` does not cover (what it was planned for)."""
        if view is None:
            return ((gap.lo, gap.hi),)
        ledger = view.ledger
        return tuple(ledger.missing(gap.lo, gap.hi, self.now() if ledger.provisional else 0.0))

    def replan(
        self,
        req: Request,
        entry: Entry | None,
        gap: Gap,
        before: tuple[tuple[int, int], ...] | None = None,
    ) -> tuple[list[Gap], list[Part]]:
        """What of a planned gap is still missing once a shared store's lock is held.

        Also the parts of the gap another process covered meanwhile, with their
        rows as of now (the call answers with them, not with a later read).
        ``before``: what of the gap was missing when it was planned.
        """
        if entry is None:
            return [gap], []
        view = entry.view(gap.lo, gap.hi)
        if before is not None and self.missing_in(view, gap) == before:
            # Nothing of it was covered meanwhile: the gap stands as fitted
            # (fitting it again would move an off-grid end once more). Anything
            # covered since, even one unit (a neighbour's inclusive end on the
            # gap's first day), is planned again, or that day is fetched twice.
            return [gap], []
        policy = self.policy(req, False)
        planned: list[Gap] = plan_gaps(gap.lo, gap.hi, view.ledger, (), self.now(), policy).gaps
        fitted = (fit(req.axis, req.rows_hi, g, entry) for g in planned)
        gaps = [g for g in fitted if g is not None]
        if planned == [gap] or view.rows is None or view.adapter is None:
            return gaps, []
        done = _subtract(gap.lo, gap.hi, [(g.lo, g.hi) for g in planned])
        rows, adapter, template = view.rows, view.adapter, view.template
        return gaps, [Part(a, b, rows, adapter, template) for a, b in done]

    def land(self, req: Request, flight: Any) -> None:
        """A flight is over (committed or failed): stop sharing it."""
        with self.lock:
            flights = self.inflight.get(req.key)
            if flights is not None and flight in flights:
                self.landings.note(req.key)
                flights.remove(flight)
                if not flights:
                    del self.inflight[req.key]

    # -- one provider call -------------------------------------------------------
    def call_bounds(self, req: Request, gap: Gap) -> tuple[Any, Any]:
        """The ``(start, end)`` a provider call of ``gap`` is given, in the caller's form."""
        axis = req.axis
        if axis.closed == "both":  # the call's inclusive end, exactly as fitted
            start, end = axis.decode(gap.call_lo), axis.decode(gap.call_hi - 1)
        else:
            start, end = axis.decode(gap.call_lo), axis.decode(gap.call_hi)
        if req.strings:  # handed over in the caller's own form
            start, end = as_string(start), as_string(end)
        return start, end

    def gap_call(self, req: Request, gap: Gap) -> tuple[tuple[Any, ...], dict[str, Any]]:
        start, end = self.call_bounds(req, gap)
        log.debug("fetch %s key=%r [%s, %s]", self.namespace, req.key, start, end)
        self.stats.count(calls=1)
        return self.binder.with_range(req.bound, start, end)

    def digest(self, req: Request, gap: Gap, result: Any, entry: Entry | None) -> Fetched:
        """Validate a provider result and shape it into a commit of ``gap``."""
        if result is None or (
            (isinstance(result, _RESULTS) or is_polars(result)) and not len(result)
        ):
            return self._nothing(req, gap, result, entry)
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
            template = adapter.empty(result)
        return self._fetched(req, gap, chunk, template, adapter)

    def _nothing(self, req: Request, gap: Gap, result: Any, entry: Entry | None) -> Fetched:
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
        return self._fetched(req, gap, chunk, template, adapter)

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


def _subtract(lo: int, hi: int, claims: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The pieces of ``[lo, hi)`` that no claim holds, in order."""
    left, cursor = [], lo
    for a, b in sorted(claims):
        if b <= cursor:
            continue
        if a >= hi:
            break
        if a > cursor:
            left.append((cursor, a))
        cursor = b
        if cursor >= hi:
            return left
    if cursor < hi:
        left.append((cursor, hi))
    return left


def _kind_changed(kind: str, result: Any) -> RangememoError:
    return ResultTypeError(
        f"the wrapped function returned a {type(result).__qualname__} "
        f"where it returned a {kind} before"
    )
