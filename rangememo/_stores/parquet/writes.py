"""ParquetStore's write path: commits, forgetting a range or a key (a mixin).

Mixed into :class:`~rangememo._stores.parquet.store.ParquetStore`, which sets
the attributes declared here. A commit runs under the key's lock (across
processes: only so two of them do not fetch one range twice) and this
process's writer lock of the key; the protocol's steps are in
:mod:`rangememo._stores.parquet.keywrite` and :mod:`rangememo._stores.parquet.log`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING

from ..._core.entry import Entry, Fetched
from .codec import UnstorableError, template_to_json
from .key import KeyState
from .keywrite import LostRace
from .layout import KeyPaths, ensure_dirs
from .log import Overtaken, Record
from .segments import MAX_POS, MIN_POS, Segment

if TYPE_CHECKING:
    from .leases import Leases
    from .medium import Medium
    from .resident import MemoryLayer

__all__ = ["Writes"]

log = logging.getLogger("rangememo")


class Writes:
    """``put`` and ``forget`` of a ParquetStore (mixed into it)."""

    medium: Medium
    leases: Leases
    compact_at: int
    _memory: MemoryLayer
    _writers: dict[str, threading.Lock]
    _writers_lock: threading.Lock
    _refused: set[tuple[str, Hashable]]
    _ensured: set[str]
    _coded: set[str]

    if TYPE_CHECKING:  # ParquetStore's own

        def _paths(self, namespace: str, key: Hashable) -> KeyPaths: ...
        def _state(self, namespace: str, key: Hashable, paths: KeyPaths) -> KeyState: ...
        def _current(self, namespace: str, key: Hashable, eager: bool) -> KeyState | None: ...
        def _note_code(self, namespace: str, nsname: str) -> None: ...

    def _writer(self, path: str) -> threading.Lock:
        """One writer at a time per key in this process.

        The key lock is reentrant along a call's context, and a batch of gap
        fetches shares one hold of it, so two of them may commit at once.
        """
        with self._writers_lock:
            return self._writers.setdefault(path, threading.Lock())

    def put(self, namespace: str, key: Hashable, fetched: Fetched) -> Entry:
        try:
            for attempt in range(3):
                try:
                    return self._put(namespace, key, fetched)
                except (LostRace, Overtaken):
                    # Another writer (a lease holder that stalled, or one that took
                    # an expired lease over) committed first: rebase onto its log.
                    # After Overtaken the piece may count already (folded at once):
                    # committing it again over the same range changes nothing.
                    if attempt == 2:
                        raise
                    log.debug("lost a commit race on %r: rebasing onto the newer log", key)
            raise AssertionError("unreachable")  # pragma: no cover
        except UnstorableError as exc:
            # Refused once per key: later refusals of it are only logged.
            exc.repeated = (namespace, key) in self._refused
            if len(self._refused) > 10_000:
                self._refused.clear()
            self._refused.add((namespace, key))
            raise

    def _put(self, namespace: str, key: Hashable, fetched: Fetched) -> Entry:
        paths = self._paths(namespace, key)
        with self.medium.lock(paths.prefix), self._writer(paths.prefix):
            state = self._current(namespace, key, eager=False)
            if state is None:
                state = self._state(namespace, key, paths)
                self._recheck_namespace(namespace, paths)
            state.start(fetched.adapter, fetched.axis)
            entry = state.entry
            # SchemaMismatchError: nothing written. On a copy: apply() must see
            # the piece as fetched (it reads the provider's timezone off it).
            checked = entry.conform(fetched.replace())
            assert entry.adapter is not None
            kind, chunk, template = entry.adapter.kind, checked.chunk, checked.template
            # The template apply() keeps; UnstorableError (an OSError) if Parquet
            # cannot hold it exactly: nothing written, the call still answers.
            tdoc = state.tdoc if template is state.tobj else template_to_json(kind, template)
            claims = ((fetched.lo, fetched.hi),)

            def change() -> None:
                entry.apply(fetched)

            if paths.nsname not in self._ensured:  # a stat here, a HEAD on an object store
                ensure_dirs(self.medium, paths, namespace)
                self._ensured.add(paths.nsname)
            if namespace not in self._coded:
                self._note_code(namespace, paths.nsname)
            self._commit(state, lambda: state.put(kind, chunk, claims, tdoc, change))
            if len(state.doc.segments) >= self.compact_at:
                state.compact(True, self.leases)
            else:
                state.release(self.leases)
            return entry

    def _recheck_namespace(self, namespace: str, paths: KeyPaths) -> None:
        """Before a key's first record: is the namespace this store wrote still there?

        Another store's ``clear()`` removes the namespace directory, and with it
        namespace.json and code.json, which this one remembers having written:
        without them the keys written next are listed by directory name, skipped
        by ``compact()`` over the store and lose the code-change warning. One
        ``stat`` per new key (a HEAD on an object store).
        """
        if paths.nsname in self._ensured and not self.medium.exists(
            f"{paths.nsname}/namespace.json"
        ):
            self._ensured.discard(paths.nsname)
            self._coded.discard(namespace)

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
            state.checked = time.monotonic()  # the log as of this commit
            self._memory.keep(state)

    def forget(
        self, namespace: str, key: Hashable, lo: int | None = None, hi: int | None = None
    ) -> None:
        prefix = self._paths(namespace, key).prefix
        with self.medium.lock(prefix), self._writer(prefix):
            if lo is None and hi is None:
                self._memory.drop(namespace, key)
                self.medium.remove_tree(prefix)
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
