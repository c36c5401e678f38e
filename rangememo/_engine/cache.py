"""RangeCache: one cached function — binds calls, plans, fetches gaps, assembles.

The async and sync paths share everything but the waiting: asyncio tasks and
futures for ``async def`` functions, threads and ``concurrent.futures`` for
plain ones (so a sync wrapper never needs, or touches, an event loop).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable
from typing import Any

from .._core.axis import Axis, axis_of
from .._core.entry import Entry, Part, View
from .._core.grid import fit
from .._core.ledger import Ledger
from .._core.planner import Gap, Policy, plan_gaps
from .._core.steps import span_ns
from .._errors import CacheWarning, InvalidOption
from .._stores.base import Store
from .._warn import remember_caller, warn
from .answers import Answers
from .binding import Binder
from .bounds import as_string, coerce_bounds
from .identity import default_namespace, describe, fingerprint
from .options import Landings, Options, Request
from .policy import RateLimit, SessionCalendar, clock_ns, to_units
from .readahead import Readahead, auto_cap
from .stats import Stats
from .validate import is_auto

__all__ = ["RangeCache"]

log = logging.getLogger("rangememo")


class RangeCache(Answers):
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
        return clock_ns(self.options.clock()) / 1e9  # a naive clock is UTC (not local time)

    # -- the hot path ----------------------------------------------------------
    def view(self, req: Request, entry: Entry | None) -> View | None:
        """The moment of ``entry`` this call answers from (``None``: nothing cached)."""
        if entry is None:
            return None
        if entry.axis != req.axis.signature:
            self.check_axis(req, entry)
        return entry.view(req.lo, req.hi)

    def check_axis(self, req: Request, entry: Entry) -> None:
        """:meth:`Entry.check_axis`, naming the caller's bounds."""
        args = req.bound.arguments
        bounds = (args.get(self.binder.start), args.get(self.binder.end))
        entry.check_axis(req.axis.signature, req.key, bounds)

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
