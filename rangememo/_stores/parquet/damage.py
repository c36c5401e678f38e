"""Damaged files: warn, uncover, quarantine (never serve wrong rows).

A reader that finds a segment or a log file it cannot trust warns
(:class:`~rangememo.CacheWarning`), and, holding the key's lock for a moment,
tells the log (a record turns the segment into a tombstone and uncovers the
range it spoke for, so every process fetches it again) and moves the file to
``.quarantine/`` for a post-mortem. A damaged record or checkpoint makes the
key's log untrustworthy: the log is quarantined and the key starts afresh.
If the lock is busy, the next reader does it.
"""

from __future__ import annotations

import logging

from ..._errors import CacheWarning
from ..._warn import warn
from .layout import KeyPaths, NewerLedger, quarantine, stamp
from .local.locks import LockTimeout
from .log import LOG, Record, append, load
from .medium import Medium
from .segments import Damaged, Segment
from .stored_rows import shown

__all__ = ["bad_log", "repair_segment", "warn_damaged"]

log = logging.getLogger("rangememo")

#: How long a reader that found a damaged file waits for the key's lock to record it.
REPAIR_WAIT = 2.0


def warn_damaged(exc: Damaged, what: str) -> None:
    log.warning("damaged cache file %s: %s", exc.path, exc.reason)
    warn(CacheWarning(f"rangememo: {exc.path} is damaged ({exc.reason}); {what}"))


def bad_log(medium: Medium, paths: KeyPaths, exc: Damaged) -> None:
    """An unreadable log: the key counts as empty and its log is quarantined."""
    warn_damaged(exc, "quarantined; the key will be fetched again")
    try:
        with medium.lock(paths.prefix, timeout=REPAIR_WAIT):
            try:
                load(medium, paths.prefix)
            except Damaged:  # still damaged under the lock: not a writer's fresh file
                # Kept together, as ``.quarantine/<key>/log.<stamp>/``.
                folder = f"{LOG}.{stamp()}"
                for name in medium.list(f"{paths.prefix}/{LOG}"):
                    quarantine(medium, paths, f"{LOG}/{name}", f"{folder}/{name}")
                quarantine(medium, paths, "ledger.json")
            except NewerLedger:
                pass
    except (LockTimeout, OSError) as err:
        log.warning(
            "could not quarantine the log of %s yet: %s", medium.describe(paths.prefix), err
        )


def repair_segment(medium: Medium, paths: KeyPaths, seg: Segment, *, durable: bool = True) -> None:
    """Record a damaged segment in the log (a tombstone) and quarantine its file."""
    try:
        with medium.lock(paths.prefix, timeout=REPAIR_WAIT):
            state = load(medium, paths.prefix)
            if state is not None and any(s.file == seg.file for s in state.segments):
                ops: list[list[object]] = [["r", a, b] for a, b in shown(state.segments, seg.file)]
                rec = Record(tomb=seg.file, ops=ops)
                while append(medium, paths.prefix, state, rec) is None:
                    state = load(medium, paths.prefix)
                    if state is None:
                        break
            if seg.file is not None:
                quarantine(medium, paths, seg.file)
    except (LockTimeout, OSError, Damaged) as err:
        where = medium.describe(f"{paths.prefix}/{seg.file}")
        log.warning("could not record the damage of %s yet: %s", where, err)
