"""Writing a stored key: a piece (merged with a small tail), a record, checkpoints, merges.

The caller holds the key's lock (which only keeps two processes from fetching
one range twice: every step is create-if-absent, see :mod:`rangememo._stores.parquet.log`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..._core.rows import Chunk
from . import compaction as _compaction
from . import tail as _tail
from .codec import encode
from .compaction import SMALL_ROWS, Unmergeable, compact_state, merge, plan_tail, write_part
from .layout import key_doc
from .leases import Leases, readers
from .log import Overtaken, append, catch_up, checkpoint
from .logformat import Record, fold
from .medium import StorageUnavailable
from .segments import Claim, Damaged, Segment, crashpoint, schema_digest
from .stored_rows import SegmentRows, StoredLedger

if TYPE_CHECKING:
    from .key import KeyState

__all__ = ["LostRace", "commit", "compact", "fold_log", "put", "release"]

log = logging.getLogger("rangememo")


class LostRace(OSError):
    """Another writer committed a record this merge was based on: nothing committed."""


def put(
    state: KeyState,
    kind: str,
    chunk: Chunk,
    claims: tuple[Claim, ...],
    tdoc: Any,
    change: Callable[[], None],
) -> None:
    """Write ``chunk`` (merged with a small tail), then commit its record."""
    segs, prefix = state.doc.segments, state.paths.prefix
    if not len(chunk):  # a tombstone: trailing ones collapse into it
        i = len(segs)
        while i > 0 and segs[i - 1].file is None:
            i -= 1
        rec = Record(add=Segment(None, claims), replace=(i, len(segs)) if i < len(segs) else None)
        commit(state, rec, change, tdoc)
        return
    table = encode(kind, chunk.data, chunk.positions, state.piece_doc(chunk.data))
    budget = max(_compaction.WRITE_MERGE_ROWS, 4 * table.num_rows)
    i = plan_tail(segs, table.num_rows, schema_digest(table.schema), budget)
    seg, kept, written = None, state.kept, [table]
    state.kept = ()  # kept again below if this write leaves a small tail
    if any(s.file is not None for s in segs[i:]):
        try:
            seg = merge(
                state.medium,
                prefix,
                segs[i:],
                (table, claims),
                point="segment",
                kept=kept,
                written=written,
            )
        except Damaged as exc:
            # A part compacted away by another writer is not damage: catch up.
            if not state.moved_on(exc):
                state.damaged(exc)
                state.catch_up()  # the repair's record
            i = len(state.doc.segments)
        except Unmergeable as exc:
            log.debug("%s", exc)
            i = len(state.doc.segments)
    if seg is None:
        seg = write_part(state.medium, prefix, table, claims, "segment")
    n = len(state.doc.segments)
    try:
        commit(state, Record(add=seg, replace=(i, n) if i < n else None), change, tdoc)
    except (Overtaken, StorageUnavailable):
        # A record may name the segment: overtaken, or a create whose answer was
        # lost (the PUT may have landed though every retry failed). gc decides.
        raise
    except BaseException:
        if seg.file is not None:  # no record names it: gone (gc would sweep it anyway)
            state.medium.delete(f"{prefix}/{seg.file}")
        raise
    if n and seg.file is not None and seg.rows <= SMALL_ROWS and not state.stale:
        # An append onto a small tail: the next one merges this file again. Its
        # rows stay here as the file reads back (it never changes), not read again.
        tail = _tail.readback(seg.file, written[-1])
        if tail is not None and tail[2].nbytes <= _tail.TAIL_BYTES:
            # The tail before it, if this write left it alone (it became a full
            # tier): the merge of the new tail into it, ~20 appends later on
            # minute bars, would otherwise read it back (~2-7 ms, the p99).
            live = {s.file for s in state.doc.segments[-3:-1]}
            state.kept = (*[t for t in kept if t[0] in live][-1:], tail)


def commit(state: KeyState, rec: Record, change: Callable[[], None], tdoc: Any) -> None:
    """Apply ``change`` to the entry, then append ``rec`` with the ledger operations.

    On failure the entry may hold the change while the log does not: the
    caller must drop this state.
    """
    entry, doc = state.entry, state.doc
    ledger = entry.ledger
    assert isinstance(ledger, StoredLedger)
    old = doc.segments[rec.replace[0] : rec.replace[1]] if rec.replace else []
    with entry.lock:
        ops: list[list[object]] = []
        ledger.journal = ops
        try:
            change()
        finally:
            ledger.journal = None
    rec.ops = ops
    adapter = entry.adapter
    assert adapter is not None and entry.axis is not None
    schema = {
        "kind": adapter.kind,
        "index": adapter.index,
        "range_index": bool(getattr(adapter, "range_index", False)),
        "axis": list(entry.axis),
        "follows_tz": entry.follows_tz,  # answers shown in the caller's zone
        "template": tdoc,
    }
    if schema != doc.schema:
        rec.schema = schema
    if doc.key is None:
        rec.key = key_doc(state.key)
    # Appended and folded under the state's catch-up lock: a reader of this
    # process catching up meanwhile would otherwise read the record just
    # appended and apply it to this state too (its segment then retired while
    # live, and deleted under later readers).
    with state.lock:
        try:
            seq = append(state.medium, state.paths.prefix, doc, rec)
        except Overtaken:
            state.stale = True  # the caller drops this state
            raise
        while seq is None:  # lost a race (no lock): record order is newest-wins order
            if rec.replace is not None:
                raise LostRace(f"{state.paths.prefix}: another writer committed first")
            state.stale = True
            if catch_up(state.medium, state.paths.prefix, doc) is None:
                raise LostRace(f"{state.paths.prefix}: the log moved on under a writer")
            seq = append(state.medium, state.paths.prefix, doc, rec)
        with entry.lock:
            fold(doc, rec, seq, ledger=False)
            if old and isinstance(entry.rows, SegmentRows) and rec.add is not None:
                entry.rows.rebind({s.file: doc.segments[rec.replace[0]] for s in old if s.file})  # type: ignore[index]
    state.tdoc, state.tobj = tdoc, entry.template
    entry.version = seq
    fold_log(state)


def fold_log(state: KeyState) -> None:
    """Write a checkpoint if one is due (a commit already landed: failures only log)."""
    if not state.doc.due(getattr(state.medium, "fold_after", 1)) or state.stale:
        # A writer that lost a race applied its change before the records that
        # won: its ledger is not the log's fold (a forget before a write it
        # follows in the log would show the write covered, its rows hidden by
        # the forget's tombstone). The next state read from the log folds it.
        return
    doc = state.doc
    if doc.key is None:
        doc.key = key_doc(state.key)
    doc.retired = [f for f in doc.retired if state.medium.exists(f"{state.paths.prefix}/{f}")]
    try:
        checkpoint(state.medium, state.paths.prefix, doc)
    except OSError as exc:
        log.warning("checkpoint of %s failed: %s", state.medium.describe(state.paths.prefix), exc)


def compact(state: KeyState, full: bool, leases: Leases) -> int:
    """Merge runs of segments (one record each); segments merged away."""
    before, doc = len(state.doc.segments), state.doc
    try:
        done = compact_state(state.medium, state.paths.prefix, doc, full)
    except Damaged as exc:
        if not state.moved_on(exc):  # compacted away meanwhile: left for later
            state.damaged(exc)
        return 0
    except OSError as exc:  # what was committed stays; compaction can wait
        if isinstance(exc, Overtaken):
            state.stale = True  # read afresh from the log next time
        log.warning("compaction of %s failed: %s", state.medium.describe(state.paths.prefix), exc)
        return 0
    rows = state.entry.rows
    if isinstance(rows, SegmentRows):
        for files, seg in done:
            rows.rebind(dict.fromkeys(files, seg))
    state.entry.version = doc.seq
    release(state, leases)
    fold_log(state)
    return before - len(doc.segments)


def release(state: KeyState, leases: Leases) -> list[str]:
    """Delete replaced files no reader can still need; the names deleted."""
    doc, prefix = state.doc, state.paths.prefix
    if not doc.retired or readers(prefix) or leases.others_hold(prefix):
        return []
    gone = list(doc.retired)
    for name in gone:
        state.medium.delete(f"{prefix}/{name}")
        crashpoint("release-deleted")
    doc.retired = []
    return gone
