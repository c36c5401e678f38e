"""The wrappers of batched functions (``range_cached(batch=..., by=...)``).

They are the ordinary wrappers with another call: ``coverage``,
``invalidate``, ``cache_info`` and binding through an instance are inherited,
and work per member (``get_bars.coverage("AAPL")`` names one member's series,
as an unbatched ``get_bar("AAPL")`` would).
"""

from __future__ import annotations

import inspect
from typing import Any, ParamSpec, TypeVar

from ._awrapper import AsyncRangeCached
from ._engine import batch_control as bc
from ._engine import control
from ._engine.batch import Batcher
from ._engine.batch_drive import arun, run
from ._pickling import reduce_wrapper
from ._wrapper import RangeCached

__all__ = ["AsyncBatchRangeCached", "BatchRangeCached", "batched"]

P = ParamSpec("P")
R = TypeVar("R")


class BatchRangeCached(RangeCached[P, R]):
    """A plain function taking many members a call (see ``range_cached(batch=)``)."""

    batcher: Batcher

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        how = control.mode()
        if how == "online":
            result: R = run(self.batcher, args, kwargs)
        elif how == "offline":
            result = bc.cached(self.batcher, args, kwargs)
        else:
            result = self.__wrapped__(*args, **kwargs)
        return result

    def prefetch(self, *args: Any, **kwargs: Any) -> None:
        """Make sure every member's range is covered; return nothing."""
        kwargs.pop("progress", None)  # no bar: its members are fetched together
        how = control.mode()
        if how == "online":
            run(self.batcher, args, kwargs, answer=False)
        elif how == "offline":  # covered already, or NotCached
            bc.cached(self.batcher, args, kwargs, answer=False)

    def refresh(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Fetch every member's whole range again (shared calls), replace, answer."""
        how = control.mode()
        if how == "offline":
            raise bc.refused(self.batcher, "refresh() under offline()")
        if how == "disabled":
            return self.__wrapped__(*args, **kwargs)
        result: R = bc.refresh(self.batcher, args, kwargs)
        return result

    def cached(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Every member's answer from the cache only, or one ``NotCached``."""
        if control.mode() == "disabled":
            raise bc.refused(self.batcher, "cached() under disabled()")
        result: R = bc.cached(self.batcher, args, kwargs)
        return result

    def __reduce__(self) -> str | tuple[Any, ...]:
        return _reduce(self)


class AsyncBatchRangeCached(AsyncRangeCached[P, R]):
    """An ``async def`` function taking many members a call."""

    batcher: Batcher

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        how = control.mode()
        if how == "online":
            result: R = await arun(self.batcher, args, kwargs)
        elif how == "offline":
            result = await bc.acached(self.batcher, args, kwargs)
        else:
            result = await self.__wrapped__(*args, **kwargs)
        return result

    async def prefetch(self, *args: Any, **kwargs: Any) -> None:
        """Make sure every member's range is covered; return nothing."""
        kwargs.pop("progress", None)
        how = control.mode()
        if how == "online":
            await arun(self.batcher, args, kwargs, answer=False)
        elif how == "offline":
            await bc.acached(self.batcher, args, kwargs, answer=False)

    async def refresh(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Fetch every member's whole range again (shared calls), replace, answer."""
        how = control.mode()
        if how == "offline":
            raise bc.refused(self.batcher, "refresh() under offline()")
        if how == "disabled":
            return await self.__wrapped__(*args, **kwargs)
        result: R = await bc.arefresh(self.batcher, args, kwargs)
        return result

    async def cached(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Every member's answer from the cache only, or one ``NotCached``."""
        if control.mode() == "disabled":
            raise bc.refused(self.batcher, "cached() under disabled()")
        result: R = await bc.acached(self.batcher, args, kwargs)
        return result

    def __reduce__(self) -> str | tuple[Any, ...]:
        return _reduce(self)


def batched(wrapper: Any, batch: str, by: str, max_batch: int | None) -> Any:
    """Give a freshly built wrapper its batcher (it takes over the cache's provider)."""
    is_async = inspect.iscoroutinefunction(wrapper.__wrapped__)
    wrapper.batcher = Batcher(wrapper.cache, batch, by, max_batch, is_async)
    wrapper._batch_options = (batch, by, max_batch)
    return wrapper


def _reduce(wrapper: Any) -> str | tuple[Any, ...]:
    reduced = reduce_wrapper(wrapper, wrapper._store)
    if isinstance(reduced, str):
        return reduced  # by reference: the worker imports the batched wrapper itself
    rebuild, state = reduced
    return _rebuild_batched, (rebuild, state, wrapper._batch_options)


def _rebuild_batched(rebuild: Any, state: tuple[Any, ...], options: tuple[Any, ...]) -> Any:
    wrapper = rebuild(*state)
    if "batcher" not in wrapper.__dict__:  # the first copy in this process
        batched(wrapper, *options)
    return wrapper
