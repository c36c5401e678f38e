"""``range_cached``: the decorator (the wrappers it returns live in ``_wrapper``)."""

from __future__ import annotations

import datetime as dt
import inspect
import os
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, Protocol, TypeVar, overload

from ._awrapper import AsyncRangeCached
from ._core.axis import Closed
from ._engine.binding import KeySpec
from ._engine.cache import RangeCache
from ._engine.options import Options, _utcnow
from ._errors import InvalidOption
from ._stores.base import Store
from ._stores.default import default_store
from ._wrapper import RangeCached

__all__ = ["AsyncRangeCached", "RangeCached", "default_store", "range_cached"]

P = ParamSpec("P")
R = TypeVar("R")


class _Decorator(Protocol):
    @overload
    def __call__(  # type: ignore[overload-overlap]
        self, fn: Callable[P, Coroutine[Any, Any, R]]
    ) -> AsyncRangeCached[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> RangeCached[P, R]: ...


def _resolve_store(store: Store | str | os.PathLike[str] | None) -> Store | None:
    """The store to use; ``None`` for the default, opened on first use (not at import)."""
    if store is None:
        return None
    if isinstance(store, Store):
        return store
    if isinstance(store, (str, os.PathLike)):
        from ._stores.parquet.store import ParquetStore

        # A directory, a file:// URL or s3://bucket/prefix (never a folder named "s3:").
        parquet: Store = ParquetStore(store)
        return parquet
    raise InvalidOption(f"store={store!r}: pass a Store instance or a directory path")


def range_cached(
    *,
    key: KeySpec = None,
    start: str = "start",
    end: str = "end",
    step: Any = None,
    closed: Closed = "both",
    index: str | None = None,
    store: Store | str | os.PathLike[str] | None = None,
    settle: Any = None,
    ttl: Any = None,
    max_concurrency: int = 4,
    namespace: str | None = None,
    version: int | str = 0,
    clock: Callable[[], dt.datetime] = _utcnow,
    readahead: Any = "auto",
    max_readahead: Any = None,
    lookback: Any = None,
    coalesce: Any = None,
    max_span: Any = None,
    rate_limit: tuple[int, float] | None = None,
    calendar: Any = None,
    batch: str | None = None,
    by: str | None = None,
    max_batch: int | None = None,
    stale_if_error: bool = False,
    coerce_bounds: bool = False,
) -> _Decorator:
    """Cache a range-queried function by the intervals it has already fetched.

    Works on ``def`` and ``async def`` functions and methods returning a pandas
    DataFrame or Series or a pyarrow Table. A call asks the wrapped function
    only for the parts of its range no earlier call covered (the gaps), and
    answers exactly as the uncached function would. The usage guide and the
    planning-options page have examples of each option.

    :param key: What identifies a series: an argument name, a sequence of
        names, or a callable of the bound arguments (as keywords) returning a
        hashable value. Default: every bound argument but the range and
        ``self``/``cls``.
    :param start: The name of the argument carrying the range's start.
    :param end: The name of the argument carrying the range's end.
    :param step: The axis resolution: a ``timedelta``/``pd.Timedelta``, an
        offset alias (``"1D"``, ``"1min"``), an ``int`` for integer axes, or a
        callable of the bound arguments returning one; ``None``: continuous.
    :param closed: ``"both"`` (``end`` inclusive) or ``"left"`` (exclusive).
    :param index: Where a row's position is: ``None`` for the index, or a
        column name.
    :param store: A store, or a directory path (a ``ParquetStore``); default:
        the process's default store.
    :param settle: The live edge: rows newer than ``now - settle`` are returned
        but recorded as provisional; ``False``: every row is final.
    :param ttl: How long provisional rows may be served before they are
        fetched again.
    :param max_concurrency: Gap fetches one call runs at once (tasks or threads).
    :param namespace: Where the function's entries live; default: its module
        and qualified name.
    :param version: Bump it to start again from empty; ``"auto"``: start
        afresh whenever the function's code changes.
    :param clock: Returns "now" as a ``datetime`` (naive: UTC); for tests.
    :param readahead: ``"auto"`` (default): when requests march forward (or
        backward) along a key, fetch ahead of them by a window that doubles
        while the march goes on; a span: extend a gap touching the request's
        end by that span; ``None``: never read ahead.
    :param max_readahead: The cap on ``readahead="auto"``'s window (a span or
        a count of steps); default: 1024 steps (off on an axis without a step).
    :param lookback: Extend a gap touching the request's start by this span.
    :param coalesce: Fetch gaps closer than this span as one call.
    :param max_span: Split a longer gap into calls of at most this span.
    :param rate_limit: ``(calls, seconds)``: at most ``calls`` provider calls
        start in any window of ``seconds``, across every caller.
    :param calendar: An ``exchange_calendars`` name (``"XNYS"``) or an object
        with ``sessions_in_range(start, end)``: a gap without a session is
        covered without a call.
    :param batch: The argument carrying a list of members (``"symbols"``):
        each member is its own series, and one provider call fetches a gap
        for every member missing it (see docs/batch.md).
    :param by: With ``batch``: the column, or the first level of a
        ``(member, time)`` MultiIndex, saying which member a row belongs to.
    :param max_batch: With ``batch``: at most this many members a provider
        call (``None``: no limit).
    :param stale_if_error: When refetching provisional (live-edge) rows fails,
        serve the stored ones with a ``CacheWarning`` instead of raising.
    :param coerce_bounds: Accept ISO-8601 strings as bounds on datetime and
        date axes, parsed in the axis's timezone; gaps reach the provider as
        strings too.
    :raises InvalidOption: At decoration, for a bad option, naming the value.
    :returns: A decorator; the wrapped function is a ``RangeCached`` (or
        ``AsyncRangeCached``) with ``prefetch``, ``coverage``, ``invalidate``,
        ``cache_info`` and ``cache_clear``.
    """
    options = Options(
        key=key,
        start=start,
        end=end,
        step=step,
        closed=closed,
        index=index,
        settle=settle,
        ttl=ttl,
        max_concurrency=max_concurrency,
        namespace=namespace,
        version=version,
        clock=clock,
        readahead=readahead,
        max_readahead=max_readahead,
        lookback=lookback,
        coalesce=coalesce,
        max_span=max_span,
        rate_limit=rate_limit,
        calendar=calendar,
        stale_if_error=stale_if_error,
        coerce_bounds=coerce_bounds,
    )

    if (batch is None) != (by is None):
        missing = "by=" if by is None else "batch="
        raise InvalidOption(
            f"batch={batch!r}, by={by!r}: a batched function needs both; pass {missing} "
            "(batch= names the argument holding the members, by= the column or index "
            "level saying which member a row is)"
        )
    if batch is None and max_batch is not None:
        raise InvalidOption(f"max_batch={max_batch!r} needs batch= and by=")

    def decorate(fn: Callable[..., Any]) -> Any:
        resolved = _resolve_store(store)
        cache = RangeCache(fn, options, resolved, default_store)
        is_async = inspect.iscoroutinefunction(fn)
        if batch is not None and by is not None:
            from ._batched import AsyncBatchRangeCached, BatchRangeCached, batched

            kind: type = AsyncBatchRangeCached if is_async else BatchRangeCached
            return batched(kind(fn, cache, resolved), batch, by, max_batch)
        kind = AsyncRangeCached if is_async else RangeCached
        return kind(fn, cache, resolved)

    return decorate
