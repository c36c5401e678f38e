"""Compaction and garbage collection of one key (run by a holder of the key's lock).

Compaction merges a run of adjacent segments into one file of 64k-row row
groups, using the commit protocol of a write: the merged file is written and
renamed first, then the ledger is replaced to name it instead of the run. The
run's old files are *retired*, not deleted: a reader that opened the previous
ledger may still read them, so they go only once ``grace`` seconds have passed
(at a later compaction or ``gc``). A crash at any point leaves either the old
ledger (the merged file is an orphan) or the new one (the old files are
retired); both read the same rows.

Which run: size-tiered from the newest end. A segment joins the run while it
holds no more rows than the run so far (or fewer than one row group), so each
row is rewritten O(log N) times in all and appends stay O(appended) amortised.
Only parts with the same Arrow schema merge: a part written before the provider
added a column keeps its own (the merge must not turn "column absent" into
nulls of another dtype).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import portion as P
import pyarrow as pa

from ._codec import POS
from ._layout import Doc, KeyPaths, Sig, write_doc
from ._lazy import claimed, visible
from ._ledger import pairs
from ._segments import ROW_GROUP, Segment, crashpoint, read_segment, write_segment

__all__ = ["compact", "plan", "sweep"]

log = logging.getLogger("rangememo")

Run = tuple[int, int]


def _joins(schema: str | None, seg: Segment) -> bool:
    return schema is None or seg.schema is None or seg.schema == schema


def plan(segments: Sequence[Segment], at: int, full: bool = False) -> list[Run]:
    """The runs ``[i, j)`` of segments to merge (disjoint, in order)."""
    if full:
        runs, i, schema = [], 0, None
        for j, seg in enumerate(segments):
            if not _joins(schema, seg):
                runs.append((i, j))
                i, schema = j, None
            schema = schema or seg.schema
        runs.append((i, len(segments)))
        return [(a, b) for a, b in runs if b - a >= 2]
    if len(segments) < at:
        return []
    j = i = len(segments) - 1
    total, schema = segments[i].rows, segments[i].schema
    while i > 0:
        seg = segments[i - 1]
        if not _joins(schema, seg) or seg.rows > max(total, ROW_GROUP):
            break
        i, total, schema = i - 1, total + seg.rows, schema or seg.schema
    if j + 1 - i >= 2:
        return [(i, j + 1)]
    # Sizes that shrink towards the newest part defeat the tiers: merge it all.
    return plan(segments, at, full=True) if len(segments) >= 2 * at else []


def _merge(paths: KeyPaths, run: Sequence[Segment], durable: bool) -> Segment:
    """One segment holding exactly the rows the run shows (newest wins inside it)."""
    claims = tuple(pairs(P.Interval(*(claimed(s) for s in run))))
    loaded: dict[str, tuple[np.ndarray, pa.Table]] = {}
    for seg in run:
        if seg.file is not None and seg.rows:
            _, _, pos, table = read_segment(paths.keydir / seg.file, seg, 0, 0, whole=True)
            loaded[seg.file] = (pos, table)
    positions, tables = [], []
    for a, b, seg in visible(run):
        pos, table = loaded[seg.file or ""]
        i, j = (int(x) for x in np.searchsorted(pos, [a, b]))
        positions.append(pos[i:j])
        tables.append(table.slice(i, j - i))
    if not tables:
        return Segment(None, claims)
    # One schema by construction; metadata may differ in detail: use the newest.
    meta = tables[-1].schema.metadata
    merged = pa.concat_tables([t.replace_schema_metadata(meta) for t in tables])
    merged = merged.append_column(POS, pa.array(np.concatenate(positions), type=pa.int64()))
    return write_segment(paths.keydir, merged, claims, durable=durable, point="compact")


def compact(
    paths: KeyPaths, doc: Doc, runs: list[Run], *, durable: bool = True, grace: float = 300.0
) -> tuple[Doc, Sig, dict[str, Segment]]:
    """Merge ``runs`` of ``doc``; commit the new ledger; return it and old file -> new part.

    Raises :class:`~rangememo._segments.Damaged` (nothing committed) if a part
    of a run cannot be read.
    """
    segments = list(doc.segments)
    now, moved, retired = time.time(), {}, list(doc.retired)
    written: list[Segment] = []
    try:
        for i, j in reversed(runs):
            run = segments[i:j]
            merged = _merge(paths, run, durable)
            written.append(merged)
            segments[i:j] = [merged]
            for seg in run:
                if seg.file is not None:
                    retired.append((seg.file, now))
                    if merged.file is not None:
                        moved[seg.file] = merged
        expired = [f for f, t in retired if now - t >= grace]
        new = Doc(
            ledger=doc.ledger,
            segments=segments,
            schema=doc.schema,
            generation=doc.generation + 1,
            retired=[(f, t) for f, t in retired if now - t < grace],
        )
        sig = write_doc(paths, new, durable=durable)
    except BaseException:
        for seg in written:  # not committed: the merged files are orphans
            _unlink(paths.keydir, seg.file)
        raise
    crashpoint("compact-committed")
    for name in expired:
        _unlink(paths.keydir, name)
    log.debug("compacted %s: %d -> %d segments", paths.keydir, len(doc.segments), len(segments))
    return new, sig, moved


def _unlink(keydir: Path, name: str | None) -> bool:
    if name is None:
        return False
    try:
        os.unlink(keydir / name)
    except FileNotFoundError:
        return False
    except OSError as exc:
        log.warning("could not remove %s: %s", keydir / name, exc)
        return False
    return True


def sweep(keydir: Path, doc: Doc | None) -> list[str]:
    """Remove temp files and segments no ledger names (caller holds the key's lock)."""
    keep = doc.files() if doc is not None else set()
    removed = []
    try:
        names = [e.name for e in os.scandir(keydir) if e.is_file()]
    except FileNotFoundError:
        return []
    for name in names:
        temp = name.startswith(".") and name.endswith(".tmp")
        orphan = name.startswith("seg-") and name.endswith(".parquet") and name not in keep
        if (temp or orphan) and _unlink(keydir, name):
            removed.append(name)
    return removed
