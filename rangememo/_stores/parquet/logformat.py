"""The log's file formats: records, checkpoints and their fold (pure, no I/O).

See :mod:`rangememo._stores.parquet.log` for the protocol that creates and reads them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..._core.ledger import Ledger
from .claims import union
from .layout import Doc, NewerLedger
from .segments import Damaged, Segment

__all__ = [
    "CHECKPOINT_EVERY",
    "LOG",
    "LogState",
    "Record",
    "apply_ops",
    "checkpoint_name",
    "fold",
    "merged",
    "parse_record",
    "record_name",
    "seal",
    "union",
]

FORMAT = 2
#: At most this many records between two checkpoints (fewer for small keys).
CHECKPOINT_EVERY = 32
LOG = "log"
LEGACY = "ledger.json"
Op = list[Any]  # ["a", lo, hi, fetched, empty] | ["p", lo, hi, fetched, expires] | ["r", lo, hi]


def record_name(prefix: str, seq: int) -> str:
    return f"{prefix}/{LOG}/{seq:010d}.json"


def checkpoint_name(prefix: str, seq: int) -> str:
    return f"{prefix}/{LOG}/{seq:010d}.checkpoint.json"


@dataclass(slots=True)
class Record:
    """One commit: what changes, applied on top of the state before it."""

    add: Segment | None = None  # appended, or the merge of ``replace``
    replace: tuple[int, int] | None = None  # segments[i:j] replaced by ``add``
    tomb: str | None = None  # a damaged segment's file: it becomes a tombstone
    ops: list[Op] = field(default_factory=list)
    schema: dict[str, Any] | None = None  # only when it changes
    key: dict[str, Any] | None = None  # the key's JSON form, in a key's first record

    def to_bytes(self, seq: int) -> bytes:
        body: dict[str, Any] = {"format": FORMAT, "seq": seq, "time": time.time()}
        if self.add is not None:
            body["add"] = self.add.to_json()
        for name in ("replace", "tomb", "schema", "key"):
            value = getattr(self, name)
            if value is not None:
                body[name] = list(value) if name == "replace" else value
        body["ops"] = self.ops
        return seal(body)


@dataclass(slots=True)
class LogState:
    """The fold of a key's log: coverage, segments (commit order), schema."""

    ledger: Ledger = field(default_factory=Ledger)
    segments: list[Segment] = field(default_factory=list)
    schema: dict[str, Any] | None = None
    seq: int = 0
    retired: list[str] = field(default_factory=list)  # replaced files, maybe still on disk
    key: dict[str, Any] | None = None
    updated: float = 0.0
    anchor: str = ""  # the last file read: while it exists, seq + 1 is the next record
    stamp: str | None = None  # the anchor's identity on the medium, once checked
    since: int = 0  # records since the checkpoint
    since_bytes: int = 0
    base_bytes: int = 0  # size of the checkpoint read (0: none)
    legacy: bool = False  # read from a format-1 ledger.json

    @property
    def generation(self) -> int:
        return self.seq

    def files(self) -> set[str]:
        return {s.file for s in self.segments if s.file} | set(self.retired)

    def checkpoint_bytes(self) -> bytes:
        body = {
            "format": FORMAT,
            "seq": self.seq,
            "checkpoint": True,
            "time": self.updated,
            "key": self.key,
            "schema": self.schema,
            "ledger": self.ledger.to_json(),
            "retired": self.retired,
        }
        # The segments go in as the JSON text each keeps of itself (built once).
        text = json.dumps(body, separators=(",", ":"))
        segments = ",".join(s.json_text() for s in self.segments)
        return seal_text(f'{text[:-1]},"segments":[{segments}]}}'.encode())

    def due(self, at_least: int = 1) -> bool:
        """Is a checkpoint due? (amortised: its cost is at most the records' since)

        ``at_least``: records to gather first, whatever their size (on an object
        store a checkpoint costs requests, not bytes).
        """
        if self.legacy:  # migrated on the first write
            return True
        if self.since < max(at_least, 1):
            return False
        # Records weighing a quarter of the checkpoint: a small key folds every
        # commit or two (few files), a large one every CHECKPOINT_EVERY records.
        return self.since >= CHECKPOINT_EVERY or 4 * self.since_bytes >= self.base_bytes


def apply_ops(ledger: Ledger, ops: list[Op]) -> None:
    for op in ops:
        if op[0] == "a":
            ledger.add(int(op[1]), int(op[2]), float(op[3]), bool(op[4]))
        elif op[0] == "p":
            ledger.add_provisional(int(op[1]), int(op[2]), float(op[3]), float(op[4]))
        elif op[0] == "r":
            ledger.remove(int(op[1]), int(op[2]))
        else:
            raise ValueError(f"unknown ledger operation {op[0]!r}")


def seal(body: dict[str, Any]) -> bytes:
    """A log file: compact JSON, then a line with its sha256 (bit rot in valid JSON shows)."""
    return seal_text(json.dumps(body, separators=(",", ":")).encode())


def seal_text(text: bytes) -> bytes:
    """:func:`seal` of a body already written as compact JSON."""
    return text + b"\n" + hashlib.sha256(text).hexdigest().encode() + b"\n"


def _body(data: bytes, name: str) -> dict[str, Any]:
    text, _, digest = data.rstrip(b"\n").rpartition(b"\n")
    if hashlib.sha256(text).hexdigest().encode() != digest:
        raise _damaged(name, "checksum mismatch (truncated or altered)")
    try:
        body = json.loads(text)
        if not isinstance(body, dict):
            raise ValueError("not a JSON object")
        fmt = body["format"]
    except (ValueError, KeyError, TypeError) as exc:
        raise _damaged(name, f"unreadable log file ({type(exc).__name__}: {exc})") from exc
    if fmt != FORMAT:
        if isinstance(fmt, int) and fmt > FORMAT:
            raise NewerLedger(f"{name}: format {fmt}: written by a newer rangememo")
        raise _damaged(name, f"format {fmt!r}, this rangememo reads {FORMAT}")
    return body


def _damaged(name: str, reason: str) -> Damaged:
    return Damaged(name, reason)


def parse_record(data: bytes, name: str) -> Record:
    body = _body(data, name)
    try:
        rep = body.get("replace")
        return Record(
            add=Segment.from_json(body["add"]) if "add" in body else None,
            replace=(int(rep[0]), int(rep[1])) if rep is not None else None,
            tomb=body.get("tomb"),
            ops=list(body["ops"]),
            schema=body.get("schema"),
            key=body.get("key"),
        )
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise _damaged(name, f"unreadable record ({type(exc).__name__}: {exc})") from exc


def fold(
    state: LogState,
    rec: Record,
    seq: int,
    on_ops: Callable[[], None] | None = None,
    *,
    ledger: bool = True,
) -> None:
    """Apply ``rec`` (record ``seq``) to ``state``; ``on_ops`` runs before its ledger ops.

    ``ledger=False``: the writer's ledger holds the operations already.
    """
    if rec.schema is not None:
        state.schema = rec.schema
    if rec.key is not None and state.key is None:
        state.key = rec.key
    segs = state.segments
    if rec.tomb is not None:
        for i, seg in enumerate(segs):
            if seg.file == rec.tomb:
                segs[i] = Segment(None, seg.claims)
    if rec.replace is not None:
        i, j = rec.replace
        state.retired += [s.file for s in segs[i:j] if s.file is not None]
        segs[i:j] = [merged(segs[i:j], rec.add)] if rec.add is not None else []
    elif rec.add is not None:
        segs.append(rec.add)
    if on_ops is not None:
        on_ops()
    if ledger:
        apply_ops(state.ledger, rec.ops)
    state.seq = seq


def merged(run: Sequence[Segment], seg: Segment) -> Segment:
    """``seg`` as it stands for ``run``: its own claims plus all of the run's."""
    return dataclasses.replace(seg, claims=union(*(s.claims for s in run), seg.claims))


def _from_checkpoint(data: bytes, name: str, ledger: type[Ledger]) -> LogState:
    # A fragmented key's checkpoint is tens of thousands of small tuples, none
    # in a cycle: collections while they are built only walk the heap (they
    # took ~40% of an open at K = 10,000 intervals).
    with _gc_paused():
        return _parse_checkpoint(data, name, ledger)


_PAUSES = [0, False]  # parses running now; was the collector on when the first began
_PAUSE_LOCK = threading.Lock()


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the collector for a parse; with parses in several threads, the last one to
    finish restores it, and only if it was on when the first began."""
    with _PAUSE_LOCK:
        if _PAUSES[0] == 0:
            _PAUSES[1] = gc.isenabled()
            gc.disable()
        _PAUSES[0] += 1
    try:
        yield
    finally:
        with _PAUSE_LOCK:
            _PAUSES[0] -= 1
            if _PAUSES[0] == 0 and _PAUSES[1]:
                gc.enable()


def _parse_checkpoint(data: bytes, name: str, ledger: type[Ledger]) -> LogState:
    body = _body(data, name)
    try:
        return LogState(
            ledger=ledger.from_json(body["ledger"]),
            segments=[Segment.from_json(s) for s in body["segments"]],
            schema=body["schema"],
            seq=int(body["seq"]),
            retired=[str(f) for f in body.get("retired", [])],
            key=body.get("key"),
            updated=float(body["time"]),
            anchor=name,
            base_bytes=len(data),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise _damaged(name, f"unreadable checkpoint ({type(exc).__name__}: {exc})") from exc


def _from_legacy(doc: Doc, name: str, ledger: type[Ledger]) -> LogState:
    return LogState(
        ledger=ledger.from_json(doc.ledger),
        segments=list(doc.segments),
        schema=doc.schema,
        seq=0,
        retired=[f for f, _ in doc.retired],
        updated=doc.updated,
        anchor=name,
        legacy=True,
    )
