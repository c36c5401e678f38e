"""Pickling a cached function for another process: by reference, else by value.

A wrapper that its module can hand back (``module.qualname`` is the wrapper)
pickles as that reference, as functions do: ``multiprocessing`` and
``concurrent.futures`` look it up again in the worker (``__main__`` included,
which spawn workers re-run as ``__mp_main__``).

By value, for pickles that ship code (cloudpickle, as Dask and Ray use for
``__main__`` and notebooks; dill), the state is the wrapped function, the
options, the configured store and the namespace: never the cache's locks,
in-flight table, counters, event loop or thread pool. A ``ParquetStore``
pickles as its directory and reopens there; a ``MemoryStore`` arrives empty;
the default store is the worker's own default.
"""

from __future__ import annotations

import pickle
import sys
import threading
import uuid
import weakref
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import cachetools

from ._engine.cache import RangeCache
from ._engine.options import Options
from ._stores.base import Store
from ._stores.default import default_store
from ._stores.memory import MemoryStore, _entry_size

__all__ = ["reduce_wrapper"]

# Picklers whose module names one of these ship functions by value.
_BY_VALUE = frozenset({"cloudpickle", "dill"})
_DEPTH = 32  # frames to look through for the pickler (a few, in practice)

# Every by-value copy of one wrapper is one object per process (as cloudpickle
# does for classes), so a worker's tasks share its cache, counters and store.
_rebuilt: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
_rebuilt_lock = threading.Lock()


class _FreshMemoryStore(NamedTuple):
    """A ``MemoryStore`` to open empty, with the same bound, where it is unpickled."""

    maxsize: int | None
    maxbytes: int | Literal["auto"] | None  # "auto": the budget of the machine it opens on


def reduce_wrapper(wrapper: Any, store: Store | None) -> str | tuple[Any, ...]:
    """``__reduce__`` of a ``RangeCached``/``AsyncRangeCached``."""
    module = wrapper.__module__
    if _importable(wrapper) and not (_by_value_pickler() and _ships_code_of(module)):
        return str(wrapper.__qualname__)  # pickle's "a global of wrapper.__module__"
    with _rebuilt_lock:
        token = wrapper.__dict__.get("_pickle_token")
        if token is None:
            token = wrapper.__dict__["_pickle_token"] = uuid.uuid4().hex
            _rebuilt[token] = wrapper
    cache = wrapper.cache
    state = (type(wrapper), wrapper.__wrapped__, cache.options, _portable(store), cache.namespace)
    return _rebuild, (token, *state)


def _rebuild(
    token: str,
    kind: Callable[..., Any],
    fn: Callable[..., Any],
    options: Options,
    store: Store | _FreshMemoryStore | None,
    namespace: str,
) -> Any:
    with _rebuilt_lock:
        wrapper = _rebuilt.get(token)
        if wrapper is not None:
            return wrapper
        if isinstance(store, _FreshMemoryStore):
            store = MemoryStore(store.maxsize, maxbytes=store.maxbytes)
        cache = RangeCache(fn, options, store, default_store)
        # The parent's namespace, whatever this process would derive (a
        # worker's __main__ is another script, or none): same store, same entries.
        cache.namespace = namespace
        wrapper = kind(fn, cache, store)
        wrapper.__dict__["_pickle_token"] = token
        _rebuilt[token] = wrapper
        return wrapper


def _importable(wrapper: Any) -> bool:
    """Does ``module.qualname`` lead back to this very wrapper?"""
    obj: Any = sys.modules.get(wrapper.__module__)
    try:
        for part in wrapper.__qualname__.split("."):
            obj = getattr(obj, part)  # a class attribute: __get__(None, cls) is the wrapper
    except AttributeError:
        return False
    return obj is wrapper


def _ships_code_of(module: str) -> bool:
    """Would cloudpickle pickle this module's functions by value?"""
    if module == "__main__":
        return True
    cloudpickle = sys.modules.get("cloudpickle")
    registered: Callable[[], set[str]] | None = getattr(
        cloudpickle, "list_registry_pickle_by_value", None
    )
    return registered is not None and module in registered()


def _by_value_pickler() -> bool:
    """Is the pickler at work one that ships functions by value?

    ``__reduce__`` is not told which pickler calls it. The C pickler calls it
    straight from the Python frame that called ``dump`` (cloudpickle's
    ``Pickler.dump``; a pure-Python pickler such as dill's from its own
    ``save``), so the nearest frame whose ``self`` is a pickler names it.
    """
    frame = sys._getframe(1)
    for _ in range(_DEPTH):
        if frame is None:
            break
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, (pickle.Pickler, pickle._Pickler)):
            return any(
                part in _BY_VALUE
                for cls in type(candidate).__mro__
                for part in cls.__module__.split(".")
            )
        frame = frame.f_back  # type: ignore[assignment]
    return False


def _portable(store: Store | None) -> Store | _FreshMemoryStore | None:
    if not isinstance(store, MemoryStore):
        return store  # None (the default), a ParquetStore (its path), a Store of your own
    # Rows in memory stay in this process; the worker gets an empty store
    # bounded as this one (a mapping of your own: the default bound).
    if store._own:
        return _FreshMemoryStore(store.maxsize, "auto" if store._auto else store.maxbytes)
    mapping = store._map
    if type(mapping) is cachetools.LRUCache:
        if getattr(mapping, "getsizeof", None) is _entry_size:
            return _FreshMemoryStore(None, int(mapping.maxsize))
        return _FreshMemoryStore(int(mapping.maxsize), None)
    if type(mapping) is dict:
        return _FreshMemoryStore(None, None)
    return _FreshMemoryStore(None, "auto")
