"""``AsyncRangeCached``: what ``range_cached`` returns for an ``async def`` function.

The same wrapper as ``RangeCached`` (whose ``_Wrapper`` base, in ``_wrapper``,
holds what both share), with every method awaited.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Concatenate, Generic, Self, overload

from ._bound import BoundAsyncRangeCached, LooksAsync
from ._engine import control
from ._engine import refresh as refreshing
from ._engine.adrive import acall
from ._engine.flights import detach
from ._engine.introspect import coverage as coverage_of
from ._wrapper import _UNBOUND, P, Q, R, S, _Wrapper

if TYPE_CHECKING:
    from ._engine.audit import AuditReport

__all__ = ["AsyncRangeCached", "BoundAsyncRangeCached"]


class AsyncRangeCached(LooksAsync, _Wrapper, Generic[P, R]):
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
        detach(self.cache, key, lo, hi)

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
