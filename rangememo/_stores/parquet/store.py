"""ParquetStore: entries on disk (Parquet + JSON), shared by processes, crash-safe.

Each key is a directory of immutable Parquet *segments* and a log of
immutable records naming them with the coverage and the schema (the protocol
in :mod:`rangememo._stores.parquet.log`, the layout in
:mod:`rangememo._stores.parquet.layout`). A commit
creates its segment first and only then its record, both create-if-absent
through the store's :class:`~rangememo._stores.parquet.medium.Medium`, so a record never
names data that is not there.

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
import dataclasses
import logging
import os
import re
import threading
from collections.abc import AsyncIterator, Callable, Hashable, Iterator
from pathlib import Path
from typing import Any, Literal

import platformdirs

from ..._core.entry import Entry, Fetched
from ..._errors import InvalidOption
from ..base import Store
from ..budget import default_budget
from .codec import UnstorableError, template_to_json
from .codes import read_codes, write_codes
from .damage import bad_log
from .key import KeyState
from .keywrite import LostRace
from .layout import (
    NOT_JSON,
    KeyPaths,
    NewerLedger,
    ensure_dirs,
    key_dirs,
    key_from_doc,
    key_paths,
    namespace_dirname,
    namespace_dirs,
    read_key,
    remove_tree,
)
from .leases import Leases
from .local.locks import ahold, hold
from .local.medium import LocalMedium
from .log import Overtaken, Record, load, up_to_date
from .maintenance import clear_store, sweep
from .resident import MemoryLayer
from .segments import MAX_POS, MIN_POS, Damaged, Segment
from .stored_rows import StoredLedger

__all__ = ["ParquetStore", "default_cache_dir", "url_scheme"]

log = logging.getLogger("rangememo")

#: ``memory="auto"``: the machine-derived budget of :mod:`rangememo._stores.budget`.
DEFAULT_MEMORY: Literal["auto"] = "auto"
_ALL: Any = object()  # "every key" for compact()


def default_cache_dir() -> Path:
    """``$RANGEMEMO_CACHE_DIR``, else the platform's user cache directory."""
    env = os.environ.get("RANGEMEMO_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir("rangememo", appauthor=False))


def url_scheme(path: str | os.PathLike[str]) -> str | None:
    """The scheme of a URL (``"s3"`` for ``"s3://bucket/x"``), ``None`` for a path."""
    match = re.match(r"([A-Za-z][A-Za-z0-9+.-]+)://", os.fspath(path))
    return match.group(1) if match else None


def _unlocked(exc: OSError) -> None:
    # No lock file, so no write either: put() takes the lock itself and fails
    # the same way, and the cache answers the call uncached with a warning.
    log.warning("cannot lock the store (%s): fetching without storing", exc)


def _reopen(path: Path, options: dict[str, Any]) -> ParquetStore:
    return ParquetStore(path, **options)


class ParquetStore(Store):
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
    ) -> None:
        if url_scheme(path) is not None:
            raise InvalidOption(
                f"ParquetStore({os.fspath(path)!r}): a URL, and this ParquetStore writes only to "
                "local directories; pass a directory path"
            )
        self.path = Path(os.path.abspath(Path(path).expanduser()))
        self._memory_option = memory  # "auto" stays "auto" for a worker on another machine
        self.memory: int = default_budget() if memory == "auto" else memory
        self.compact_at = max(compact_at, 2)
        self.grace, self.durable, self.eager_rows = grace, durable, eager_rows
        self._memory = MemoryLayer(self.memory)
        self.medium = LocalMedium(self.path, durable=durable)
        self.leases = Leases(self.medium)
        self._paths_seen: dict[tuple[str, Hashable], KeyPaths] = {}
        self._writers: dict[str, threading.Lock] = {}
        self._writers_lock = threading.Lock()
        # Code fingerprints per namespace, and the namespaces whose code.json holds them.
        self._codes: dict[str, dict[str, str]] = {}
        self._coded: set[str] = set()
        self._refused: set[tuple[str, Hashable]] = set()  # keys refused as unstorable

    def __repr__(self) -> str:
        return f"ParquetStore({str(self.path)!r}, memory={self.memory})"

    def __reduce__(self) -> tuple[Any, ...]:
        options = {
            "memory": self._memory_option,
            "compact_at": self.compact_at,
            "grace": self.grace,
            "durable": self.durable,
            "eager_rows": self.eager_rows,
        }
        return _reopen, (self.path, options)

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
        return self._paths(namespace, key).lock

    @contextlib.contextmanager
    def lock(self, namespace: str, key: Hashable) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(hold(self._lockfile(namespace, key)))
            except OSError as exc:
                _unlocked(exc)
            yield

    @contextlib.asynccontextmanager
    async def alock(self, namespace: str, key: Hashable) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            try:
                await stack.enter_async_context(ahold(self._lockfile(namespace, key)))
            except OSError as exc:
                _unlocked(exc)
            yield

    def _state(self, namespace: str, key: Hashable, paths: KeyPaths) -> KeyState:
        return KeyState(
            namespace, key, paths, self.medium, durable=self.durable, on_load=self._memory.keep
        )

    # -- reading -------------------------------------------------------------------
    def get(self, namespace: str, key: Hashable) -> Entry | None:
        state = self._current(namespace, key, eager=True)
        return state.entry if state is not None else None

    async def aget(self, namespace: str, key: Hashable) -> Entry | None:
        state = self._memory.get(namespace, key)
        if state is not None:  # the hit path: two stats, no thread hop
            with contextlib.suppress(OSError):
                if up_to_date(self.medium, state.paths.prefix, state.doc):
                    self.leases.hold(state.paths.prefix)
                    return state.entry
        return await asyncio.to_thread(self.get, namespace, key)

    def _current(self, namespace: str, key: Hashable, eager: bool) -> KeyState | None:
        """The key as on disk now (from memory, caught up with the log)."""
        state = self._memory.get(namespace, key)
        paths = state.paths if state is not None else self._paths(namespace, key)
        self.leases.hold(paths.prefix)  # before any file of it is read
        fresh = None
        if state is not None and not state.stale:
            try:
                with state.lock:
                    if up_to_date(self.medium, paths.prefix, state.doc) or state.catch_up():
                        fresh = state
            except Damaged as exc:
                bad_log(self.medium, paths, exc)
                self._memory.drop(namespace, key)
                return None
            except NewerLedger:
                fresh = None
        if fresh is None:
            try:
                doc = load(self.medium, paths.prefix, StoredLedger)
                if doc is not None:
                    fresh = self._state(namespace, key, paths).open(doc)
            except Damaged as exc:
                bad_log(self.medium, paths, exc)
                doc = None
            except NewerLedger as exc:
                if not eager:  # a writer: never overwrite what a newer version wrote
                    raise
                log.warning("%s: %s; not used", paths.keydir, exc)
                doc = None
            if fresh is None:
                self._memory.drop(namespace, key)
                return None
        if eager:  # readers: a small key loads whole (writers never load)
            fresh.load_small(self.eager_rows)
        self._memory.keep(fresh)
        return fresh

    def keys(self, namespace: str) -> list[Hashable]:
        seen = list(self._paths_seen.items())
        mine = {p.keydir.name: k for (ns, k), p in seen if ns == namespace}
        out: list[Hashable] = []
        for keydir in key_dirs(self.path / namespace_dirname(namespace)):
            try:
                doc = load(self.medium, f"{keydir.parent.name}/{keydir.name}")
            except (Damaged, NewerLedger):
                continue
            if doc is None:
                continue
            key = key_from_doc(doc.key, keydir)[1] if doc.key else read_key(keydir)[1]
            if key is NOT_JSON:  # no JSON form on disk: known only if this process saw it
                key = mine.get(keydir.name, NOT_JSON)
            if key is not NOT_JSON:
                out.append(key)
        return out

    def record_code(self, namespace: str, name: str, code: str) -> str | None:
        nsdir = self.path / namespace_dirname(namespace)
        mine = self._codes.setdefault(namespace, {})
        mine[name] = code
        if not nsdir.is_dir():  # nothing cached yet: code.json comes with the first write
            return None
        before = read_codes(nsdir).get(name)
        if before == code:
            self._coded.add(namespace)
            return None
        self._coded.discard(namespace)  # recorded by this process's first write
        return before

    def _note_code(self, namespace: str, nsdir: Path) -> None:
        # After a clear (or before the first write) code.json is missing.
        mine = self._codes.get(namespace)
        if mine and namespace not in self._coded:
            write_codes(nsdir, namespace, {**read_codes(nsdir), **mine}, durable=self.durable)
            self._coded.add(namespace)

    # -- writing -------------------------------------------------------------------
    def _writer(self, path: str) -> threading.Lock:
        """One writer at a time per key in this process.

        The key lock is reentrant along a call's context, and a batch of gap
        fetches shares one hold of it, so two of them may commit at once.
        """
        with self._writers_lock:
            return self._writers.setdefault(path, threading.Lock())

    def put(self, namespace: str, key: Hashable, fetched: Fetched) -> Entry:
        try:
            return self._put(namespace, key, fetched)
        except UnstorableError as exc:
            # Refused once per key: later refusals of it are only logged.
            exc.repeated = (namespace, key) in self._refused
            if len(self._refused) > 10_000:
                self._refused.clear()
            self._refused.add((namespace, key))
            raise

    def _put(self, namespace: str, key: Hashable, fetched: Fetched) -> Entry:
        path = self._lockfile(namespace, key)
        with hold(path), self._writer(path):
            paths = self._paths(namespace, key)
            state = self._current(namespace, key, eager=False)
            if state is None:
                state = self._state(namespace, key, paths)
            state.start(fetched.adapter, fetched.axis)
            entry = state.entry
            # SchemaMismatchError: nothing written. On a copy: apply() must see
            # the piece as fetched (it reads the provider's timezone off it).
            checked = entry.conform(dataclasses.replace(fetched))
            assert entry.adapter is not None
            kind, chunk, template = entry.adapter.kind, checked.chunk, checked.template
            # The template apply() keeps; UnstorableError (an OSError) if Parquet
            # cannot hold it exactly: nothing written, the call still answers.
            tdoc = state.tdoc if template is state.tobj else template_to_json(kind, template)
            claims = ((fetched.lo, fetched.hi),)

            def change() -> None:
                entry.apply(fetched)

            ensure_dirs(paths, namespace, durable=self.durable)
            if namespace not in self._coded:
                self._note_code(namespace, paths.nsdir)
            self._commit(state, lambda: state.put(kind, chunk, claims, tdoc, change))
            if len(state.doc.segments) >= self.compact_at:
                state.compact(True, self.leases)
            else:
                state.release(self.leases)
            return entry

    def _commit(self, state: KeyState, commit: Callable[[], None]) -> None:
        try:
            commit()
        except BaseException:
            # The entry may hold the change while the disk does not: drop it.
            self._memory.drop(state.namespace, state.key)
            raise
        if state.stale:  # committed after another writer's records: read it afresh
            self._memory.drop(state.namespace, state.key)
        else:
            self._memory.keep(state)

    def forget(
        self, namespace: str, key: Hashable, lo: int | None = None, hi: int | None = None
    ) -> None:
        path = self._lockfile(namespace, key)
        with hold(path), self._writer(path):
            if lo is None and hi is None:
                self._memory.drop(namespace, key)
                remove_tree(self.path, self._paths(namespace, key).keydir)
                return
            for attempt in range(4):
                try:
                    self._forget_range(namespace, key, lo, hi)
                    return
                except (LostRace, Overtaken):
                    # Another writer moved the log on (no lock): forgetting is
                    # idempotent, so forget again from the log as it is now.
                    if attempt == 3:
                        raise

    def _forget_range(self, namespace: str, key: Hashable, lo: int | None, hi: int | None) -> None:
        state = self._current(namespace, key, eager=False)
        if state is None or state.doc.schema is None:
            return
        a = lo if lo is not None else MIN_POS
        b = hi if hi is not None else MAX_POS
        entry, tdoc = state.entry, state.tdoc
        rec = Record(add=Segment(None, ((a, b),)))
        self._commit(state, lambda: state.commit(rec, lambda: entry.forget(lo, hi), tdoc))

    def clear(self, namespace: str | None = None) -> None:
        nsdir = None if namespace is None else self.path / namespace_dirname(namespace)
        clear_store(self.path, nsdir)
        if namespace is None:
            self._coded.clear()
        else:
            self._coded.discard(namespace)
        self._memory.drop_all(namespace)

    # -- maintenance ------------------------------------------------------------------
    def compact(
        self, namespace: str | None = None, key: Hashable = _ALL, *, full: bool = True
    ) -> int:
        """Compact one key, a namespace or everything; the number of segments merged away.

        ``full`` merges every run of same-schema segments; otherwise only when a
        key has ``compact_at`` segments (what a write does by itself).
        """
        merged = 0
        for ns, k in self._targets(namespace, key):
            with hold(self._lockfile(ns, k)):
                try:
                    state = self._current(ns, k, eager=False)
                except NewerLedger:
                    continue
                if state is not None:
                    merged += state.compact(full, self.leases)
                    if state.stale:  # overtaken: its view is not the log's
                        self._memory.drop(ns, k)
                        continue
                    self._memory.keep(state)
                    sweep(self.medium, state.paths.prefix, state.doc, 60.0)
        return merged

    def _targets(self, namespace: str | None, key: Hashable) -> list[tuple[str, Hashable]]:
        if namespace is not None and key is not _ALL:
            return [(namespace, key)]
        names = [namespace] if namespace is not None else [n for n, _ in namespace_dirs(self.path)]
        return [(ns, k) for ns in names for k in self.keys(ns)]

    def close(self) -> None:
        self._memory.drop_all()
        self.leases.close()

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
