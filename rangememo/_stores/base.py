"""The store interface: where entries live between calls.

A store keeps, per ``(namespace, key)``, one :class:`~rangememo._core.entry.Entry`
(ledger + rows + schema). Five methods, each with an ``a``-prefixed async
mirror (as httpx's ``handle_request``/``handle_async_request``). The async
mirrors call the sync ones by default, which is right for stores that never
block; a store doing file or network I/O overrides them to run in a thread.

Writing a store of your own: subclass :class:`Store`, implement the five sync
methods, and run ``rangememo.testing.StoreContract`` against it.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Hashable, Iterator

from .._core.entry import Entry, Fetched

__all__ = ["Store"]


class Store(ABC):
    """Holds the entries of every cached function that uses it."""

    #: Several processes may share this store: the cache takes :meth:`lock`
    #: around fetch-and-commit and re-reads the entry once it holds it.
    shared = False

    #: An entry read outside :meth:`lock` may be older than the store (a shared
    #: store that revalidates at most every so often): a call that fetched under
    #: the lock answers from the newest entry it read there.
    lags = False

    #: Entries outlive the process. A persistent store refuses a default
    #: namespace that only this process could tell apart (a closure over a
    #: client object); an in-process one (``False``) accepts it.
    persistent = True

    @abstractmethod
    def get(self, namespace: str, key: Hashable) -> Entry | None:
        """The key's current entry, or ``None`` if nothing is cached for it."""

    @abstractmethod
    def put(self, namespace: str, key: Hashable, fetched: Fetched) -> Entry:
        """Commit a fetched piece to the key's entry (creating it); return the entry.

        Raises :class:`~rangememo.SchemaMismatchError` (nothing written) when
        the piece changes the dtype of a cached column.
        """

    @abstractmethod
    def forget(
        self, namespace: str, key: Hashable, lo: int | None = None, hi: int | None = None
    ) -> None:
        """Drop ``[lo, hi)`` of a key (the whole key when both are ``None``)."""

    @abstractmethod
    def clear(self, namespace: str | None = None) -> None:
        """Drop every key of a namespace (of every namespace when ``None``)."""

    @abstractmethod
    def keys(self, namespace: str) -> list[Hashable]:
        """The keys cached under a namespace."""

    def record_code(self, namespace: str, name: str, code: str) -> str | None:
        """Note that function ``name``, whose code hashes to ``code``, uses ``namespace``.

        Returns the fingerprint recorded for ``name`` before if it differs (its
        entries were written by other code), else ``None``. This default keeps
        the record in memory; a persistent store keeps it beside the entries.
        """
        codes: dict[tuple[str, str], str] = self.__dict__.setdefault("_rangememo_codes", {})
        before = codes.get((namespace, name))
        codes[(namespace, name)] = code
        return before if before is not None and before != code else None

    # -- cross-process exclusion (no-op unless ``shared``) -----------------
    @contextlib.contextmanager
    def lock(self, namespace: str, key: Hashable) -> Iterator[None]:
        """Held around fetch-and-commit of one key."""
        yield

    @contextlib.asynccontextmanager
    async def alock(self, namespace: str, key: Hashable) -> AsyncIterator[None]:
        with self.lock(namespace, key):
            yield

    # -- async mirrors -------------------------------------------------------
    async def aget(self, namespace: str, key: Hashable) -> Entry | None:
        return self.get(namespace, key)

    async def aput(self, namespace: str, key: Hashable, fetched: Fetched) -> Entry:
        return self.put(namespace, key, fetched)

    async def aforget(
        self, namespace: str, key: Hashable, lo: int | None = None, hi: int | None = None
    ) -> None:
        self.forget(namespace, key, lo, hi)

    async def aclear(self, namespace: str | None = None) -> None:
        self.clear(namespace)

    async def akeys(self, namespace: str) -> list[Hashable]:
        return self.keys(namespace)

    def close(self) -> None:
        """Release resources (files, connections). The store stays usable."""
