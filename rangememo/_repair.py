"""Damaged files: warn, uncover, quarantine (never serve wrong rows).

A reader that finds a segment or a ledger it cannot trust warns
(:class:`~rangememo.CacheWarning`), and, holding the key's lock for a moment,
tells the ledger on disk (the segment becomes a tombstone and its range is no
longer covered, so every process fetches it again) and moves the file to
``.quarantine/`` for a post-mortem. If the lock is busy, the next reader does it.
"""

from __future__ import annotations

import logging

from ._errors import CacheWarning
from ._layout import Doc, KeyPaths, quarantine, read_doc, write_doc
from ._lazy import shown
from ._ledger import Ledger
from ._locks import LockTimeout, hold
from ._segments import Damaged, Segment
from ._warn import warn

__all__ = ["bad_ledger", "repair_segment", "warn_damaged"]

log = logging.getLogger("rangememo")

#: How long a reader that found a damaged file waits for the key's lock to record it.
REPAIR_WAIT = 2.0


def warn_damaged(exc: Damaged, what: str) -> None:
    log.warning("damaged cache file %s: %s", exc.path, exc.reason)
    warn(CacheWarning(f"rangememo: {exc.path} is damaged ({exc.reason}); {what}"))


def bad_ledger(paths: KeyPaths, exc: Damaged) -> None:
    """An unreadable ledger: the key counts as empty and the file is quarantined."""
    warn_damaged(exc, "quarantined; the key will be fetched again")
    try:
        with hold(paths.lock, timeout=REPAIR_WAIT):
            try:
                read_doc(paths.ledger)
            except Damaged:  # still damaged under the lock: not a writer's fresh file
                quarantine(paths, paths.ledger)
    except (LockTimeout, OSError) as err:
        log.warning("could not quarantine %s yet: %s", paths.ledger, err)


def repair_segment(paths: KeyPaths, seg: Segment, *, durable: bool = True) -> None:
    """Record a damaged segment in the ledger on disk and quarantine its file."""
    try:
        with hold(paths.lock, timeout=REPAIR_WAIT):
            loaded = read_doc(paths.ledger)
            if loaded is not None and _uncover(loaded[0], seg):
                write_doc(paths, loaded[0], durable=durable)
            if seg.file is not None and (paths.keydir / seg.file).exists():
                quarantine(paths, paths.keydir / seg.file)
    except (LockTimeout, OSError, Damaged) as err:
        log.warning("could not record the damage of %s yet: %s", paths.keydir / str(seg.file), err)


def _uncover(doc: Doc, seg: Segment) -> bool:
    """Turn ``seg`` into a tombstone in ``doc`` and uncover the ranges it spoke for."""
    idx = [i for i, s in enumerate(doc.segments) if s.file == seg.file]
    if not idx:
        return False
    ledger = Ledger.from_json(doc.ledger)
    for a, b in shown(doc.segments, seg.file):
        ledger.remove(a, b)
    doc.segments[idx[0]] = Segment(None, seg.claims)
    doc.ledger, doc.generation = ledger.to_json(), doc.generation + 1
    return True
