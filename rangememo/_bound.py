"""Wrappers bound to an instance (``client.bars``), and the async look of wrappers.

A bound wrapper is to a ``range_cached`` wrapper what a bound method is to its
function: its call and its ``prefetch``/``refresh``/``cached``/``coverage``/
``invalidate``/``audit`` pass the instance along as the first argument. The
classes are generic over the signature left once the instance is bound.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from ._engine.stats import CacheInfo

if TYPE_CHECKING:
    from ._engine.audit import AuditReport

__all__ = ["BoundAsyncRangeCached", "BoundRangeCached", "LooksAsync"]

P = ParamSpec("P")
R = TypeVar("R")


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


class LooksAsync:
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


class BoundAsyncRangeCached(LooksAsync, _Bound, Generic[P, R]):
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
