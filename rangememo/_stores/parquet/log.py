"""A key's ledger as a log of immutable records (the commit protocol, on a Medium).

Each commit adds one record ``log/<seq>.json`` (``seq`` zero-padded, from 1),
created only if absent: the claims' ledger operations, the segment it adds
(or the run of segments it replaces, for a merge), the schema when it
changes. Every ``CHECKPOINT_EVERY`` records — or sooner, once the records
since the last checkpoint weigh as much as it does, so a small key carries
one or two — a writer folds the log into ``log/<seq>.checkpoint.json``
(created if absent, same content whoever writes it) and deletes what came
before, in ascending order. Readers load the newest checkpoint plus the
records after it; a reader at ``seq`` is up to date while record ``seq + 1``
does not exist *and* the file it read last (its *anchor*) still does:
deletion runs in ascending order, so a deleted successor implies a deleted
anchor. Nothing here renames over a file, relies on directory fsync order or
takes a lock: :mod:`rangememo._stores.parquet.local.medium` and an object store both run it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..._core.ledger import Ledger
from .layout import Doc
from .logformat import (
    CHECKPOINT_EVERY,
    LEGACY,
    LOG,
    LogState,
    Record,
    _damaged,
    _from_checkpoint,
    _from_legacy,
    checkpoint_name,
    fold,
    parse_record,
    record_name,
)
from .medium import Medium
from .segments import crashpoint

__all__ = [
    "CHECKPOINT_EVERY",
    "LOG",
    "LogState",
    "Overtaken",
    "Record",
    "append",
    "catch_up",
    "checkpoint",
    "is_log_file",
    "load",
    "up_to_date",
]

log = logging.getLogger("rangememo")


def is_log_file(name: str) -> bool:
    """Is ``name`` a record's or a checkpoint's file name?"""
    return _seq(name) is not None


def _seq(name: str) -> tuple[int, bool] | None:
    stem, _, rest = name.partition(".")
    if not stem.isdigit() or rest not in ("json", "checkpoint.json"):
        return None
    return int(stem), rest != "json"


def load(medium: Medium, prefix: str, ledger: type[Ledger] = Ledger) -> LogState | None:
    """The key's state now; ``None`` if nothing was ever committed.

    Raises :class:`Damaged` (a record or checkpoint unreadable) or
    :class:`~rangememo._stores.parquet.layout.NewerLedger`.
    """
    for _ in range(8):  # a checkpoint landing meanwhile deletes what was listed
        names = [s for s in map(_seq, medium.list(f"{prefix}/{LOG}")) if s is not None]
        ckpts = [s for s, c in names if c]
        if ckpts:
            name = checkpoint_name(prefix, max(ckpts))
            data = _read(medium, name)
            if data is None:
                continue
            state = _from_checkpoint(data, name, ledger)
        else:
            legacy = _legacy(medium, prefix, ledger)
            if legacy is None and not any(s == 1 for s, _ in names):
                return None
            state = legacy if legacy is not None else LogState(ledger=ledger())
        if catch_up(medium, prefix, state) is not None:
            return state
    raise _damaged(f"{prefix}/{LOG}", "the log keeps changing under the reader")


def _legacy(medium: Medium, prefix: str, ledger: type[Ledger]) -> LogState | None:
    name = f"{prefix}/{LEGACY}"
    data = _read(medium, name)
    if data is None:
        return None
    try:
        doc = Doc.from_bytes(data)
    except (ValueError, KeyError, TypeError) as exc:
        raise _damaged(name, f"unreadable ledger ({type(exc).__name__}: {exc})") from exc
    return _from_legacy(doc, name, ledger)


def _read(medium: Medium, name: str) -> bytes | None:
    """A log file's bytes; a directory in its place is damage (``repair`` moves it
    aside), not an absent file a writer would then fail to create forever."""
    try:
        return medium.read(name)
    except IsADirectoryError as exc:
        raise _damaged(name, "a directory where a log file belongs") from exc


def catch_up(
    medium: Medium,
    prefix: str,
    state: LogState,
    apply: Callable[[Record, int], bool | None] | None = None,
) -> int | None:
    """Apply the records after ``state.seq``; how many, or ``None`` if the state is lost.

    ``apply`` replaces :func:`fold` (a key state also updates its rows); it
    returns ``False`` for a record already folded (the next one is read).
    ``None``: the anchor is gone (a checkpoint deleted the records in
    between): load afresh.
    """
    n = 0
    while True:
        seq = state.seq + 1
        name = record_name(prefix, seq)
        data = _read(medium, name)
        if data is None:
            if not anchor_holds(medium, state):
                return None
            return n
        # An overtaken writer may have recreated a pruned number (Overtaken):
        # the record is this log's only if its number was never pruned.
        if not _genuine(medium, prefix, state):
            return None
        rec = parse_record(data, name)
        if apply is None:
            fold(state, rec, seq)
        elif apply(rec, seq) is False:
            # Folded meanwhile by a writer of this process (it appends, then
            # folds its record into the very state being caught up): applying
            # it again would retire the segment it just added.
            continue
        state.anchor, state.stamp, state.since = name, None, state.since + 1
        state.since_bytes += len(data)
        n += 1


def up_to_date(medium: Medium, prefix: str, state: LogState) -> bool:
    """The hit path's check: no next record, and the anchor still there (two stats)."""
    return not medium.exists(record_name(prefix, state.seq + 1)) and anchor_holds(medium, state)


def anchor_holds(medium: Medium, state: LogState) -> bool:
    """Is the file this state read last still there, and still the same file?

    The same name is not enough: a key cleared by another process and written
    again from record 1 has a record of that number too, and a state that took
    it for its own would fold the new log's later records onto the old one's (a
    fork: wrong rows). The medium's stamp (inode, mtime and size; an ETag) is
    taken right after the anchor was created (:func:`append`, :func:`checkpoint`),
    or the first time it is checked, which for a file read is at the end of
    the very catch-up that read it.
    """
    if not state.anchor:
        return True
    return _same_anchor(medium, state) is True


def _same_anchor(medium: Medium, state: LogState) -> bool | None:
    """Is the anchor (``state.anchor``, set) the file this state read or created?

    ``None``: it is gone; ``False``: there as another file (the key cleared and
    written again). The stamp is taken on the first look if none was yet.
    """
    stamp = medium.stamp(state.anchor)
    if stamp is None:
        return None
    if state.stamp is None:
        state.stamp = stamp
    return stamp == state.stamp


class Overtaken(OSError):
    """A record was created at a number the log had already folded and pruned.

    Create-if-absent cannot tell a free name from a deleted one: a writer
    whose head was folded into a checkpoint (and the records pruned) after it
    read it recreates an old number. Nobody reads that record (loads start at
    the newer checkpoint), but the writer must not go on from it, and it may
    equally have been a real commit folded at once: whether it counts is
    unknown, so the caller drops its state and keeps the segment (``gc``
    removes it if no record names it).
    """


def append(medium: Medium, prefix: str, state: LogState, rec: Record) -> int | None:
    """Create record ``state.seq + 1``; its seq, or ``None`` if another writer took it.

    The caller catches up and decides (a plain record is retried at the new
    head: its segment stays valid; a merge replacing segments by position is
    dropped). Raises :class:`Overtaken` if the number was free only because
    a checkpoint had pruned it.
    """
    seq = state.seq + 1
    name = record_name(prefix, seq)
    data = rec.to_bytes(seq)
    if not medium.create(name, data):
        return None
    crashpoint("record-created")
    if not _genuine(medium, prefix, state):
        raise Overtaken(f"{name}: the log was folded past this writer's head")
    state.anchor, state.stamp, state.since, state.since_bytes = (
        name,
        _stamp_now(medium, name),
        state.since + 1,
        state.since_bytes + len(data),
    )
    return seq


def _stamp_now(medium: Medium, name: str) -> str | None:
    """The stamp of a file this writer just created, taken at once.

    Not at the next check: by then another process may have cleared the key
    and written it again up to this very number, and the writer would take
    that file's stamp for its own (and fold the new log's records onto the
    old state: wrong rows). A failed look leaves it to the next check, as
    before: the record is committed either way.
    """
    try:
        return medium.stamp(name)
    except OSError:
        return None


def _genuine(medium: Medium, prefix: str, state: LogState) -> bool:
    """Was record ``state.seq + 1`` (just read or created) never pruned?

    Deletion runs in ascending order and a checkpoint is deleted only by a
    newer one's prune: while the anchor is there, the next number was never
    pruned; once it is gone (or for a new key, which has none), a checkpoint
    at or past that number exists exactly when it might have been.
    """
    if state.anchor:
        same = _same_anchor(medium, state)
        if same is not None:
            # The anchor there as another file: the key was cleared and written
            # again (a new log, whose records must not fold onto this state).
            return same
    return not _folded(medium, prefix, state.seq + 1)


def _folded(medium: Medium, prefix: str, seq: int) -> bool:
    """Is there a checkpoint at ``seq`` or later?"""
    return any(c and s >= seq for s, c in filter(None, map(_seq, medium.list(f"{prefix}/{LOG}"))))


def checkpoint(medium: Medium, prefix: str, state: LogState) -> bool:
    """Fold the log into a checkpoint at ``state.seq``, then delete what it makes obsolete."""
    if state.legacy:
        state.legacy = False
    data = state.checkpoint_bytes()
    name = checkpoint_name(prefix, state.seq)
    if _folded(medium, prefix, state.seq + 1):
        return False  # a newer checkpoint exists: an old one would bring back a pruned name
    # If it exists, another writer folded the same records.
    if medium.create(name, data) and _folded(medium, prefix, state.seq + 1):
        medium.delete(name)  # overtaken meanwhile: take the old name back out
        return False
    crashpoint("checkpoint-created")
    state.anchor, state.since, state.since_bytes, state.base_bytes = name, 0, 0, len(data)
    state.stamp = _stamp_now(medium, name)
    prune(medium, prefix, state.seq)
    return True


def prune(medium: Medium, prefix: str, upto: int) -> None:
    """Delete records ``<= upto`` and checkpoints ``< upto``, in ascending order."""
    # The format-1 ledger.json is seq 0: it goes first, like every older file.
    if medium.exists(f"{prefix}/{LEGACY}"):
        medium.delete(f"{prefix}/{LEGACY}")
        medium.delete(f"{prefix}/key.json")  # the checkpoint holds the key now
    old = [s for s in map(_seq, medium.list(f"{prefix}/{LOG}")) if s is not None]
    for seq, is_ckpt in sorted(old):
        if seq > upto or (is_ckpt and seq == upto):
            continue
        medium.delete(checkpoint_name(prefix, seq) if is_ckpt else record_name(prefix, seq))
        crashpoint("prune-deleted")
