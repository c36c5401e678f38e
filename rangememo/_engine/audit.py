"""``audit``: refetch a sample of a key's covered ranges and compare with what is stored.

Providers revise the past (corrections, late prints, split adjustments); a
cache never asks again for a range it holds, so it keeps the old rows. An
audit asks again for some of them, reports what differs and, with
``heal=True``, commits the fresh rows over the stored ones (a normal commit,
under the key's lock, newest rows winning).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import numbers
import random
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from .._core.audit import AuditReport, Diff, diff_answers, summarize
from .._core.axis import Axis
from .._core.entry import Entry, Fetched, Part
from .._core.steps import parse_step
from .._errors import InvalidOption, SchemaMismatchError
from . import control
from .cache import RangeCache
from .flights import detach
from .introspect import _shown, bound_key, forget_bounds
from .options import Request
from .policy import to_units
from .refresh import afetch_whole, fetch_whole

__all__ = ["AuditReport", "arun", "run"]

log = logging.getLogger("rangememo")

#: A time axis with no ``max_span`` is audited in ranges of this length.
DEFAULT_SPAN = dt.timedelta(days=30)


@dataclass(slots=True)
class Job:
    """One range to refetch: its request, what is stored, and what came back."""

    req: Request
    shown: tuple[Any, Any]
    stored: Any
    fetched: list[Fetched] = field(default_factory=list)
    diff: Diff | None = None


def _axis(cache: RangeCache, entry: Entry, step: Any) -> Axis:
    assert entry.axis is not None
    kind, aware = entry.axis
    return Axis(
        kind, aware, dt.UTC if aware else None, parse_step(step, kind), cache.options.closed, True
    )


def _zone(entry: Entry) -> str | None:
    """The timezone the stored rows are indexed in, to ask the provider in.

    The caller's zone is not stored, but the rows' is the best witness of it:
    a provider may lay its bars out in the wall-clock time of the bounds, so
    asking in UTC could return other rows than the cached call received.
    """
    if entry.axis is None or not entry.axis[1] or entry.adapter is None:
        return None
    if entry.template is None:
        return None
    return entry.adapter.position_tz(entry.template)


def _pieces(cache: RangeCache, axis: Axis, lo: int, hi: int, span: Any) -> list[tuple[int, int]]:
    """``[lo, hi)`` cut in ranges of ``span`` (the function's max_span, else 30 days)."""
    if span is None:
        span = cache.options.max_span
    if span is None and axis.kind != "int":
        span = DEFAULT_SPAN
    width = to_units(span, axis, "span") if span is not None else None
    if width is None:
        return [(lo, hi)]
    width = max(axis.step, width - width % axis.step)  # whole bars, so pieces meet on the grid
    return [(a, min(a + width, hi)) for a in range(lo, hi, width)]


def _sample(n: int, sample: Any, seed: Any) -> list[int]:
    if sample is None or sample == "all":
        return list(range(n))
    if isinstance(sample, bool) or not isinstance(sample, numbers.Real):
        raise InvalidOption(
            f"sample={sample!r}: pass a fraction in (0, 1], a count of ranges, or 'all'"
        )
    if not isinstance(sample, numbers.Integral):
        fraction = float(sample)
        if not 0 < fraction <= 1:
            raise InvalidOption(f"sample={sample!r}: a fraction must be in (0, 1]")
        k = math.ceil(fraction * n)
    else:
        k = int(sample)
        if k < 1:
            raise InvalidOption(f"sample={sample!r}: a count must be at least 1")
    return sorted(random.Random(seed).sample(range(n), min(k, n)))


def plan_audit(
    cache: RangeCache,
    arguments: dict[str, Any],
    key: Hashable,
    step: Any,
    entry: Entry | None,
    start: Any,
    end: Any,
    sample: Any,
    seed: Any,
    span: Any,
) -> tuple[int, list[Job]]:
    """The covered ranges of the key, and the sampled ones as jobs (nothing fetched yet).

    Final coverage only, including ranges that were fetched empty (a late
    print can fill them); the live edge's provisional rows are left out, as
    they are refetched on expiry anyway.
    """
    if control.mode() != "online":
        raise InvalidOption(
            f"{cache.name}: audit() calls the provider; not under offline()/disabled()"
        )
    if entry is None or entry.axis is None or entry.rows is None:
        return 0, []
    axis = _axis(cache, entry, step)
    lo, hi = forget_bounds(cache, start, end, step, entry, key)
    a = lo if lo is not None else -(2**63)
    b = hi if hi is not None else 2**63 - 1
    pieces: list[tuple[int, int]] = []
    for x, y in entry.ledger.intervals():
        x, y = max(x, a), min(y, b)
        if x < y:
            pieces += _pieces(cache, axis, x, y, span)
    jobs = []
    zone = _zone(entry)
    for i in _sample(len(pieces), sample, seed):
        shown = _shown(axis, *pieces[i])
        if zone is not None:
            shown = (shown[0].tz_convert(zone), shown[1].tz_convert(zone))
        req = cache.request(
            (), {**arguments, cache.binder.start: shown[0], cache.binder.end: shown[1]}
        )
        jobs.append(Job(req, shown, entry.read(req.lo, req.rows_hi, req.tz)))
    return len(pieces), jobs


def compare(cache: RangeCache, job: Job, entry: Entry) -> None:
    """The fresh answer of a job, assembled as a cached call would, against the stored one.

    In the key's layout (``entry``'s template), as the stored rows are read: a
    provider that now answers a ``datetime64[us]`` column where the key holds
    ``[ns]`` has not revised a value.
    """
    parts = [Part.fetched(f.lo, f.hi, _as_stored(entry, f)) for f in job.fetched]
    fresh = cache.assemble(job.req, None, parts, entry)
    job.diff = diff_answers(job.stored, fresh, cache.options.index)
    if job.diff.differs:
        log.info(
            "audit %s key=%r: %s revised (%s)", cache.namespace, job.req.key, job.shown, job.diff
        )


def _as_stored(entry: Entry, fetched: Fetched) -> Fetched:
    """The piece as a commit would store it: a unit change alone (pandas 3 parses
    datetimes at varying units) cast back to the key's, so healing could not
    undo the "revision" and the audit would report it for ever. A real schema
    conflict is left as it came: that is a difference to report."""
    if not len(fetched.chunk) or entry.template is None or entry.adapter is not fetched.adapter:
        return fetched
    try:
        data, template, _ = entry.adapter.conform(fetched.chunk.data, entry.template)
    except SchemaMismatchError:
        return fetched
    if data is fetched.chunk.data:
        return fetched
    return fetched.replace(chunk=fetched.chunk.replace(data=data), template=template)


def finish_audit(
    cache: RangeCache, key: Hashable, total: int, jobs: list[Job], heal: bool
) -> AuditReport:
    checked = [(j.shown, j.diff) for j in jobs if j.diff is not None]
    return summarize(cache.namespace, key, total, checked, heal)


# -- running it: the sync and async paths differ only in the waiting -------------


def run(
    cache: RangeCache,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    first: dict[str, Any] | None,
    options: dict[str, Any],
) -> AuditReport:
    """Audit the key these arguments name (``options``: start, end, sample, seed, span, heal)."""
    arguments, key, step = bound_key(cache, args, kwargs, first)
    store, ns = cache.store, cache.namespace
    entry = store.get(ns, key)
    total, jobs = plan_audit(cache, arguments, key, step, entry, *_opts(options))
    for job in jobs:
        assert entry is not None
        job.fetched += fetch_whole(cache, job.req, entry)
        compare(cache, job, entry)
    revised = [f for j in jobs if j.diff is not None and j.diff.differs for f in j.fetched]
    if options["heal"] and revised:
        with store.lock(ns, key):
            for f in revised:
                f.replaces = True  # over any fetch still in flight (MemoryStore)
                try:
                    store.put(ns, key, f)
                except OSError as exc:
                    cache.commit_failed(exc, jobs[0].req)
        with cache.lock:
            cache.landings.note(key)  # planners that read before us read again
        detach(cache, key, min(f.lo for f in revised), max(f.hi for f in revised))
    return finish_audit(cache, key, total, jobs, options["heal"])


async def arun(
    cache: RangeCache,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    first: dict[str, Any] | None,
    options: dict[str, Any],
) -> AuditReport:
    """:func:`run` for an ``async def`` function."""
    arguments, key, step = bound_key(cache, args, kwargs, first)
    store, ns = cache.store, cache.namespace
    entry = await store.aget(ns, key)
    total, jobs = plan_audit(cache, arguments, key, step, entry, *_opts(options))
    for job in jobs:
        assert entry is not None
        job.fetched += await afetch_whole(cache, job.req, entry)
        compare(cache, job, entry)
    revised = [f for j in jobs if j.diff is not None and j.diff.differs for f in j.fetched]
    if options["heal"] and revised:
        async with store.alock(ns, key):
            for f in revised:
                f.replaces = True
                try:
                    await store.aput(ns, key, f)
                except OSError as exc:
                    cache.commit_failed(exc, jobs[0].req)
        with cache.lock:
            cache.landings.note(key)
        detach(cache, key, min(f.lo for f in revised), max(f.hi for f in revised))
    return finish_audit(cache, key, total, jobs, options["heal"])


def _opts(options: dict[str, Any]) -> tuple[Any, ...]:
    return (options["start"], options["end"], options["sample"], options["seed"], options["span"])
