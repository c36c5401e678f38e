"""Compaction: which segments merge, the merged file, and its commit (no locks needed).

Policy (tiered by rows). *Small segments merge at once*: a write whose newest
segments hold fewer than ``SMALL_ROWS`` rows together with the new piece
writes one file with all of them (one record replaces the run and adds the
new claims), so a daily key is one file however many days it gets. Past
that, a run grows from the newest end while the next older segment holds no
more rows than the run so far (a binary counter over sizes): a key of ``n``
rows has O(log(n / SMALL_ROWS)) files and each row is rewritten O(log n)
times, so appends stay O(appended) amortised. ``compact()`` (``full``)
merges every run of segments with one schema into one file. Only parts with
the same Arrow schema merge: a part written before the provider added a
column keeps its own.

A merge commits like any write, at exactly ``head + 1`` of the log it read:
if another writer committed meanwhile the merged file is deleted and the
merge is left for later. Replaced files are *retired*: deleted once no
reader can still need them (:mod:`rangememo._stores.parquet.leases`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .claims import outside, union
from .codec import POS
from .log import append
from .logformat import LogState, Record, fold
from .medium import Medium
from .segments import ROW_GROUP, Claim, Segment, crashpoint, read_segment, schema_digest
from .tail import Tail

__all__ = ["SMALL_ROWS", "merge", "plan", "plan_tail", "compact_state", "write_part"]

log = logging.getLogger("rangememo")

#: A run of segments below this many rows is rewritten with every write into it.
SMALL_ROWS = 8192
#: The most rows one write merges, unless it appends more than a quarter of that
#: itself (then four times its own rows): larger tiers are left to ``compact()``,
#: so that no append pays for rewriting a big key (docs/parquet.md, "Growth and
#: compaction"). Measured on minute bars: 16,384 keeps the growth workload's p99
#: under 3x its median; 32,768 does not.
WRITE_MERGE_ROWS = 2 * SMALL_ROWS
#: Parquet codec of every segment (measured in docs/parquet.md: zstd is ~25% smaller than snappy
#: on bars, at the same read speed).
COMPRESSION = "zstd"
#: Below this many rows a segment is written with snappy: its metadata outweighs
#: its values, so zstd saves at most ~5% of the file and costs ~1.7x the write
#: (~420 vs ~250 us at 100 daily bars, docs/parquet.md). The small tail a live
#: key rewrites with every append is such a file.
FAST_ROWS = 256
FAST_COMPRESSION = "snappy"

Run = tuple[int, int]


def _joins(schema: str | None, seg: Segment) -> bool:
    return schema is None or seg.schema is None or seg.schema == schema


def plan_tail(
    segments: Sequence[Segment], rows: int, schema: str | None, budget: int | None = None
) -> int:
    """Where the run that a new piece of ``rows`` rows merges with starts (``len``: none).

    ``budget``: the most rows the merge may rewrite (the write path's bound).
    """
    i, total = len(segments), rows
    while i > 0:
        seg = segments[i - 1]
        if seg.file is None or not seg.rows:  # a tombstone joins for free
            i -= 1
            continue
        if not _joins(schema, seg) or (seg.rows + total > SMALL_ROWS and seg.rows > total):
            break
        if budget is not None and seg.rows + total > max(budget, SMALL_ROWS):
            break
        i, total = i - 1, total + seg.rows
    while i < len(segments) and segments[i].file is None:  # no leading tombstones
        i += 1
    return i


def plan(segments: Sequence[Segment], full: bool = True) -> list[Run]:
    """Runs ``[i, j)`` to merge (disjoint, in order): every same-schema run when ``full``."""
    if not full:
        i = plan_tail(segments[:-1], segments[-1].rows, segments[-1].schema) if segments else 0
        return [(i, len(segments))] if len(segments) - i >= 2 else []
    runs, i, schema = [], 0, None
    for j, seg in enumerate(segments):
        if not _joins(schema, seg):
            runs.append((i, j))
            i, schema = j, None
        schema = schema or seg.schema
    runs.append((i, len(segments)))
    return [(a, b) for a, b in runs if b - a >= 2]


def _dictionary_columns(schema: pa.Schema) -> list[str]:
    """The columns worth dictionary-encoding: all but numbers and times.

    Prices, volumes and timestamps rarely repeat enough: on minute bars their
    dictionaries made files ~10% larger and writes of a few thousand rows ~40%
    slower than plain pages under zstd (docs/parquet.md). Strings, categoricals
    and the rest keep them. The encoding never changes the type read back.
    """
    plain = (pa.types.is_integer, pa.types.is_floating, pa.types.is_temporal, pa.types.is_decimal)
    return [f.name for f in schema if f.name != POS and not any(test(f.type) for test in plain)]


def write_part(
    medium: Medium,
    prefix: str,
    table: pa.Table,
    claims: tuple[Claim, ...],
    point: str,
    schema: str | None = None,
) -> Segment:
    """Write ``table`` (with its position column) as a new segment file; return its record.

    ``schema``: the digest to record (a merge keeps its parts' digest: Parquet
    reads some types back wider, ``timestamp[s]`` as ``[ms]``).
    """
    positions = table.column(POS)
    sink = pa.BufferOutputStream()
    pq.write_table(
        table,
        sink,
        row_group_size=ROW_GROUP,
        compression=COMPRESSION if table.num_rows >= FAST_ROWS else FAST_COMPRESSION,
        write_page_checksum=True,
        # Positions step regularly: delta-encoded they cost next to nothing.
        use_dictionary=_dictionary_columns(table.schema),
        column_encoding={POS: "DELTA_BINARY_PACKED"},
    )
    data = sink.getvalue()
    name = f"seg-{uuid.uuid4().hex}.parquet"
    unique = getattr(medium, "create_unique", None)
    if unique is not None:  # a local directory: no temp file and link for a uuid name
        unique(f"{prefix}/{name}", memoryview(data))
    elif not medium.create(f"{prefix}/{name}", memoryview(data)):  # type: ignore[arg-type]
        raise FileExistsError(f"{prefix}/{name} exists")  # a uuid4 collision: never
    crashpoint(f"{point}-created")
    return Segment(
        name,
        claims,
        table.num_rows,
        int(positions[0].as_py()),
        int(positions[-1].as_py()),
        data.size,
        schema or schema_digest(table.schema),
    )


def merge(
    medium: Medium,
    prefix: str,
    run: Sequence[Segment],
    extra: tuple[pa.Table, tuple[Claim, ...]] | None = None,
    point: str = "compact",
    kept: Sequence[Tail] = (),
    written: list[pa.Table] | None = None,
) -> Segment:
    """One segment with exactly the rows ``run`` (then ``extra``, newest) shows.

    Its ``claims`` are ``extra``'s only: a replacing record adds them to the
    run's (:func:`rangememo._stores.parquet.log.merged`). Raises
    :class:`~rangememo._stores.parquet.segments.Damaged` if a part cannot be read.
    ``kept``: parts' rows already in memory (as their immutable files read back),
    used instead of reading them; ``written`` receives the merged table.
    """
    loaded: dict[str, tuple[np.ndarray[Any, Any], pa.Table]] = {}
    segs = list(run)
    digest = next((s.schema for s in run if s.file is not None), None)
    memory = {t[0]: t for t in kept}
    for seg in run:
        if seg.file is not None and seg.rows:
            name = f"{prefix}/{seg.file}"
            # The tail in memory, if its file is still there: a writer without the
            # lock may have compacted it away, and its absence (as a read's
            # Damaged) is what tells a stale view to catch up before committing.
            tail = memory.get(seg.file)
            if tail is not None and len(tail[1]) == seg.rows and medium.exists(name):
                loaded[seg.file] = (tail[1], tail[2])
                continue
            _, _, pos, table = read_segment(medium, name, seg, 0, 0, whole=True)
            loaded[seg.file] = (pos, table)
    claims: tuple[Claim, ...] = ()
    if extra is not None:
        table, claims = extra
        pos = table.column(POS).to_numpy()
        new = Segment("seg-new.parquet", claims, len(pos), int(pos[0]), int(pos[-1]))
        loaded[new.file or ""] = (pos, table.drop_columns([POS]))
        segs.append(new)
        digest = schema_digest(table.schema)
    # Newest first, by row masks (no per-interval slicing: a key of K disjoint
    # intervals has segments of K claims). A row shows where no later claim
    # holds its position, and inside its own segment's claims (the oldest is
    # exempt: a row of it outside every claim is never shown, whatever file
    # holds it, and where a later claim holds it the later mask drops it).
    positions, tables = [], []
    seen: tuple[Claim, ...] = ()
    for k in range(len(segs) - 1, -1, -1):
        seg = segs[k]
        if seg.file is not None and seg.rows:
            pos, table = loaded[seg.file]
            keep = outside(pos, seen)
            if k:
                keep &= ~outside(pos, seg.claims)
            if not keep.all():
                (idx,) = np.nonzero(keep)
                pos, table = pos[idx], table.take(pa.array(idx))
            if len(pos):
                positions.append(pos)
                tables.append(table)
        if k:
            seen = union(seen, seg.claims)
    positions.reverse()
    tables.reverse()
    if not tables:
        return Segment(None, claims)
    # One schema by construction, but a fresh piece has the types as written
    # (timestamp[s]) and stored parts as read back ([ms]): cast to the latter.
    # Metadata may differ in detail: use the newest.
    meta = tables[-1].schema.metadata
    target = tables[0].schema.with_metadata(meta)
    try:
        merged = pa.concat_tables([t.replace_schema_metadata(meta).cast(target) for t in tables])
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise Unmergeable(f"{prefix}: parts do not merge ({exc})") from exc
    allpos = np.concatenate(positions)
    if len(allpos) > 1 and bool(np.any(allpos[1:] < allpos[:-1])):
        # Segments interleave: order by position. Stable, and two segments never
        # show one position, so rows sharing one keep their order.
        order = np.argsort(allpos, kind="stable")
        allpos, merged = allpos[order], merged.take(pa.array(order))
    merged = merged.append_column(POS, pa.array(allpos, type=pa.int64()))
    if written is not None:
        written.append(merged)
    return write_part(medium, prefix, merged, claims, point, digest)


class Unmergeable(ValueError):
    """Parts whose tables do not concatenate (a write stores its piece on its own)."""


def compact_state(
    medium: Medium, prefix: str, state: LogState, full: bool = True
) -> list[tuple[list[str], Segment]]:
    """Merge runs of ``state`` one record each; ``(replaced files, new segment)`` per merge.

    Stops at a lost race (another writer committed): its merged file is
    deleted, what was committed before stays. Raises
    :class:`~rangememo._stores.parquet.segments.Damaged` (nothing more committed) for an
    unreadable part.
    """
    done: list[tuple[list[str], Segment]] = []
    for i, j in reversed(plan(state.segments, full)):  # the newest first: indices stay valid
        run = state.segments[i:j]
        seg = merge(medium, prefix, run)
        rec = Record(add=seg, replace=(i, j))
        seq = append(medium, prefix, state, rec)
        if seq is None:
            if seg.file is not None:
                medium.delete(f"{prefix}/{seg.file}")
            log.debug("%s: another writer committed; compaction left for later", prefix)
            break
        fold(state, rec, seq)
        crashpoint("compact-committed")
        done.append(([s.file for s in run if s.file is not None], state.segments[i]))
    return done
