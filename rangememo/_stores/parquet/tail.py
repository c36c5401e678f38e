"""The small tail a writer keeps in memory, exactly as its file reads back.

After an append that leaves a small tail, the next append merges that tail
again (:mod:`rangememo._stores.parquet.compaction`). Its file is immutable and
named by a uuid, so the writer keeps the rows it wrote, keyed by the file's
name, instead of reading them back: cast to the types Parquet reads them back
with, which are learnt from Parquet itself (an empty table written and read
back, once per schema). Only exact widenings are trusted (``timestamp[s]`` to
``[ms]``); for any other difference the tail is read as before.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .codec import POS

__all__ = ["TAIL_BYTES", "Tail", "readback"]

#: A writer keeps the small tail it wrote in memory up to this size.
TAIL_BYTES = 1 << 20

#: A segment's rows as its file reads back: ``(file, positions, table without positions)``.
Tail = tuple[str, "np.ndarray[Any, Any]", pa.Table]

_READBACK: dict[pa.Schema, pa.Schema | None] = {}
_UNSEEN = object()


def _readback_schema(schema: pa.Schema) -> pa.Schema | None:
    """The types a table of ``schema`` reads back from Parquet with; ``None``: not a cast.

    Found by writing an empty table and reading it back (once per schema). Only
    exact widenings are trusted to be what a read gives (``timestamp[s]`` to
    ``[ms]``); any other difference (a dictionary's value type) leaves it to a read.
    """
    known = _READBACK.get(schema, _UNSEEN)  # one hash: ~15 µs with a piece's metadata
    if known is not _UNSEEN:
        return known
    sink = pa.BufferOutputStream()
    pq.write_table(schema.empty_table(), sink)
    back = pq.ParquetFile(pa.BufferReader(sink.getvalue())).read(use_pandas_metadata=True).schema
    ok = back.names == schema.names and back.metadata == schema.metadata
    for a, b in zip(schema, back, strict=False):
        if not ok:
            break
        same = a.type == b.type
        wider = (
            pa.types.is_timestamp(a.type)
            and pa.types.is_timestamp(b.type)
            and a.type.tz == b.type.tz
            and (a.type.unit, b.type.unit) in (("s", "ms"), ("s", "us"), ("ms", "us"))
        )
        ok = (same or wider) and a.nullable == b.nullable and a.metadata == b.metadata
    if len(_READBACK) > 64:
        _READBACK.clear()
    _READBACK[schema] = found = back.remove_metadata() if ok else None
    return found


def readback(file: str, table: pa.Table) -> Tail | None:
    """``table`` (as written, with positions) the way ``file`` reads back; ``None``: unsure."""
    try:
        types = _readback_schema(table.schema)
        if types is None:
            return None
        if types.equals(table.schema, check_metadata=False):
            rows = table  # reads back as written (most schemas): no cast (~80 µs)
        else:
            rows = table.cast(types).replace_schema_metadata(table.schema.metadata)
    except (pa.ArrowException, TypeError, ValueError):  # only an optimisation: read instead
        return None
    # A copy, not a view: the table may still share its buffers with a frame a
    # caller holds (a piece written alone is encoded zero-copy), and Arrow is
    # outside pandas' copy-on-write, so the caller's edit would reach the next
    # merge, and the file it writes. take() allocates new buffers (and one chunk).
    rows = rows.take(pa.array(np.arange(rows.num_rows))).combine_chunks()
    return file, rows.column(POS).to_numpy(), rows.drop_columns([POS])
