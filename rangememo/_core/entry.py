"""One key's cached state: its ledger, its rows and its schema (pure, no I/O)."""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from typing import Any

from .._errors import BoundsTypeError
from .axis import AxisKind
from .ledger import Ledger
from .results import Adapter
from .rows import Chunk, Rows
from .struct import Struct

__all__ = ["Entry", "Fetched", "Landed", "Part", "View", "compose", "present", "ticket"]

_TICKETS = itertools.count(1)


def ticket() -> int:
    """A number larger than every one handed out before, in this process.

    Orders provider calls against replacements (``refresh``, ``invalidate``): a
    fetch that began before a replacement of its range must not commit over it.
    ``next`` on a count is atomic under the GIL.
    """
    return next(_TICKETS)


class Landed(Struct):
    """An entry's rows just after one commit, and the version that commit started from.

    A call whose view was taken at ``before`` and whose commits follow one
    another from there answers with these rows directly: they are the view's
    rows with the call's pieces laid over, already merged (one slice, where
    laying the pieces over the view would concatenate them again).
    """

    __slots__ = ("entry", "before", "rows")
    entry: Entry
    before: int
    rows: Rows

    def __init__(self, entry: Entry, before: int, rows: Rows) -> None:
        self.entry, self.before, self.rows = entry, before, rows


class Fetched(Struct):
    """The outcome of one provider call, ready to commit.

    ``chunk`` holds the rows in ``[lo, hi)``; ``[lo, final_hi)`` is the part of the
    range to record as final (the rest is the live edge), and ``expires`` the
    time until which the live-edge part may be served (``None``: not at all).
    Not immutable: a commit sets ``chunk`` (conformed) and ``landed``.
    """

    __slots__ = (
        "lo", "hi", "chunk", "template", "adapter", "axis", "final_hi",
        "fetched_at", "expires", "tz", "landed", "begun", "replaces", "dropped",
    )  # fmt: skip
    lo: int
    hi: int
    chunk: Chunk
    template: Any  # an empty object with the piece's schema
    adapter: Adapter
    axis: tuple[AxisKind, bool]
    final_hi: int
    fetched_at: float
    expires: float | None
    tz: str | None  # the timezone of the request's bounds (aware axes)
    landed: Landed | None  # set by Entry.apply: the rows as this commit left them
    begun: int | None  # the ticket taken as the provider was called (None: unknown)
    replaces: bool  # newer than anything in flight: refresh, an audit's heal
    dropped: bool  # set by a store that kept nothing of it (overtaken, see MemoryStore)

    def __init__(
        self,
        lo: int,
        hi: int,
        chunk: Chunk,
        template: Any,
        adapter: Adapter,
        axis: tuple[AxisKind, bool],
        final_hi: int,
        fetched_at: float = 0.0,
        expires: float | None = None,
        tz: str | None = None,
        landed: Landed | None = None,
        begun: int | None = None,
        replaces: bool = False,
    ) -> None:
        self.lo, self.hi, self.chunk, self.template = lo, hi, chunk, template
        self.adapter, self.axis, self.final_hi = adapter, axis, final_hi
        self.fetched_at, self.expires, self.tz, self.landed = fetched_at, expires, tz, landed
        self.begun, self.replaces, self.dropped = begun, replaces, False

    __hash__ = None  # type: ignore[assignment]  # mutable: unhashable, as its dataclass was


class View:
    """One consistent moment of an entry: what a call answers from.

    Holds the entry's values by reference (they are swapped on change, never
    edited), so a later ``forget``, commit or reload of the entry leaves it as
    it was, and making one copies no rows. (A plain class: built on every
    hit, where a frozen dataclass' ``__init__`` costs twice as much.)
    """

    __slots__ = ("adapter", "entry", "follows_tz", "ledger", "rows", "template", "version")

    def __init__(
        self,
        ledger: Ledger,
        rows: Rows | None,
        adapter: Adapter | None,
        template: Any,
        follows_tz: bool,
        entry: Entry | None = None,
        version: int = -1,
    ) -> None:
        self.ledger, self.rows, self.adapter = ledger, rows, adapter
        self.template, self.follows_tz = template, follows_tz
        self.entry, self.version = entry, version  # whose moment this is

    def read(self, lo: int, hi: int, tz: str | None = None) -> Any:
        """The rows with ``lo <= position < hi``, as the caller's type."""
        adapter = self.adapter
        assert adapter is not None and self.rows is not None, "read() of an entry never written"
        return self.present(compose(adapter, self.rows.window(lo, hi), self.template), tz)

    def present(self, data: Any, tz: str | None) -> Any:
        return present(self.adapter, self.follows_tz, data, tz)


class Part(Struct):
    """A range a call fetched (or waited for), with its rows: laid over its view."""

    __slots__ = ("lo", "hi", "rows", "adapter", "template", "landed")
    lo: int
    hi: int
    rows: Rows
    adapter: Adapter
    template: Any
    landed: Landed | None

    def __init__(
        self,
        lo: int,
        hi: int,
        rows: Rows,
        adapter: Adapter,
        template: Any,
        landed: Landed | None = None,
    ) -> None:
        self.lo, self.hi, self.rows = lo, hi, rows
        self.adapter, self.template, self.landed = adapter, template, landed

    @classmethod
    def fetched(cls, lo: int, hi: int, fetched: Fetched) -> Part:
        """The part of a fetched piece (once committed: its rows conformed to the key's)."""
        rows = Rows.of(fetched.adapter, fetched.chunk)
        return cls(lo, hi, rows, fetched.adapter, fetched.template, fetched.landed)


@dataclass(slots=True)
class Entry:
    """Ledger + rows + schema of one key, as a store holds it in memory."""

    ledger: Ledger = field(default_factory=Ledger)
    rows: Rows | None = None
    adapter: Adapter | None = None
    template: Any = None
    axis: tuple[AxisKind, bool] | None = None
    version: int = 0
    # Does the provider index its answers in the caller's timezone? Then a
    # request in another zone gets the stored rows shown in its own zone.
    follows_tz: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def nbytes(self) -> int:
        return 256 + (self.rows.nbytes if self.rows is not None else 0)

    def check_axis(
        self, axis: tuple[AxisKind, bool], key: Any, bounds: tuple[Any, Any] | None = None
    ) -> None:
        """Refuse bounds whose kind differs from what this key was cached with
        (``bounds``, the caller's ``(start, end)``, are named in the message)."""
        if self.axis is not None and self.axis != axis:
            given = f" (start={bounds[0]!r}, end={bounds[1]!r})" if bounds is not None else ""
            raise BoundsTypeError(
                f"key {key!r} was cached with {_axis_text(self.axis)} bounds, "
                f"this call has {_axis_text(axis)} bounds{given}"
            )

    def view(self, lo: int, hi: int) -> View:
        """This entry as of now, with the rows of ``[lo, hi)`` in memory.

        Taken under the entry's lock, which every change holds, so ledger and
        rows agree. A part of ``[lo, hi)`` whose rows are still on disk (another
        process committed it after the load) is left out of the view's
        coverage: it is fetched again rather than read from a file that may be
        gone by then.
        """
        for _ in range(3):
            self.ledger.prepare(lo, hi)  # loads from disk: outside the lock
            with self.lock:
                ledger = self.ledger.copy()
                rows, unloaded = self.rows.frozen(lo, hi) if self.rows is not None else (None, [])
                view = View(
                    ledger, rows, self.adapter, self.template, self.follows_tz, self, self.version
                )
            if not unloaded:
                return view
        for a, b in unloaded:
            ledger.remove(a, b)
        return view

    def read(self, lo: int, hi: int, tz: str | None = None) -> Any:
        """The stored rows with ``lo <= position < hi``, as the caller's type."""
        return self.view(lo, hi).read(lo, hi, tz)

    def conform(self, fetched: Fetched) -> Fetched:
        """Check a piece against this key's schema before anything is written."""
        if not len(fetched.chunk):
            # No rows: whatever shape the provider gave "nothing" in (None, a
            # frame without columns, float64 where int64 is stored), the key's
            # schema stays as it is.
            if self.template is not None:
                fetched.template = self.template
            return fetched
        if self.adapter is None or self.rows is None or not len(self.rows):
            return fetched
        if fetched.template is self.template:
            # The piece was compared with this very template when it was digested
            # (a template is never edited, only replaced): nothing to conform.
            return fetched
        data, template, differs = self.adapter.conform(fetched.chunk.data, self.template)
        if differs:
            self.rows.mixed = True  # chunks of other schemas: merge only equal ones
        if data is not fetched.chunk.data:  # recast to the stored datetime units
            fetched.chunk = fetched.chunk.replace(data=data)
        fetched.template = template
        return fetched

    def apply(self, fetched: Fetched) -> None:
        """Commit a fetched piece: newest rows win over anything in its range."""
        if fetched.tz is not None and len(fetched.chunk):
            self.follows_tz = fetched.adapter.position_tz(fetched.chunk.data) == fetched.tz
        fetched = self.conform(fetched)
        if self.adapter is None or self.rows is None:
            self.adapter, self.rows, self.axis = (
                fetched.adapter,
                Rows(fetched.adapter),
                fetched.axis,
            )
        elif self.template is None and fetched.adapter is not self.adapter and not len(self.rows):
            # The key's answers so far were ``None``: the first real one picks the kind.
            self.adapter = fetched.adapter
            self.rows.adopt(fetched.adapter)
        if fetched.template is not None and (self.template is None or len(fetched.chunk)):
            self.template = fetched.template  # the first schema, or widened by this piece
        self.rows.replace(fetched.lo, fetched.hi, fetched.chunk)
        # Rows before ledger: a reader that sees the new coverage finds the rows.
        self.ledger.add(fetched.lo, fetched.final_hi, fetched.fetched_at, not len(fetched.chunk))
        if fetched.final_hi < fetched.hi:
            expires = fetched.expires if fetched.expires is not None else fetched.fetched_at
            self.ledger.add_provisional(fetched.final_hi, fetched.hi, fetched.fetched_at, expires)
        # Only rows wholly in memory (a plain Rows) can answer for the view: a
        # stored key's rows may hold parts still on disk, or loaded since.
        if type(self.rows) is Rows:
            fetched.landed = Landed(self, self.version, self.rows.frozen(fetched.lo, fetched.hi)[0])
        self.version += 1

    def forget(self, lo: int | None = None, hi: int | None = None) -> None:
        """Drop coverage and rows of ``[lo, hi)`` (everything when unbounded)."""
        if lo is None and hi is None:
            self.ledger = Ledger()
            if self.rows is not None:
                self.rows.clear()
        else:
            a = lo if lo is not None else -(2**63)
            b = hi if hi is not None else 2**63 - 1
            self.ledger.remove(a, b)
            if self.rows is not None:
                self.rows.replace(a, b, None)
        self.version += 1


def compose(adapter: Adapter, parts: list[Any], template: Any) -> Any:
    """One answer from ordered pieces: the template's columns, joined, finished."""
    if not parts and template is None:
        return None  # nothing known but "no rows": the provider answered None
    parts = [adapter.align(p, template) for p in parts]
    if not parts:
        out = adapter.empty(template)
    else:
        out = parts[0] if len(parts) == 1 else adapter.concat(parts)
    return adapter.finish(out, template)


def present(adapter: Adapter | None, follows_tz: bool, data: Any, tz: str | None) -> Any:
    """Show positions in the caller's zone when the provider does so."""
    if follows_tz and tz is not None and adapter is not None:
        return adapter.convert_tz(data, tz) if adapter.position_tz(data) != tz else data
    return data


def _axis_text(axis: tuple[AxisKind, bool]) -> str:
    kind, aware = axis
    if kind == "datetime":
        return "tz-aware datetime" if aware else "tz-naive datetime"
    return kind
