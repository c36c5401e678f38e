"""ParquetStore: entries on disk (Parquet + JSON), shared by processes, crash-safe.

Each key is a directory of immutable Parquet *segments* and a log of
immutable records naming them with the coverage and the schema (the protocol
in :mod:`rangememo._stores.parquet.log`, the layout in
:mod:`rangememo._stores.parquet.layout`). A commit
creates its segment first and only then its record, both create-if-absent
through the store's :class:`~rangememo._stores.parquet.medium.Medium`, so a record never
names data that is not there (the write path: :mod:`rangememo._stores.parquet.writes`).

In front sits a memory layer: a cachetools LRU of recently used keys bounded
by bytes. A hit costs two ``stat`` calls (no next record, the last one read
still there); records another process appended are applied in place. A key
reopened from disk loads its rows lazily, only the segments (and row groups)
a window touches. Writers of a key hold its lock (a striped lock file) so
two processes do not fetch one range twice; readers never wait for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Hashable, Iterator
from pathlib import Path
from typing import Any, Literal

import platformdirs

from ..._core.entry import Entry, Fetched
from ..._errors import CacheWarning, InvalidOption
from ..._warn import warn
from ..base import Store
from ..budget import default_budget
from .codes import read_codes, write_codes
from .key import KeyState
from .layout import (
    KeyPaths,
    key_paths,
    namespace_dirname,
)
from .leases import Leases
from .local.medium import LocalMedium
from .location import is_local, local_path, open_medium, url_scheme
from .log import up_to_date
from .maintenance import root_of
from .medium import StorageUnavailable
from .reading import ALL, compact_keys, current, stored_keys
from .resident import MemoryLayer
from .tidy import clear_store
from .writes import Writes

__all__ = ["ParquetStore", "default_cache_dir", "url_scheme"]

log = logging.getLogger("rangememo")

#: ``memory="auto"``: the machine-derived budget of :mod:`rangememo._stores.budget`.
DEFAULT_MEMORY: Literal["auto"] = "auto"


def default_cache_dir() -> Path | str:
    """``$RANGEMEMO_CACHE_DIR`` (a directory or ``s3://bucket/prefix``), else the
    platform's user cache directory."""
    env = os.environ.get("RANGEMEMO_CACHE_DIR")
    if env:
        return env if not is_local(env) else local_path(env)
    return Path(platformdirs.user_cache_dir("rangememo", appauthor=False))


def _unlocked(exc: OSError) -> None:
    # No lock file, so no write either: put() takes the lock itself and fails
    # the same way, and the cache answers the call uncached with a warning.
    log.warning("cannot lock the store (%s): fetching without storing", exc)


def _reopen(path: Path | str, options: dict[str, Any]) -> ParquetStore:
    return ParquetStore(path, **options)


#: ``refresh=None``: how often a hit revalidates against the log, by medium.
REFRESH_LOCAL, REFRESH_REMOTE = 0.0, 1.0
#: On an object store: other processes' reader leases are listed at most this often (seconds).
LEASE_LOOK = 5.0


class ParquetStore(Writes, Store):
    """Entries in a directory: Parquet segments and a JSON ledger per key.

    ``memory`` bounds the in-memory layer (bytes of rows held, LRU; 0 turns it
    off); ``"auto"`` is ``MemoryStore``'s default, ``min(25% of physical
    memory, 8 GiB)``. An evicted key is read back from disk, never fetched.
    Small segments merge with every write into them and larger ones in
    tiers (``docs/parquet.md``); ``compact_at`` is a cap: a key with that
    many segments is compacted whole. Replaced files are deleted once no
    reader needs them; ``grace`` is accepted for compatibility and unused.
    ``durable=False`` skips fsync (tests, throwaway caches). A key reopened
    from disk with at most ``eager_rows`` rows loads whole on first use; a
    larger one window by window.

    ``path`` may be ``s3://bucket/prefix`` (``pip install rangememo[s3]``):
    credentials and endpoint from the AWS environment variables or
    ``storage_options``, see ``docs/sharing.md``. ``refresh`` is how many
    seconds a hit may be served from memory before it is revalidated against
    the log (``None``: 0 on a local directory, 1 s on an object store); a
    write always reads the newest log under the key's lock. ``lease`` is the
    writer lease's lifetime on an object store.
    """

    shared = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        memory: int | Literal["auto"] = DEFAULT_MEMORY,
        *,
        compact_at: int = 32,
        grace: float = 300.0,
        durable: bool = True,
        eager_rows: int = 50_000,
        storage_options: dict[str, Any] | None = None,
        refresh: float | None = None,
        lease: float = 30.0,
    ) -> None:
        if refresh is not None and not refresh >= 0:
            raise InvalidOption(f"refresh={refresh!r}: expected seconds >= 0 or None")
        if not lease > 0:
            raise InvalidOption(f"lease={lease!r}: expected seconds > 0")
        self.storage_options = dict(storage_options) if storage_options else None
        self.medium = open_medium(path, self.storage_options, durable=durable, lease=lease)
        self.local = is_local(path)
        self.url = self.medium.url
        #: The directory (a local store) or the URL as a path-like name (messages).
        self.path = root_of(self.medium)
        self._refresh_option, self.lease = refresh, lease
        self.refresh = (
            refresh if refresh is not None else (REFRESH_LOCAL if self.local else REFRESH_REMOTE)
        )
        self.lags = self.refresh > 0  # a key read within ``refresh`` is not checked
        self._memory_option = memory  # "auto" stays "auto" for a worker on another machine
        self.memory: int = default_budget() if memory == "auto" else memory
        self.compact_at = max(compact_at, 2)
        self.grace, self.durable, self.eager_rows = grace, durable, eager_rows
        self._memory = MemoryLayer(self.memory)
        self.leases = Leases(self.medium, 0.0 if self.local else LEASE_LOOK)
        self._paths_seen: dict[tuple[str, Hashable], KeyPaths] = {}
        self._writers: dict[str, threading.Lock] = {}
        self._writers_lock = threading.Lock()
        # Code fingerprints per namespace, and the namespaces whose code.json holds them.
        self._codes: dict[str, dict[str, str]] = {}
        self._coded: set[str] = set()
        self._refused: set[tuple[str, Hashable]] = set()  # keys refused as unstorable
        # Namespaces whose namespace.json this store wrote or saw (a medium creates
        # a key's folders itself when it writes into them).
        self._ensured: set[str] = set()

    def __repr__(self) -> str:
        return f"ParquetStore({self.url!r}, memory={self.memory})"

    def __reduce__(self) -> tuple[Any, ...]:
        options = {
            "memory": self._memory_option,
            "compact_at": self.compact_at,
            "grace": self.grace,
            "durable": self.durable,
            "eager_rows": self.eager_rows,
            "storage_options": self.storage_options,
            "refresh": self._refresh_option,
            "lease": self.lease,
        }
        # By location and options: a worker on another machine opens the same
        # store with its own credentials (the environment's, unless given here).
        return _reopen, (self.url if not self.local else self.path, options)

    # -- paths and locks -------------------------------------------------------------
    def _paths(self, namespace: str, key: Hashable) -> KeyPaths:
        # joblib.hash costs ~10 us: once per key, not per call.
        paths = self._paths_seen.get((namespace, key))
        if paths is None:
            if len(self._paths_seen) > 100_000:
                self._paths_seen.clear()
            paths = self._paths_seen[(namespace, key)] = key_paths(self.path, namespace, key)
        return paths

    def _lockfile(self, namespace: str, key: Hashable) -> str:
        """The key's lock file (``<file>#<key>``) of a local store."""
        assert isinstance(self.medium, LocalMedium), "object stores lease by key, no file"
        return self.medium.lock_path(self._paths(namespace, key).prefix)

    @contextlib.contextmanager
    def lock(self, namespace: str, key: Hashable) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(self.medium.lock(self._paths(namespace, key).prefix))
            except OSError as exc:
                _unlocked(exc)
            yield

    @contextlib.asynccontextmanager
    async def alock(self, namespace: str, key: Hashable) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            try:
                prefix = self._paths(namespace, key).prefix
                await stack.enter_async_context(self.medium.alock(prefix))
            except OSError as exc:
                _unlocked(exc)
            yield

    def _state(self, namespace: str, key: Hashable, paths: KeyPaths) -> KeyState:
        return KeyState(
            namespace, key, paths, self.medium, durable=self.durable, on_load=self._memory.keep
        )

    # -- reading -------------------------------------------------------------------
    def get(self, namespace: str, key: Hashable) -> Entry | None:
        state = self._memory.get(namespace, key)
        if state is not None and self.local and not state.stale:  # the hit path: two stats
            checked = time.monotonic()
            if self._unchanged(state):
                self.leases.hold(state.paths.prefix)
                state.load_small(self.eager_rows)
                state.checked = checked
                return state.entry
        try:
            state = self._current(namespace, key, eager=True)
        except StorageUnavailable as exc:
            # Served by the provider instead; the commit after it fails the same
            # way and says so (the call answers uncached, the log unchanged).
            log.warning("cannot read %r from %s: %s", key, self.url, exc)
            warn(CacheWarning(f"rangememo: cannot read the cache at {self.url} ({exc})"))
            return None
        return state.entry if state is not None else None

    async def aget(self, namespace: str, key: Hashable) -> Entry | None:
        state = self._memory.get(namespace, key)
        if state is not None and self.local:  # the hit path: two stats, no thread hop
            if self._unchanged(state):
                self.leases.hold(state.paths.prefix)
                return state.entry
        elif state is not None and self._recent(state):  # no request within ``refresh``
            return state.entry
        return await asyncio.to_thread(self.get, namespace, key)

    def _unchanged(self, state: KeyState) -> bool:
        """The hit path's check (two stats); a disk that cannot answer counts as changed."""
        try:  # (not contextlib.suppress: its object costs a hit ~1 us)
            return up_to_date(self.medium, state.paths.prefix, state.doc)
        except OSError:
            return False

    def _recent(self, state: KeyState) -> bool:
        """Validated less than ``refresh`` seconds ago, and not asked under the key's lock."""
        return (
            not state.stale
            and time.monotonic() - state.checked < self.refresh
            and not self.medium.held(state.paths.prefix)
        )

    def _current(self, namespace: str, key: Hashable, eager: bool) -> KeyState | None:
        """The key as on disk now (from memory, caught up with the log)."""
        return current(self, namespace, key, eager)

    def keys(self, namespace: str) -> list[Hashable]:
        return stored_keys(self, namespace)

    def record_code(self, namespace: str, name: str, code: str) -> str | None:
        nsname = namespace_dirname(namespace)
        mine = self._codes.setdefault(namespace, {})
        mine[name] = code
        try:
            if not self.medium.exists(f"{nsname}/namespace.json"):
                return None  # nothing cached yet: code.json comes with the first write
        except OSError as exc:  # storage unreachable: the check waits for the first write
            log.debug("cannot check the code of %s in %s: %s", namespace, self.url, exc)
            return None
        before = read_codes(self.medium, nsname).get(name)
        if before == code:
            self._coded.add(namespace)
            return None
        self._coded.discard(namespace)  # recorded by this process's first write
        return before

    def _note_code(self, namespace: str, nsname: str) -> None:
        # After a clear (or before the first write) code.json is missing.
        mine = self._codes.get(namespace)
        if mine and namespace not in self._coded:
            codes = {**read_codes(self.medium, nsname), **mine}
            write_codes(self.medium, nsname, namespace, codes)
            self._coded.add(namespace)

    def clear(self, namespace: str | None = None) -> None:
        nsname = None if namespace is None else namespace_dirname(namespace)
        clear_store(self.medium, nsname)
        if namespace is None or nsname is None:
            self._coded.clear()
            self._ensured.clear()
        else:
            self._coded.discard(namespace)
            self._ensured.discard(nsname)
        self._memory.drop_all(namespace)

    # -- maintenance ------------------------------------------------------------------
    def compact(
        self, namespace: str | None = None, key: Hashable = ALL, *, full: bool = True
    ) -> int:
        """Compact one key, a namespace or everything; the number of segments merged away.

        ``full`` merges every run of same-schema segments; otherwise only when a
        key has ``compact_at`` segments (what a write does by itself).
        """
        return compact_keys(self, namespace, key, full)

    def close(self) -> None:
        self._memory.drop_all()
        self.leases.close()
        self.medium.close()

    # -- async mirrors: file I/O runs in a worker thread ---------------------------
    async def aput(self, namespace: str, key: Hashable, fetched: Fetched) -> Entry:
        return await asyncio.to_thread(self.put, namespace, key, fetched)

    async def aforget(
        self, namespace: str, key: Hashable, lo: int | None = None, hi: int | None = None
    ) -> None:
        await asyncio.to_thread(self.forget, namespace, key, lo, hi)

    async def aclear(self, namespace: str | None = None) -> None:
        await asyncio.to_thread(self.clear, namespace)

    async def akeys(self, namespace: str) -> list[Hashable]:
        return await asyncio.to_thread(self.keys, namespace)
