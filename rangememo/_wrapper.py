"""The objects ``range_cached`` returns: a class per kind, binding like a function.

``RangeCached`` wraps a plain function, ``AsyncRangeCached`` an ``async def``
one (chosen once, as joblib's ``MemorizedFunc``/``AsyncMemorizedFunc``). Both
are descriptors: through an instance they return a bound wrapper whose call
*and* whose ``prefetch``/``refresh``/``cached``/``coverage``/``invalidate``/``audit``
pass the instance along, so ``client.bars.prefetch("AAPL", s, e)`` binds ``"AAPL"``
to ``symbol``, not to ``self``. For type checkers they are generic over the wrapped
signature (``P``) and result (``R``); ``__get__`` drops the first parameter.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Coroutine, Hashable
from typing import (
    TYPE_CHECKING,
    Any,
    Concatenate,
    Generic,
    ParamSpec,
    Self,
    TypeVar,
    cast,
    overload,
)

from ._engine import control
from ._engine import refresh as refreshing
from ._engine.adrive import acall
from ._engine.cache import RangeCache
from ._engine.drive import call
from ._engine.introspect import coverage as coverage_of
from ._engine.introspect import forget_bounds, key_and_step
from ._engine.stats import CacheInfo
from ._pickling import reduce_wrapper
from ._stores.base import Store

if TYPE_CHECKING:
    # audit loads on first use: `import rangememo` stays near pandas' own import time.
    from ._engine.audit import AuditReport

__all__ = ["AsyncRangeCached", "BoundAsyncRangeCached", "BoundRangeCached", "RangeCached"]

P = ParamSpec("P")
Q = ParamSpec("Q")
R = TypeVar("R")
S = TypeVar("S")

_UNBOUND: Any = object()


class _Wrapper:
    """What both kinds share: the cache, introspection, pickling."""

    cache: RangeCache
    __wrapped__: Callable[..., Any]
    __qualname__: str

    def __init__(self, fn: Callable[..., Any], cache: RangeCache, store: Store | None) -> None:
        self.cache = cache
        self._store = store  # as configured (None: the default store), for pickling
        functools.update_wrapper(cast(Any, self), fn)

    def cache_info(self) -> CacheInfo:
        """Hits, misses, provider calls, rows fetched, ... of this function."""
        return self.cache.stats.info()

    def cache_clear(self) -> None:
        """Forget every entry of this function and reset its counters."""
        self.cache.store.clear(self.cache.namespace)
        self.cache.stats.reset()

    def __repr__(self) -> str:
        name = getattr(self, "__qualname__", None) or type(self.__wrapped__).__qualname__
        return f"<{type(self).__name__} {getattr(self, '__module__', '?')}.{name}>"

    def __reduce__(self) -> str | tuple[Any, ...]:
        return reduce_wrapper(self, self._store)

    # -- introspection, given the instance of a bound call (or _UNBOUND) -------
    def _key(
        self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Hashable, Any]:
        if instance is not _UNBOUND:
            args, kwargs, first = _with_instance(self.cache, instance, args, kwargs)
            return key_and_step(self.cache, args, kwargs, first)
        return key_and_step(self.cache, args, kwargs)

    def _audit_args(
        self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any], dict[str, Any] | None]:
        if instance is _UNBOUND:
            return args, kwargs, None
        return _with_instance(self.cache, instance, args, kwargs)

    def _forget(
        self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any], start: Any, end: Any
    ) -> tuple[Hashable, int | None, int | None]:
        key, step = self._key(instance, args, kwargs)
        # The key's rows bound how far past ``end`` coverage may go (see forget_bounds).
        entry = self.cache.store.get(self.cache.namespace, key) if end is not None else None
        lo, hi = forget_bounds(self.cache, start, end, step, entry)
        return key, lo, hi


def _with_instance(
    cache: RangeCache, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any], dict[str, Any] | None]:
    """Put a bound call's instance where the key binder expects it.

    The binder leaves ``self``/``cls`` out of the key signature (so the class
    attribute's ``coverage("AAPL")`` works without an instance); a key or step
    callable may still read it, so it is handed over by name. A first
    parameter with another name is an ordinary argument: it goes first.
    """
    params = list(cache.binder.signature.parameters)
    if params and params[0] not in cache.binder.key_signature.parameters:
        return args, kwargs, {params[0]: instance}
    return (instance, *args), kwargs, None


class RangeCached(_Wrapper, Generic[P, R]):
    """A plain function wrapped by :func:`range_cached` (never touches an event loop)."""

    __wrapped__: Callable[P, R]

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        how = control.mode()
        if how == "online":
            result: R = call(self.cache, args, kwargs)
        elif how == "offline":
            result = control.cached_call(self.cache, args, kwargs)
        else:
            result = self.__wrapped__(*args, **kwargs)
        return result

    @overload
    def prefetch(self, *args: P.args, **kwargs: P.kwargs) -> None: ...
    @overload
    def prefetch(self, *args: Any, progress: bool | None, **kwargs: Any) -> None: ...
    def prefetch(self, *args: Any, **kwargs: Any) -> None:
        """Make sure the call's range is covered; return nothing."""
        progress = kwargs.pop("progress", None)
        how = control.mode()
        if how == "online":
            call(self.cache, args, kwargs, answer=False, progress=progress)
        elif how == "offline":  # covered already, or NotCached
            control.cached_call(self.cache, args, kwargs)

    def refresh(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Fetch the call's whole range again, replace what is stored there, answer."""
        how = control.mode()
        if how == "offline":
            control.refused(self.cache, args, kwargs, "refresh() under offline()")
        if how == "disabled":
            return self.__wrapped__(*args, **kwargs)
        result: R = refreshing.refresh_call(self.cache, args, kwargs)
        return result

    def cached(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """The answer from the cache only; :class:`~rangememo.NotCached` if any part is missing."""
        if control.mode() == "disabled":
            control.refused(self.cache, args, kwargs, "cached() under disabled()")
        result: R = control.cached_call(self.cache, args, kwargs)
        return result

    def coverage(self, *args: Any, detail: bool = False, **kwargs: Any) -> list[Any]:
        """Covered intervals of the key these arguments name."""
        return self._read_coverage(_UNBOUND, args, kwargs, detail)

    def invalidate(self, *args: Any, start: Any = None, end: Any = None, **kwargs: Any) -> None:
        """Forget the key these arguments name, or its ``[start, end]`` part."""
        self._invalidate(_UNBOUND, args, kwargs, start, end)

    def _read_coverage(
        self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any], detail: bool
    ) -> list[Any]:
        key, step = self._key(instance, args, kwargs)
        return coverage_of(
            self.cache, self.cache.store.get(self.cache.namespace, key), step, detail
        )

    def _invalidate(
        self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any], start: Any, end: Any
    ) -> None:
        key, lo, hi = self._forget(instance, args, kwargs, start, end)
        self.cache.store.forget(self.cache.namespace, key, lo, hi)

    def audit(
        self,
        *args: Any,
        start: Any = None,
        end: Any = None,
        sample: float | int | str | None = None,
        seed: int = 0,
        span: Any = None,
        heal: bool = False,
        **kwargs: Any,
    ) -> AuditReport:
        """Refetch a sample of the key's covered ranges and compare with what is stored.

        ``sample``: a fraction in (0, 1] of the ranges, a count, or ``None``/``"all"``
        (every range); which ones is fixed by ``seed``. ``span``: the length of one
        range (default: ``max_span``, else 30 days; the whole piece for int bounds).
        ``heal=True`` commits the fresh rows of every revised range. See docs/audit.md.
        """
        opts = dict(start=start, end=end, sample=sample, seed=seed, span=span, heal=heal)
        return self._audit(_UNBOUND, args, kwargs, opts)

    def _audit(
        self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any], opts: dict[str, Any]
    ) -> AuditReport:
        from ._engine.audit import run

        return run(self.cache, *self._audit_args(instance, args, kwargs), opts)

    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None) -> Self: ...
    @overload
    def __get__(
        self: RangeCached[Concatenate[S, Q], R], instance: S, owner: type[Any] | None = None
    ) -> BoundRangeCached[Q, R]: ...
    def __get__(self, instance: Any, owner: type[Any] | None = None) -> Any:
        if instance is None:
            return self
        return BoundRangeCached(self, instance)


class _AsyncioMark:
    """asyncio's coroutine-function mark, looked up when asked for.

    Only asyncio asks (so it is loaded by then): importing it here would load
    asyncio with rangememo even for a program that never runs an event loop.
    """

    def __get__(self, obj: object, owner: type | None = None) -> Any:
        import asyncio.coroutines

        mark = getattr(asyncio.coroutines, "_is_coroutine", None)
        if mark is None:  # Python 3.12+: asyncio reads inspect's flag instead
            raise AttributeError("_is_coroutine")
        return mark


class _LooksAsync:
    """``inspect``/``asyncio.iscoroutinefunction`` say True, as for the wrapped function.

    inspect accepts a callable that looks like a function (Cython's duck type)
    and reads ``CO_COROUTINE`` off its ``__code__``; that works from 3.11 on,
    where ``inspect.markcoroutinefunction`` does not exist yet.
    """

    __slots__ = ()
    __wrapped__: Callable[..., Any]
    _is_coroutine = _AsyncioMark()  # asyncio.iscoroutinefunction on 3.11

    @property
    def __code__(self) -> types.CodeType | None:
        return getattr(self.__wrapped__, "__code__", None)

    @property
    def __defaults__(self) -> tuple[Any, ...] | None:
        return getattr(self.__wrapped__, "__defaults__", None)

    @property
    def __kwdefaults__(self) -> dict[str, Any] | None:
        return getattr(self.__wrapped__, "__kwdefaults__", None)


class AsyncRangeCached(_LooksAsync, _Wrapper, Generic[P, R]):
    """An ``async def`` function wrapped by :func:`range_cached`."""

    __wrapped__: Callable[P, Coroutine[Any, Any, R]]

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        how = control.mode()
        if how == "online":
            result: R = await acall(self.cache, args, kwargs)
        elif how == "offline":
            result = await control.acached_call(self.cache, args, kwargs)
        else:
            result = await self.__wrapped__(*args, **kwargs)
        return result

    @overload
    async def prefetch(self, *args: P.args, **kwargs: P.kwargs) -> None: ...
    @overload
    async def prefetch(self, *args: Any, progress: bool | None, **kwargs: Any) -> None: ...
    async def prefetch(self, *args: Any, **kwargs: Any) -> None:
        """Make sure the call's range is covered; return nothing."""
        progress = kwargs.pop("progress", None)
        how = control.mode()
        if how == "online":
            await acall(self.cache, args, kwargs, answer=False, progress=progress)
        elif how == "offline":  # covered already, or NotCached
            await control.acached_call(self.cache, args, kwargs)

    async def refresh(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Fetch the call's whole range again, replace what is stored there, answer."""
        how = control.mode()
        if how == "offline":
            control.refused(self.cache, args, kwargs, "refresh() under offline()")
        if how == "disabled":
            return await self.__wrapped__(*args, **kwargs)
        result: R = await refreshing.arefresh_call(self.cache, args, kwargs)
        return result

    async def cached(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """The answer from the cache only; :class:`~rangememo.NotCached` if any part is missing."""
        if control.mode() == "disabled":
            control.refused(self.cache, args, kwargs, "cached() under disabled()")
        result: R = await control.acached_call(self.cache, args, kwargs)
        return result

    async def coverage(self, *args: Any, detail: bool = False, **kwargs: Any) -> list[Any]:
        """Covered intervals of the key these arguments name."""
        return await self._read_coverage(_UNBOUND, args, kwargs, detail)

    async def invalidate(
        self, *args: Any, start: Any = None, end: Any = None, **kwargs: Any
    ) -> None:
        """Forget the key these arguments name, or its ``[start, end]`` part."""
        await self._invalidate(_UNBOUND, args, kwargs, start, end)

    async def _read_coverage(
        self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any], detail: bool
    ) -> list[Any]:
        key, step = self._key(instance, args, kwargs)
        entry = await self.cache.store.aget(self.cache.namespace, key)
        return coverage_of(self.cache, entry, step, detail)

    async def _invalidate(
        self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any], start: Any, end: Any
    ) -> None:
        key, lo, hi = self._forget(instance, args, kwargs, start, end)
        await self.cache.store.aforget(self.cache.namespace, key, lo, hi)

    async def audit(
        self,
        *args: Any,
        start: Any = None,
        end: Any = None,
        sample: float | int | str | None = None,
        seed: int = 0,
        span: Any = None,
        heal: bool = False,
        **kwargs: Any,
    ) -> AuditReport:
        """Refetch a sample of the key's covered ranges and compare with what is stored.

        As :meth:`RangeCached.audit`, awaited.
        """
        opts = dict(start=start, end=end, sample=sample, seed=seed, span=span, heal=heal)
        return await self._audit(_UNBOUND, args, kwargs, opts)

    async def _audit(
        self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any], opts: dict[str, Any]
    ) -> AuditReport:
        from ._engine.audit import arun

        return await arun(self.cache, *self._audit_args(instance, args, kwargs), opts)

    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None) -> Self: ...
    @overload
    def __get__(
        self: AsyncRangeCached[Concatenate[S, Q], R], instance: S, owner: type[Any] | None = None
    ) -> BoundAsyncRangeCached[Q, R]: ...
    def __get__(self, instance: Any, owner: type[Any] | None = None) -> Any:
        if instance is None:
            return self
        return BoundAsyncRangeCached(self, instance)


class _Bound:
    """A wrapper bound to an instance, as a bound method is to its function."""

    __slots__ = ("__func__", "__self__")
    __func__: Any

    def __init__(self, wrapper: Any, instance: Any) -> None:
        self.__func__ = wrapper
        self.__self__ = instance

    @property
    def __wrapped__(self) -> Callable[..., Any]:
        # A bound method of the wrapped function: inspect.signature drops self.
        return types.MethodType(self.__func__.__wrapped__, self.__self__)

    def __getattr__(self, name: str) -> Any:
        # __name__, __doc__, cache, cache_info, ...: the wrapper's, as a bound
        # method forwards to its function.
        return getattr(self.__func__, name)

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and other.__func__ is self.__func__
            and other.__self__ is self.__self__
        )

    def __hash__(self) -> int:
        return hash((id(self.__func__), id(self.__self__)))

    def __repr__(self) -> str:
        return f"<bound {self.__func__!r} of {self.__self__!r}>"

    def __reduce__(self) -> tuple[Any, ...]:
        # As a bound method pickles: the instance, and the attribute to look up.
        return getattr, (self.__self__, self.__func__.__name__)

    def cache_info(self) -> CacheInfo:
        """The wrapped method's counters (shared by every instance)."""
        info: CacheInfo = self.__func__.cache_info()
        return info

    def cache_clear(self) -> None:
        """Forget every entry of the method (for every instance)."""
        self.__func__.cache_clear()


class BoundRangeCached(_Bound, Generic[P, R]):
    """``instance.method`` of a plain method wrapped by :func:`range_cached`."""

    __slots__ = ()

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        result: R = self.__func__(self.__self__, *args, **kwargs)
        return result

    @overload
    def prefetch(self, *args: P.args, **kwargs: P.kwargs) -> None: ...
    @overload
    def prefetch(self, *args: Any, progress: bool | None, **kwargs: Any) -> None: ...
    def prefetch(self, *args: Any, **kwargs: Any) -> None:
        """Make sure the call's range is covered; return nothing."""
        self.__func__.prefetch(self.__self__, *args, **kwargs)

    def refresh(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Fetch the call's whole range again, replace what is stored there, answer."""
        result: R = self.__func__.refresh(self.__self__, *args, **kwargs)
        return result

    def cached(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """The answer from the cache only; :class:`~rangememo.NotCached` if any part is missing."""
        result: R = self.__func__.cached(self.__self__, *args, **kwargs)
        return result

    def coverage(self, *args: Any, detail: bool = False, **kwargs: Any) -> list[Any]:
        """Covered intervals of the key these arguments (and the instance) name."""
        covered: list[Any] = self.__func__._read_coverage(self.__self__, args, kwargs, detail)
        return covered

    def invalidate(self, *args: Any, start: Any = None, end: Any = None, **kwargs: Any) -> None:
        """Forget the key these arguments (and the instance) name, or a part of it."""
        self.__func__._invalidate(self.__self__, args, kwargs, start, end)

    def audit(
        self,
        *args: Any,
        start: Any = None,
        end: Any = None,
        sample: float | int | str | None = None,
        seed: int = 0,
        span: Any = None,
        heal: bool = False,
        **kwargs: Any,
    ) -> AuditReport:
        """Audit the key these arguments (and the instance) name: see :meth:`RangeCached.audit`."""
        opts = dict(start=start, end=end, sample=sample, seed=seed, span=span, heal=heal)
        report: AuditReport = self.__func__._audit(self.__self__, args, kwargs, opts)
        return report


class BoundAsyncRangeCached(_LooksAsync, _Bound, Generic[P, R]):
    """``instance.method`` of an ``async def`` method wrapped by :func:`range_cached`."""

    __slots__ = ()

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        result: R = await self.__func__(self.__self__, *args, **kwargs)
        return result

    @overload
    async def prefetch(self, *args: P.args, **kwargs: P.kwargs) -> None: ...
    @overload
    async def prefetch(self, *args: Any, progress: bool | None, **kwargs: Any) -> None: ...
    async def prefetch(self, *args: Any, **kwargs: Any) -> None:
        """Make sure the call's range is covered; return nothing."""
        await self.__func__.prefetch(self.__self__, *args, **kwargs)

    async def refresh(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Fetch the call's whole range again, replace what is stored there, answer."""
        result: R = await self.__func__.refresh(self.__self__, *args, **kwargs)
        return result

    async def cached(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """The answer from the cache only; :class:`~rangememo.NotCached` if any part is missing."""
        result: R = await self.__func__.cached(self.__self__, *args, **kwargs)
        return result

    async def coverage(self, *args: Any, detail: bool = False, **kwargs: Any) -> list[Any]:
        """Covered intervals of the key these arguments (and the instance) name."""
        covered: list[Any] = await self.__func__._read_coverage(self.__self__, args, kwargs, detail)
        return covered

    async def invalidate(
        self, *args: Any, start: Any = None, end: Any = None, **kwargs: Any
    ) -> None:
        """Forget the key these arguments (and the instance) name, or a part of it."""
        await self.__func__._invalidate(self.__self__, args, kwargs, start, end)

    async def audit(
        self,
        *args: Any,
        start: Any = None,
        end: Any = None,
        sample: float | int | str | None = None,
        seed: int = 0,
        span: Any = None,
        heal: bool = False,
        **kwargs: Any,
    ) -> AuditReport:
        """Audit the key these arguments (and the instance) name: see :meth:`RangeCached.audit`."""
        opts = dict(start=start, end=end, sample=sample, seed=seed, span=span, heal=heal)
        report: AuditReport = await self.__func__._audit(self.__self__, args, kwargs, opts)
        return report
