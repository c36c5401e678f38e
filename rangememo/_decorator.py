"""``range_cached``: the decorator, and the introspection it attaches."""

from __future__ import annotations

import datetime as dt
import functools
import inspect
import os
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, Generic, ParamSpec, Protocol, TypeVar, overload

from ._axis import Closed
from ._binding import KeySpec
from ._cache import Options, RangeCache, _utcnow
from ._errors import InvalidOption
from ._introspect import coverage as coverage_of
from ._introspect import forget_bounds, key_and_step
from ._run import acall, call
from ._stats import CacheInfo
from ._store import Store, default_store

__all__ = ["AsyncRangeCached", "RangeCached", "default_store", "range_cached"]

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co")


class RangeCached(Protocol, Generic[P, R_co]):
    """A plain function wrapped by :func:`range_cached`."""

    __wrapped__: Callable[P, R_co]

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...
    def cache_info(self) -> CacheInfo: ...
    def cache_clear(self) -> None: ...
    def coverage(self, *args: Any, detail: bool = False, **kwargs: Any) -> list[Any]: ...
    def prefetch(self, *args: Any, progress: bool | None = None, **kwargs: Any) -> None: ...
    def invalidate(self, *args: Any, start: Any = None, end: Any = None, **kwargs: Any) -> None: ...


class AsyncRangeCached(Protocol, Generic[P, R_co]):
    """An ``async def`` function wrapped by :func:`range_cached`."""

    __wrapped__: Callable[P, Awaitable[R_co]]

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R_co]: ...
    def cache_info(self) -> CacheInfo: ...
    def cache_clear(self) -> None: ...
    async def coverage(self, *args: Any, detail: bool = False, **kwargs: Any) -> list[Any]: ...
    async def prefetch(self, *args: Any, progress: bool | None = None, **kwargs: Any) -> None: ...
    async def invalidate(
        self, *args: Any, start: Any = None, end: Any = None, **kwargs: Any
    ) -> None: ...


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
        from ._parquet import ParquetStore, url_scheme

        if url_scheme(store) is not None:  # never a local folder named "s3:"
            raise InvalidOption(
                f"store={store!r} is a URL, and rangememo stores only in local directories "
                "for now; pass a directory path or a Store instance"
            )
        parquet: Store = ParquetStore(Path(store).expanduser())
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
        cache = RangeCache(fn, options, _resolve_store(store))
        if inspect.iscoroutinefunction(fn):
            wrapper = _async_wrapper(fn, cache)
        else:
            wrapper = _sync_wrapper(fn, cache)
        wrapper.cache_info = cache.stats.info
        wrapper.cache_clear = functools.partial(_clear, cache)
        wrapper.cache = cache
        return wrapper

    return decorate


def _clear(cache: RangeCache) -> None:
    cache.store.clear(cache.namespace)
    cache.stats.reset()


def _async_wrapper(fn: Callable[..., Any], cache: RangeCache) -> Any:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        return await acall(cache, args, kwargs)

    async def prefetch(*args: Any, progress: bool | None = None, **kwargs: Any) -> None:
        await acall(cache, args, kwargs, answer=False, progress=progress)

    async def coverage(*args: Any, detail: bool = False, **kwargs: Any) -> list[Any]:
        key, step = key_and_step(cache, args, kwargs)
        return coverage_of(cache, await cache.store.aget(cache.namespace, key), step, detail)

    async def invalidate(*args: Any, start: Any = None, end: Any = None, **kwargs: Any) -> None:
        key, step = key_and_step(cache, args, kwargs)
        entry = await cache.store.aget(cache.namespace, key) if end is not None else None
        lo, hi = forget_bounds(cache, start, end, step, entry)
        await cache.store.aforget(cache.namespace, key, lo, hi)

    wrapper.prefetch = prefetch  # type: ignore[attr-defined]
    wrapper.coverage = coverage  # type: ignore[attr-defined]
    wrapper.invalidate = invalidate  # type: ignore[attr-defined]
    return wrapper


def _sync_wrapper(fn: Callable[..., Any], cache: RangeCache) -> Any:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return call(cache, args, kwargs)

    def prefetch(*args: Any, progress: bool | None = None, **kwargs: Any) -> None:
        call(cache, args, kwargs, answer=False, progress=progress)

    def coverage(*args: Any, detail: bool = False, **kwargs: Any) -> list[Any]:
        key, step = key_and_step(cache, args, kwargs)
        return coverage_of(cache, cache.store.get(cache.namespace, key), step, detail)

    def invalidate(*args: Any, start: Any = None, end: Any = None, **kwargs: Any) -> None:
        key, step = key_and_step(cache, args, kwargs)
        entry = cache.store.get(cache.namespace, key) if end is not None else None
        lo, hi = forget_bounds(cache, start, end, step, entry)
        cache.store.forget(cache.namespace, key, lo, hi)

    wrapper.prefetch = prefetch  # type: ignore[attr-defined]
    wrapper.coverage = coverage  # type: ignore[attr-defined]
    wrapper.invalidate = invalidate  # type: ignore[attr-defined]
    return wrapper
