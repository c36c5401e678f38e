"""``range_cached``: the decorator (the wrappers it returns live in ``_wrapper``)."""

from __future__ import annotations

import datetime as dt
import inspect
import os
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, Protocol, TypeVar, overload

from ._core.axis import Closed
from ._engine.binding import KeySpec
from ._engine.cache import Options, RangeCache, _utcnow
from ._errors import InvalidOption
from ._stores.base import Store
from ._stores.default import default_store
from ._wrapper import AsyncRangeCached, RangeCached

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
    readahead: Any = None,
    lookback: Any = None,
    coalesce: Any = None,
    max_span: Any = None,
    rate_limit: tuple[int, float] | None = None,
    calendar: Any = None,
) -> _Decorator:
    """Cache a range-queried function by the intervals it has already fetched.

    See docs/usage.md and docs/options.md for every option; in short: ``key``
    names what identifies a series, ``start``/``end`` the arguments carrying
    the range, ``step`` the axis resolution, ``store`` where entries live;
    ``settle``/``ttl``/``clock`` govern the live edge; ``readahead``,
    ``lookback``, ``coalesce``, ``max_span``, ``rate_limit`` and ``calendar``
    shape the provider calls.
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
        lookback=lookback,
        coalesce=coalesce,
        max_span=max_span,
        rate_limit=rate_limit,
        calendar=calendar,
    )

    def decorate(fn: Callable[..., Any]) -> Any:
        resolved = _resolve_store(store)
        cache = RangeCache(fn, options, resolved, default_store)
        kind = AsyncRangeCached if inspect.iscoroutinefunction(fn) else RangeCached
        return kind(fn, cache, resolved)

    return decorate
