"""The wrappers of batched functions (``range_cached(batch=..., by=...)``).

They are the ordinary wrappers with another call: ``coverage``,
``invalidate``, ``cache_info`` and binding through an instance are inherited,
and work per member (``get_bars.coverage("AAPL")`` names one member's series,
as an unbatched ``get_bar("AAPL")`` would).
"""

from __future__ import annotations

import inspect
from typing import Any, ParamSpec, TypeVar

from ._engine.batch import Batcher
from ._engine.batch_drive import arun, run
from ._pickling import reduce_wrapper
from ._wrapper import AsyncRangeCached, RangeCached

__all__ = ["AsyncBatchRangeCached", "BatchRangeCached", "batched"]

P = ParamSpec("P")
R = TypeVar("R")


class BatchRangeCached(RangeCached[P, R]):
    """A plain function taking many members a call (see ``range_cached(batch=)``)."""

    batcher: Batcher

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        result: R = run(self.batcher, args, kwargs)
        return result

    def prefetch(self, *args: Any, **kwargs: Any) -> None:
        """Make sure every member's range is covered; return nothing."""
        kwargs.pop("progress", None)  # no bar: its members are fetched together
        run(self.batcher, args, kwargs, answer=False)

    def __reduce__(self) -> str | tuple[Any, ...]:
        return _reduce(self)


class AsyncBatchRangeCached(AsyncRangeCached[P, R]):
    """An ``async def`` function taking many members a call."""

    batcher: Batcher

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        result: R = await arun(self.batcher, args, kwargs)
        return result

    async def prefetch(self, *args: Any, **kwargs: Any) -> None:
        """Make sure every member's range is covered; return nothing."""
        kwargs.pop("progress", None)
        await arun(self.batcher, args, kwargs, answer=False)

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
