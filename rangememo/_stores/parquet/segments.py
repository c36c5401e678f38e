"""Files: atomic writes, fsync, crash points, and segments (immutable Parquet parts).

Every file is written the same way: to a temp file beside its final name
(``.<name>.<random>.tmp``), fsynced, renamed into place, then the directory is
fsynced, so a crash leaves either the old file or the new one. A segment is
never modified after the rename; a key's ledger names the segments it trusts.

A read checks what the ledger recorded (size, row count, position range) and
Parquet's page checksums, so a truncated or corrupted part raises
:class:`Damaged` instead of returning wrong rows.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import uuid
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:
    from .medium import Medium

from .codec import PIECE, POS

__all__ = [
    "CRASH_ENV",
    "ROW_GROUP",
    "Damaged",
    "Segment",
    "crashpoint",
    "fsync_dir",
    "read_segment",
    "segment_name",
    "write_bytes",
    "write_file",
]

log = logging.getLogger("rangememo")

#: Tests set this to a crash point's name to SIGKILL the process there.
CRASH_ENV = "RANGEMEMO_CRASHPOINT"
#: Rows per row group: a window read decodes one group, not the whole part.
ROW_GROUP = 65_536
MIN_POS, MAX_POS = -(2**63), 2**63 - 1

Claim = tuple[int, int]


class Damaged(Exception):
    """A stored file cannot be trusted (missing, truncated, corrupt, inconsistent)."""

    def __init__(self, path: str | PurePath, reason: str, segment: Segment | None = None) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason, self.segment = path, reason, segment


@dataclass(frozen=True, slots=True)
class Segment:
    """One immutable part of a key, as its ledger records it.

    ``claims`` are the ranges the part speaks for: applying it drops older rows
    there and inserts its own (newest wins). A part with ``file=None`` (a
    tombstone: an empty fetch, or a forgotten range) holds no rows.
    """

    file: str | None
    claims: tuple[Claim, ...]
    rows: int = 0
    first: int = 0  # smallest position (when rows > 0)
    last: int = 0  # largest position
    nbytes: int = 0
    schema: str | None = None  # digest of the Arrow schema: only equal ones merge
    # ``to_json`` as compact JSON text, once: a checkpoint writes every segment,
    # and a fragmented key's hold thousands of claims (not copied by replace()).
    _text: str | None = field(default=None, init=False, repr=False, compare=False)

    def json_text(self) -> str:
        """``to_json()`` as compact JSON (computed once: a segment never changes)."""
        text = self._text
        if text is None:
            text = json.dumps(self.to_json(), separators=(",", ":"))
            object.__setattr__(self, "_text", text)
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "claims": [list(c) for c in self.claims],
            "rows": self.rows,
            "first": self.first,
            "last": self.last,
            "bytes": self.nbytes,
            "schema": self.schema,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Segment:
        file = data["file"]
        return cls(
            None if file is None else segment_name(file),
            tuple((int(a), int(b)) for a, b in data["claims"]),
            int(data["rows"]),
            int(data["first"]),
            int(data["last"]),
            int(data["bytes"]),
            data.get("schema"),
        )


def segment_name(name: Any) -> str:
    """``name`` if it is a segment file name; ``ValueError`` for anything path-like."""
    if not (
        isinstance(name, str)
        and name.startswith("seg-")
        and name.endswith(".parquet")
        and os.path.basename(name) == name
        and "\x00" not in name
        and "\\" not in name
    ):
        raise ValueError(f"not a segment file name: {name!r}")
    return name


def crashpoint(name: str) -> None:
    """Die on the spot (SIGKILL) if ``$RANGEMEMO_CRASHPOINT`` names this point.

    Only tests set the variable: they kill a writer between two steps of the
    commit protocol and check that the next process reads exact data.
    """
    if os.environ.get(CRASH_ENV) == name:
        log.debug("crash point %s reached: killing process %d", name, os.getpid())
        os.kill(os.getpid(), signal.SIGKILL)


def write_bytes(fd: int, data: Any) -> None:
    """Write all of ``data`` to ``fd`` (the one place bytes reach the disk)."""
    view = memoryview(data).cast("B")
    while view:
        view = view[os.write(fd, view) :]


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (a no-op where directories cannot be opened)."""
    if os.name == "nt":  # pragma: no cover - Windows commits renames itself
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(
    path: Path, data: Any, *, durable: bool = True, point: str = "", commit: bool = False
) -> os.stat_result:
    """Atomically create or replace ``path`` with ``data`` (temp, fsync, rename, fsync dir).

    On any failure before the rename the temp file is removed, ``path`` is left
    as it was and the error raised. ``commit``: the rename is a commit point (a
    ledger), so a failing directory fsync after it is logged, not raised: the
    new file is in place either way. Returns the new file's ``stat``.
    """
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o644)
    try:
        try:
            write_bytes(fd, data)
            if durable:
                os.fsync(fd)
            st = os.fstat(fd)  # a rename keeps inode, size and mtime
        finally:
            os.close(fd)
        if point:
            crashpoint(f"{point}-written")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:  # already gone, or the disk refuses even that: gc sweeps it
            pass
        raise
    if durable:
        try:
            fsync_dir(path.parent)
        except OSError as exc:
            if not commit:
                raise
            log.warning("fsync of %s failed after the rename of %s: %s", path.parent, path, exc)
    return st


def schema_digest(schema: pa.Schema) -> str:
    """Equal for parts that may be merged into one file (same columns, types and dtypes)."""
    text = schema.to_string(show_schema_metadata=False).encode()
    piece = (schema.metadata or {}).get(PIECE)
    if piece is not None:  # the pandas dtypes too: categories, tz objects
        text += b"\0" + piece
    return hashlib.sha256(text).hexdigest()[:16]


def _group_bounds(meta: Any) -> list[tuple[int, int]] | None:
    """(first, last) position of every row group, from the footer's statistics."""
    rg0 = meta.row_group(0)
    col = next((j for j in range(rg0.num_columns) if rg0.column(j).path_in_schema == POS), None)
    if col is None:
        return None
    out = []
    for i in range(meta.num_row_groups):
        stats = meta.row_group(i).column(col).statistics
        if stats is None or not stats.has_min_max:
            return None
        out.append((int(stats.min), int(stats.max)))
    return out


def read_segment(
    medium: Medium, name: str, seg: Segment, lo: int, hi: int, *, whole: bool = False
) -> tuple[int, int, np.ndarray[Any, np.dtype[np.int64]], pa.Table]:
    """Rows of ``seg`` with ``lo <= position < hi``, checked against its record.

    Returns ``(known_lo, known_hi, positions, table)``: every row of the part
    in ``[known_lo, known_hi)`` (a superset of the request when the part was
    read whole), the table without its position column. Small parts are read
    whole; large ones only in the row groups the window needs.
    """
    path = medium.describe(name)
    try:
        source, size = medium.open_input(name, seg.nbytes)
        if size != seg.nbytes:
            raise Damaged(path, f"{size} bytes on disk, the ledger recorded {seg.nbytes}", seg)
        pf = pq.ParquetFile(source, page_checksum_verification=True)
        meta = pf.metadata
        if meta.num_rows != seg.rows:
            raise Damaged(path, f"{meta.num_rows} rows, the ledger recorded {seg.rows}", seg)
        bounds = None if whole or meta.num_row_groups == 1 else _group_bounds(meta)
        known = (MIN_POS, MAX_POS)
        if bounds is None:
            table = pf.read(use_pandas_metadata=True)
        else:
            chosen = [i for i, (a, b) in enumerate(bounds) if a < hi and b >= lo]
            table = (
                pf.read_row_groups(chosen, use_pandas_metadata=True)
                if chosen
                else pf.schema_arrow.empty_table()
            )
        positions = table.column(POS).to_numpy()
    except (OSError, pa.ArrowException) as exc:
        raise Damaged(path, f"{type(exc).__name__}: {exc}", seg) from exc
    if positions.dtype != np.int64 or (len(positions) and bool(np.any(np.diff(positions) < 0))):
        raise Damaged(path, "positions are not sorted int64", seg)
    if len(positions) and (positions[0] < seg.first or positions[-1] > seg.last):
        raise Damaged(path, "positions outside the range the ledger recorded", seg)
    if bounds is None and len(positions) and (positions[0], positions[-1]) != (seg.first, seg.last):
        raise Damaged(path, "first/last position differ from the ledger", seg)
    if bounds is not None:
        # Only the window is kept (and later converted): slice before decoding.
        i, j = (int(x) for x in np.searchsorted(positions, [lo, hi]))
        table, positions, known = table.slice(i, j - i), positions[i:j], (lo, hi)
    return known[0], known[1], positions, table.drop_columns([POS])
