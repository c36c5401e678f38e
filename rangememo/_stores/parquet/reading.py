"""ParquetStore's slower paths: a key as on disk now, the keys stored, compaction.

Functions of the store (as :mod:`rangememo._stores.parquet.keywrite` is of a key's
state): the hit path stays in :class:`~rangememo._stores.parquet.store.ParquetStore`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

from .damage import bad_log
from .key import KeyState
from .layout import (
    NOT_JSON,
    NewerLedger,
    key_dirs,
    key_from_doc,
    namespace_dirname,
    namespace_dirs,
    read_key,
)
from .log import load, up_to_date
from .segments import Damaged
from .stored_rows import StoredLedger
from .tidy import sweep

if TYPE_CHECKING:
    from .store import ParquetStore

__all__ = ["ALL", "compact_keys", "current", "stored_keys", "targets"]

log = logging.getLogger("rangememo")

#: "every key" for compact()
ALL: Any = object()
#: On an object store: a writer trusts a state validated under its lease this recently.
WRITER_TRUST = 0.25


def current(store: ParquetStore, namespace: str, key: Hashable, eager: bool) -> KeyState | None:
    """The key as on disk now (from memory, caught up with the log)."""
    state = store._memory.get(namespace, key)
    if eager and state is not None and store.refresh and store._recent(state):
        return state
    paths = state.paths if state is not None else store._paths(namespace, key)
    store.leases.hold(paths.prefix)  # before any file of it is read
    fresh = None
    checked = time.monotonic()
    if (
        not eager
        and not store.local
        and state is not None
        and not state.stale
        and checked - state.checked < WRITER_TRUST
        and store.medium.held(paths.prefix)
    ):
        # Just validated under this lease (the engine's read before the
        # fetch): a commit is create-if-absent, so were it stale after all,
        # it would lose the record number and rebase, never overwrite.
        return state
    clean = False  # held already, and nothing new in the log: kept as it is
    if state is not None and not state.stale:
        try:
            with state.lock:
                clean = up_to_date(store.medium, paths.prefix, state.doc)
                if clean or state.catch_up():
                    fresh = state
        except Damaged as exc:
            bad_log(store.medium, paths, exc)
            store._memory.drop(namespace, key)
            return None
        except NewerLedger:
            fresh = None
    if fresh is None:
        try:
            doc = load(store.medium, paths.prefix, StoredLedger)
            if doc is not None:
                fresh = store._state(namespace, key, paths).open(doc)
        except Damaged as exc:
            bad_log(store.medium, paths, exc)
            doc = None
        except NewerLedger as exc:
            if not eager:  # a writer: never overwrite what a newer version wrote
                raise
            log.warning("%s: %s; not used", store.medium.describe(paths.prefix), exc)
            doc = None
        if fresh is None:
            store._memory.drop(namespace, key)
            return None
    if eager:  # readers: a small key loads whole (writers never load)
        fresh.load_small(store.eager_rows)
    fresh.checked = checked
    if not clean:  # a hit touched its key's recency in get(); a load re-measured it
        store._memory.keep(fresh)
    return fresh


def stored_keys(store: ParquetStore, namespace: str) -> list[Hashable]:
    """The keys of ``namespace`` on disk (a key with no JSON form: if this process saw it)."""
    seen = list(store._paths_seen.items())
    mine = {p.keydir.name: k for (ns, k), p in seen if ns == namespace}
    out: list[Hashable] = []
    nsname = namespace_dirname(namespace)
    for khash in key_dirs(store.medium, nsname):
        prefix = f"{nsname}/{khash}"
        try:
            doc = load(store.medium, prefix)
        except (Damaged, NewerLedger):
            continue
        if doc is None:
            continue
        key = key_from_doc(doc.key, khash)[1] if doc.key else read_key(store.medium, prefix)[1]
        if key is NOT_JSON:  # no JSON form on disk: known only if this process saw it
            key = mine.get(khash, NOT_JSON)
        if key is not NOT_JSON:
            out.append(key)
    return out


def compact_keys(store: ParquetStore, namespace: str | None, key: Hashable, full: bool) -> int:
    """Compact one key, a namespace or everything; the number of segments merged away.

    ``full`` merges every run of same-schema segments; otherwise only when a
    key has ``compact_at`` segments (what a write does by itself).
    """
    merged = 0
    for ns, k in targets(store, namespace, key):
        with store.medium.lock(store._paths(ns, k).prefix):
            try:
                state = current(store, ns, k, eager=False)
            except NewerLedger:
                continue
            if state is not None:
                merged += state.compact(full, store.leases)
                if state.stale:  # overtaken: its view is not the log's
                    store._memory.drop(ns, k)
                    continue
                store._memory.keep(state)
                sweep(store.medium, state.paths.prefix, state.doc, 60.0)
    return merged


def targets(
    store: ParquetStore, namespace: str | None, key: Hashable
) -> list[tuple[str, Hashable]]:
    """``(namespace, key)`` pairs: one key, a namespace's or every namespace's keys."""
    if namespace is not None and key is not ALL:
        return [(namespace, key)]
    names = [namespace] if namespace is not None else [n for n, _ in namespace_dirs(store.medium)]
    return [(ns, k) for ns in names for k in stored_keys(store, ns)]
