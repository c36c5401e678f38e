"""One stored key as a process holds it: the entry and the ledger it came from.

A :class:`KeyState` is built from a key's ledger without loading rows (they
load window by window through :class:`~rangememo._lazy.SegmentRows`), catches
up in place when another process only appended segments (or compacted them
away under a slow reader), and commits a change by writing the ledger after
its segment. A damaged segment found on the way is uncovered and repaired
(:mod:`rangememo._repair`), so its range is fetched again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable
from typing import Any

import pyarrow as pa

from ._codec import decode, piece_template, template_from_json, template_to_json
from ._compact import compact, plan
from ._entry import Entry
from ._frames import FrameAdapter, adapter_named
from ._layout import Doc, KeyPaths, NewerLedger, Sig, read_doc, write_doc
from ._lazy import SegmentRows, StoredLedger, shown, visible
from ._ledger import Ledger
from ._merge import Chunk
from ._repair import repair_segment, warn_damaged
from ._segments import MAX_POS, MIN_POS, Damaged, Segment, read_segment

__all__ = ["KeyState"]

log = logging.getLogger("rangememo")


class KeyState:
    """A key's entry plus the ledger (``doc``, signature ``sig``) it reflects."""

    __slots__ = (
        "doc",
        "durable",
        "entry",
        "key",
        "lock",
        "namespace",
        "on_load",
        "paths",
        "pieces",
        "sig",
        "tdoc",
        "tobj",
    )

    def __init__(
        self,
        namespace: str,
        key: Hashable,
        paths: KeyPaths,
        *,
        durable: bool = True,
        on_load: Callable[[KeyState], None] | None = None,
    ) -> None:
        self.namespace, self.key, self.paths = namespace, key, paths
        self.durable = durable
        self.on_load = on_load  # the store re-measures the entry after a load
        self.entry = Entry(ledger=StoredLedger(probe=self.probe))
        self.doc = Doc()
        self.sig: Sig | None = None
        self.tobj: Any = None  # the template object whose JSON form is ``tdoc``
        self.tdoc: Any = None
        # Piece templates: read from segments (JSON -> template) and written (schema -> JSON).
        self.pieces: tuple[dict[bytes, Any], dict[Any, Any]] = ({}, {})
        self.lock = threading.Lock()  # one catch-up at a time

    # -- opening -------------------------------------------------------------------
    def open(self, doc: Doc, sig: Sig) -> KeyState:
        """Take the ledger ``doc``; raises :class:`Damaged` if its schema is unreadable."""
        self.doc, self.sig = doc, sig
        ledger = StoredLedger.from_json(doc.ledger)
        assert isinstance(ledger, StoredLedger)
        ledger.probe = self.probe
        self.entry = entry = Entry(ledger=ledger, version=doc.generation)
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
            raise Damaged(self.paths.ledger, f"unreadable schema ({exc})") from exc
        self.tdoc = schema["template"]
        entry.adapter, entry.template, entry.axis = adapter, self.tobj, axis
        entry.follows_tz = bool(schema.get("follows_tz", False))
        entry.rows = SegmentRows(adapter, visible(doc.segments), self.load)
        entry.rows.mixed = _mixed(doc.segments)
        return self

    def start(self, adapter: Any, axis: Any) -> None:
        """Give a new key its (empty) rows before the first commit."""
        entry = self.entry
        if entry.rows is None:
            entry.adapter, entry.axis = adapter, axis
            entry.rows = SegmentRows(adapter, [], self.load)

    def extend(self, doc: Doc, sig: Sig) -> bool:
        """Catch up in place if ``doc`` only appended segments; else leave it (False)."""
        old, n = self.doc, len(self.doc.segments)
        entry, rows = self.entry, self.entry.rows
        if (
            not isinstance(rows, SegmentRows)
            or entry.adapter is None
            or old.schema is None
            or doc.schema is None
            or doc.generation < old.generation
            or doc.segments[:n] != old.segments
            or any(old.schema[k] != doc.schema[k] for k in ("kind", "index", "axis"))
        ):
            return False
        with entry.lock:
            if doc.schema["template"] != self.tdoc:
                try:
                    template = _template(entry.adapter.kind, doc.schema["template"])
                except (KeyError, TypeError, ValueError, pa.ArrowException):
                    return False
                self.tobj = entry.template = template
                self.tdoc = doc.schema["template"]
            for seg in doc.segments[n:]:
                rows.add_segment(seg)
            rows.mixed = rows.mixed or _mixed(doc.segments)
            self._take_ledger(doc)
        self.doc, self.sig = doc, sig
        return True

    # -- reading -------------------------------------------------------------------
    def load(self, seg: Segment, lo: int, hi: int) -> tuple[int, int, Chunk]:
        """Rows of one segment for a window (the loader of :class:`SegmentRows`)."""
        entry = self.entry
        assert seg.file is not None and entry.adapter is not None
        path = self.paths.keydir / seg.file
        known_lo, known_hi, positions, table = read_segment(path, seg, lo, hi)
        kind = entry.adapter.kind
        try:
            # A segment reads back with its own piece's dtypes (older ones: the key's).
            template = piece_template(kind, table, self.pieces[0])
            data = decode(kind, table, entry.template if template is None else template)
        except (ValueError, TypeError, KeyError, pa.ArrowException) as exc:
            raise Damaged(path, f"rows do not decode ({exc})", seg) from exc
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
                if not self._moved_on(exc):
                    self.damaged(exc)
        if loaded and self.on_load is not None:
            self.on_load(self)

    def load_small(self, limit: int) -> None:
        """Load the whole key now if it has at most ``limit`` rows on disk."""
        rows = self.entry.rows
        if isinstance(rows, SegmentRows) and 0 < rows.pending_rows <= limit:
            self.probe(MIN_POS, MAX_POS)

    def _moved_on(self, exc: Damaged) -> bool:
        """Was the part not damaged but compacted away by another process? Then reopen.

        Replaced parts outlive the ledger that named them by ``grace`` seconds;
        a reader slower than that finds them gone. If the current ledger no
        longer names the part, this state catches up with it in place.
        """
        entry, rows, seg = self.entry, self.entry.rows, exc.segment
        if seg is None or not isinstance(rows, SegmentRows) or entry.adapter is None:
            return False
        try:
            loaded = read_doc(self.paths.ledger)
        except (Damaged, NewerLedger):
            return False
        if loaded is None or any(s.file == seg.file for s in loaded[0].segments):
            return False
        doc, sig = loaded
        old = self.doc.schema or {}
        if doc.schema is None or any(
            old.get(k) != doc.schema[k] for k in ("kind", "index", "axis")
        ):
            return False
        try:
            template = _template(entry.adapter.kind, doc.schema["template"])
        except (KeyError, TypeError, ValueError, pa.ArrowException):
            return False
        with entry.lock:
            self.tobj = entry.template = template
            self.tdoc = doc.schema["template"]
            rows.reset(visible(doc.segments))
            rows.mixed = rows.mixed or _mixed(doc.segments)
            self._take_ledger(doc)
        self.doc, self.sig = doc, sig
        log.debug("%s was compacted away meanwhile: reopened %s", seg.file, self.paths.keydir)
        return True

    def _take_ledger(self, doc: Doc) -> None:
        fresh, ledger, entry = Ledger.from_json(doc.ledger), self.entry.ledger, self.entry
        # Whole values swapped, as every Ledger mutation does: readers see old or new.
        ledger.take(fresh)
        if doc.schema is not None:
            if isinstance(entry.adapter, FrameAdapter):
                entry.adapter.range_index = bool(doc.schema["range_index"])
            entry.follows_tz = bool(doc.schema.get("follows_tz", False))
        entry.version = doc.generation

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
        repair_segment(self.paths, seg, durable=self.durable)

    # -- writing (the caller holds the key's lock) -------------------------------------
    def commit(self, seg: Segment, change: Callable[[], None], tdoc: Any) -> None:
        """Apply ``change`` to the entry, then write the ledger naming ``seg`` last.

        On failure the entry may hold the change while the disk does not: the
        caller must drop this state.
        """
        entry, old = self.entry, self.doc
        with entry.lock:
            change()
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
        doc = Doc(
            ledger=entry.ledger.to_json(),
            segments=[*old.segments, seg],
            schema=schema,
            generation=old.generation + 1,
            retired=list(old.retired),
        )
        sig = write_doc(self.paths, doc, durable=self.durable)
        self.doc, self.sig, self.tdoc, self.tobj = doc, sig, tdoc, entry.template
        entry.version = doc.generation

    def compact(self, at: int, full: bool, grace: float) -> int:
        """Merge segments per :func:`~rangememo._compact.plan`; segments merged away."""
        runs = plan(self.doc.segments, at, full)
        if not runs:
            return 0
        try:
            doc, sig, moved = compact(self.paths, self.doc, runs, durable=self.durable, grace=grace)
        except Damaged as exc:
            self.damaged(exc)
            return 0
        except OSError as exc:  # what was committed stays; compaction can wait
            log.warning("compaction of %s failed: %s", self.paths.keydir, exc)
            return 0
        if isinstance(self.entry.rows, SegmentRows):
            self.entry.rows.rebind(moved)
        before = len(self.doc.segments)
        self.doc, self.sig = doc, sig
        self.entry.version = doc.generation
        return before - len(doc.segments)


def _template(kind: str, doc: Any) -> Any:
    """A stored key template (``None``: the key's answers so far were all ``None``)."""
    return None if doc is None else template_from_json(kind, doc)


def _mixed(segments: list[Segment]) -> bool:
    """Do the key's segments hold rows of more than one schema?"""
    return len({s.schema for s in segments if s.file is not None}) > 1
