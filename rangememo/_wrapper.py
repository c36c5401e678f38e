"""The objects ``range_cached`` returns: a class per kind, binding like a function.

``RangeCached`` wraps a plain function, ``AsyncRangeCached`` (in ``_awrapper``) an
``async def`` one (chosen once, as joblib's ``MemorizedFunc``/``AsyncMemorizedFunc``). Both
are descriptors: through an instance they return a bound wrapper whose call
*and* whose ``prefetch``/``refresh``/``cached``/``coverage``/``invalidate``/``audit``
pass the instance along, so ``client.bars.prefetch("AAPL", s, e)`` binds ``"AAPL"``
to ``symbol``, not to ``self``. For type checkers they are generic over the wrapped
signature (``P``) and result (``R``); ``__get__`` drops the first parameter.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable
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

from ._bound import BoundRangeCached
from ._engine import control
from ._engine import refresh as refreshing
from ._engine.cache import RangeCache
from ._engine.drive import call
from ._engine.flights import detach
from ._engine.introspect import coverage as coverage_of
from ._engine.introspect import forget_bounds, key_and_step
from ._engine.stats import CacheInfo
from ._pickling import reduce_wrapper
from ._stores.base import Store

if TYPE_CHECKING:
    # audit loads on first use: `import rangememo` stays near pandas' own import time.
    from ._engine.audit import AuditReport

__all__ = ["BoundRangeCached", "RangeCached"]

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
        detach(self.cache)  # a call after this waits for no fetch begun before
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
        # The key's rows bound how far past ``end`` coverage may go, and its axis
        # refuses bounds of another kind (see forget_bounds).
        bounded = start is not None or end is not None
        entry = self.cache.store.get(self.cache.namespace, key) if bounded else None
        lo, hi = forget_bounds(self.cache, start, end, step, entry, key)
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
        detach(self.cache, key, lo, hi)  # a call after this waits for no older fetch

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
