"""One stored key as a process holds it: the entry and the log state it reflects.

A :class:`KeyState` is built from a key's log (:mod:`rangememo._stores.parquet.log`) without
loading rows (they load window by window through
:class:`~rangememo._stores.parquet.stored_rows.SegmentRows`), catches up *in place* by applying the
records other processes appended (never recomputing what it knew), and
commits a change as one record after its segment. A damaged segment found on
the way is uncovered and repaired (:mod:`rangememo._stores.parquet.damage`), so its range is
fetched again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable
from typing import Any

import pyarrow as pa

from ..._core.entry import Entry
from ..._core.results import FrameAdapter, adapter_named
from ..._core.rows import Chunk
from . import keywrite as _keywrite
from .codec import decode, piece_template, template_from_json, template_to_json
from .damage import repair_segment, warn_damaged
from .layout import KeyPaths
from .leases import Leases, reading
from .log import catch_up, load
from .logformat import LogState, Record, fold
from .medium import Medium
from .segments import (
    MAX_POS,
    MIN_POS,
    Claim,
    Damaged,
    Segment,
    read_segment,
)
from .stored_rows import SegmentRows, StoredLedger, shown, visible
from .tail import Tail

__all__ = ["KeyState"]

log = logging.getLogger("rangememo")


class _Reload(Exception):
    """A record this state cannot apply in place (the kind changed): load afresh."""


class KeyState:
    """A key's entry plus the log state (``doc``) it reflects."""

    __slots__ = (
        "checked",
        "doc",
        "durable",
        "entry",
        "kept",
        "key",
        "lock",
        "medium",
        "namespace",
        "on_load",
        "paths",
        "pieces",
        "stale",
        "tdoc",
        "tobj",
    )

    def __init__(
        self,
        namespace: str,
        key: Hashable,
        paths: KeyPaths,
        medium: Medium,
        *,
        durable: bool = True,
        on_load: Callable[[KeyState], None] | None = None,
    ) -> None:
        self.namespace, self.key, self.paths, self.medium = namespace, key, paths, medium
        self.durable = durable
        self.on_load = on_load  # the store re-measures the entry after a load
        ledger = StoredLedger(probe=self.probe)
        self.entry = Entry(ledger=ledger)
        self.doc = LogState(ledger=ledger)
        self.tobj: Any = None  # the template object whose JSON form is ``tdoc``
        self.tdoc: Any = None
        # Piece templates: read from segments (JSON -> template) and written (schema -> JSON).
        self.pieces: tuple[dict[bytes, Any], dict[Any, Any]] = ({}, {})
        self.lock = threading.Lock()  # one catch-up at a time
        self.stale = False  # the entry holds a change the log ordered differently: drop it
        self.checked = float("-inf")  # time.monotonic() of the last check against the log
        # The small tail this process last wrote, and the full tier before it, in
        # memory as their files read back: the next merges rewrite them.
        self.kept: tuple[Tail, ...] = ()

    @property
    def nbytes(self) -> int:
        """Bytes held in memory: the rows loaded, and the tails kept for the next appends."""
        return self.entry.nbytes + sum(int(t[2].nbytes) for t in self.kept)

    # -- opening -------------------------------------------------------------------
    def open(self, doc: LogState) -> KeyState:
        """Take the log state ``doc``; raises :class:`Damaged` if its schema is unreadable."""
        ledger = doc.ledger
        assert isinstance(ledger, StoredLedger)
        ledger.probe = self.probe
        self.doc = doc
        self.entry = entry = Entry(ledger=ledger, version=doc.seq)
        schema = doc.schema
        if schema is None:
            return self
        try:
            adapter = adapter_named(schema["kind"], schema["index"])
            if isinstance(adapter, FrameAdapter):
                adapter.range_index = bool(schema["range_index"])
            self.tobj = _template(adapter.kind, schema["template"])
            axis = (schema["axis"][0], bool(schema["axis"][1]))
        except (KeyError, TypeError, ValueError, IndexError, pa.ArrowException) as exc:
            raise Damaged(self.medium.describe(doc.anchor), f"unreadable schema ({exc})") from exc
        self.tdoc = schema["template"]
        entry.adapter, entry.template, entry.axis = adapter, self.tobj, axis
        entry.follows_tz = bool(schema.get("follows_tz", False))
        entry.rows = SegmentRows(adapter, [], self.load, segments=doc.segments)
        entry.rows.mixed = _mixed(doc.segments)
        entry.rows.probe = self.probe
        return self

    def start(self, adapter: Any, axis: Any) -> None:
        """Give a new key its (empty) rows before the first commit."""
        entry = self.entry
        if entry.rows is None:
            entry.adapter, entry.axis = adapter, axis
            entry.rows = SegmentRows(adapter, [], self.load)
            entry.rows.probe = self.probe

    def catch_up(self) -> bool:
        """Apply the records appended since in place; ``False``: load afresh instead."""
        try:
            return catch_up(self.medium, self.paths.prefix, self.doc, self._apply) is not None
        except _Reload:
            return False

    def _apply(self, rec: Record, seq: int) -> bool:
        entry, rows, doc = self.entry, self.entry.rows, self.doc
        if seq <= doc.seq:  # this process's writer folded it already (see log.catch_up)
            return False
        if not isinstance(rows, SegmentRows) or entry.adapter is None or doc.schema is None:
            raise _Reload
        if rec.schema is not None and any(
            doc.schema[k] != rec.schema[k] for k in ("kind", "index", "axis")
        ):
            raise _Reload
        if (
            rec.replace is not None
            and (rec.add is None or rec.add.claims)
            and (rec.replace[1] != len(doc.segments))
        ):
            raise _Reload  # never written: only a tail merge adds claims
        template = self.tobj
        if rec.schema is not None and rec.schema["template"] != self.tdoc:
            try:
                template = _template(entry.adapter.kind, rec.schema["template"])
            except (KeyError, TypeError, ValueError, pa.ArrowException) as exc:
                raise _Reload from exc
        gone = shown(doc.segments, rec.tomb) if rec.tomb is not None else []
        old = doc.segments[rec.replace[0] : rec.replace[1]] if rec.replace else []

        def rows_first() -> None:  # rows before ledger: a reader seeing coverage finds rows
            assert isinstance(rows, SegmentRows)
            if gone:
                rows.drop(gone)
            if rec.replace is not None:
                new = doc.segments[rec.replace[0]] if rec.add is not None else None
                if new is not None:
                    rows.rebind({s.file: new for s in old if s.file is not None})
                    if rec.add is not None and rec.add.claims:
                        rows.add_segment(new, rec.add.claims)
            elif rec.add is not None:
                rows.add_segment(rec.add)
            rows.mixed = rows.mixed or _mixed(doc.segments)

        with entry.lock:
            if seq <= doc.seq:  # folded by the writer while this record was read
                return False
            if rec.schema is not None:
                self.tobj = entry.template = template
                self.tdoc = rec.schema["template"]
                if isinstance(entry.adapter, FrameAdapter):
                    entry.adapter.range_index = bool(rec.schema["range_index"])
                entry.follows_tz = bool(rec.schema.get("follows_tz", False))
            fold(doc, rec, seq, rows_first)
            entry.version = seq
        return True

    # -- reading -------------------------------------------------------------------
    def load(self, seg: Segment, lo: int, hi: int) -> tuple[int, int, Chunk]:
        """Rows of one segment for a window (the loader of :class:`SegmentRows`)."""
        entry = self.entry
        assert seg.file is not None and entry.adapter is not None
        name = f"{self.paths.prefix}/{seg.file}"
        with reading(self.paths.prefix):
            known_lo, known_hi, positions, table = read_segment(self.medium, name, seg, lo, hi)
        kind = entry.adapter.kind
        try:
            # A segment reads back with its own piece's dtypes (older ones: the key's).
            template = piece_template(kind, table, self.pieces[0])
            data = decode(kind, table, entry.template if template is None else template)
        except (ValueError, TypeError, KeyError, pa.ArrowException) as exc:
            where = self.medium.describe(name)
            raise Damaged(where, f"rows do not decode ({exc})", seg) from exc
        return known_lo, known_hi, Chunk(positions, data, entry.adapter.nbytes(data))

    def piece_doc(self, data: Any) -> Any:
        """The JSON template of a piece about to be written (``UnstorableError`` if none)."""
        adapter, docs = self.entry.adapter, self.pieces[1]
        assert adapter is not None
        sig = adapter.signature(data)
        doc = docs.get(sig)
        if doc is None:
            if len(docs) > 64:
                docs.clear()
            doc = docs[sig] = template_to_json(adapter.kind, adapter.empty(data))
        return doc

    def probe(self, lo: int, hi: int) -> None:
        """Load ``[lo, hi)``; a damaged segment's range is dropped from the coverage."""
        rows = self.entry.rows
        if not isinstance(rows, SegmentRows) or rows.complete:
            return
        loaded = False
        for _ in range(len(self.doc.segments) + 2):
            try:
                loaded = rows.ensure(lo, hi) or loaded
                break
            except Damaged as exc:
                if not self.moved_on(exc):
                    self.damaged(exc)
        if loaded and self.on_load is not None:
            self.on_load(self)

    def load_small(self, limit: int) -> None:
        """Load the whole key now if it has at most ``limit`` rows on disk."""
        rows = self.entry.rows
        if isinstance(rows, SegmentRows) and not rows.complete and 0 < rows.pending_rows <= limit:
            self.probe(MIN_POS, MAX_POS)

    def moved_on(self, exc: Damaged) -> bool:
        """Was the part not damaged but compacted away by another process? Then catch up.

        Replaced files are deleted once no lease names the key; a reader that
        had not announced itself yet finds them gone. If the log has moved
        past the part, this state follows it (in place, or reloaded).
        """
        seg = exc.segment
        if seg is None or not isinstance(self.entry.rows, SegmentRows):
            return False
        with self.lock:
            if self.catch_up() and all(s.file != seg.file for s in self.doc.segments):
                log.debug("%s was compacted away meanwhile: caught up", seg.file)
                return True
        try:
            fresh = load(self.medium, self.paths.prefix, StoredLedger)
        except (Damaged, OSError):
            return False
        if fresh is None or any(s.file == seg.file for s in fresh.segments):
            return False
        old, entry, rows = self.doc.schema or {}, self.entry, self.entry.rows
        if (
            fresh.schema is None
            or entry.adapter is None
            or any(old.get(k) != fresh.schema[k] for k in ("kind", "index", "axis"))
        ):
            return False
        try:
            template = _template(entry.adapter.kind, fresh.schema["template"])
        except (KeyError, TypeError, ValueError, pa.ArrowException):
            return False
        with entry.lock:
            self.tobj = entry.template = template
            self.tdoc = fresh.schema["template"]
            rows.reset(visible(fresh.segments))
            rows.mixed = rows.mixed or _mixed(fresh.segments)
            assert isinstance(fresh.ledger, StoredLedger)
            fresh.ledger.probe = self.probe
            entry.ledger, entry.version = fresh.ledger, fresh.seq
            self.doc = fresh
        where = self.medium.describe(self.paths.prefix)
        log.debug("%s was compacted away meanwhile: reopened %s", seg.file, where)
        return True

    # -- damage ----------------------------------------------------------------------
    def damaged(self, exc: Damaged) -> None:
        """A segment cannot be read: uncover its range here and on disk, quarantine it."""
        warn_damaged(exc, "quarantined; its range will be fetched again")
        seg, entry = exc.segment, self.entry
        if seg is None or not isinstance(entry.rows, SegmentRows):
            raise exc
        gone = shown(self.doc.segments, seg.file)
        with entry.lock:
            entry.rows.drop(gone)
            for a, b in gone:
                entry.ledger.remove(a, b)
        repair_segment(self.medium, self.paths, seg, durable=self.durable)

    # -- writing (the caller holds the key lock): see rangememo._stores.parquet.keywrite
    def put(
        self,
        kind: str,
        chunk: Chunk,
        claims: tuple[Claim, ...],
        tdoc: Any,
        change: Callable[[], None],
    ) -> None:
        _keywrite.put(self, kind, chunk, claims, tdoc, change)

    def commit(self, rec: Record, change: Callable[[], None], tdoc: Any) -> None:
        _keywrite.commit(self, rec, change, tdoc)

    def compact(self, full: bool, leases: Leases) -> int:
        return _keywrite.compact(self, full, leases)

    def release(self, leases: Leases) -> list[str]:
        return _keywrite.release(self, leases)


def _template(kind: str, doc: Any) -> Any:
    """A stored key template (``None``: the key's answers so far were all ``None``)."""
    return None if doc is None else template_from_json(kind, doc)


def _mixed(segments: list[Segment]) -> bool:
    """Do the key's segments hold rows of more than one schema?"""
    return len({s.schema for s in segments if s.file is not None}) > 1
