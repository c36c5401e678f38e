"""The position axis: turning bounds into int64 and back (pure, no I/O).

Internally every range is half-open ``[lo, hi)`` over int64: nanoseconds since
the epoch for datetimes (UTC for tz-aware bounds, wall time for naive ones),
nanoseconds of midnight for ``datetime.date``, the value itself for ``int``.
A caller's inclusive request ``[a, b]`` with step ``s`` becomes ``[a, b + s)``;
a continuous axis uses the axis resolution (1 ns, or 1) as its step, which is
exact because nothing finer can be represented.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from .._errors import BoundsTypeError, InvalidOption, InvalidRange
from .steps import DAY_NS as _DAY_NS
from .steps import AxisKind, parse_step, parse_step_cached

__all__ = ["Axis", "AxisKind", "Closed", "axis_of"]

Closed = Literal["both", "left"]
# Positions are int64; the extremes are sentinels ("from the start", "to the end").
_MIN, _MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True, slots=True)
class Axis:
    """How one call's bounds map to int64 positions.

    ``aware`` separates naive from tz-aware datetimes: both encode to int64,
    but with different meanings, so one key must never mix them.
    """

    kind: AxisKind
    aware: bool
    tz: Any  # the tzinfo of the caller's bounds, for decoding; None if naive
    step: int  # in axis units (ns or 1), >= 1
    closed: Closed
    timestamp_out: bool  # decode to pd.Timestamp (else datetime.datetime)

    ref: int | None = None  # the caller's grid runs through this position (its start)
    unit: str = "ns"  # the caller's pd.Timestamp / np.datetime64 unit, kept on decode
    numpy_out: bool = False  # decode to np.datetime64 (the caller passed those)

    # -- the grid ------------------------------------------------------------
    # With a step, the caller's grid runs through ``ref`` (the request's start;
    # without one, through the bound at hand), which is the contract's
    # ``[a, b] -> [a, b + step)``. Whole-day steps on tz-aware axes count
    # *local* calendar days (wall time), since local midnights are 23 or 25
    # hours apart across a DST change. The grid shapes the calls (gap bounds
    # fall on it) and closes coverage up to the next grid point only where the
    # provider's rows are seen to lie on it (see ``RangeCache.digest``).
    @property
    def local_days(self) -> int:
        """Whole days per step on a tz-aware axis (else 0)."""
        if self.aware and self.kind == "datetime" and self.step % _DAY_NS == 0:
            return self.step // _DAY_NS
        return 0

    def _grid(self, pos: int) -> tuple[int, int]:
        """``pos`` in grid coordinates (wall ns for local days), and the span."""
        days = self.local_days
        if not days:
            return pos, self.step
        return _wall(pos, self.tz), days * _DAY_NS

    def _ungrid(self, g: int) -> int:
        return _unwall(g, self.tz) if self.local_days else g

    def grid_floor(self, pos: int, through: int) -> int:
        """The last grid point at or before ``pos`` (grid through ``ref``, else ``through``)."""
        g, span = self._grid(pos)
        r, _ = self._grid(self.ref if self.ref is not None else through)
        return self._ungrid(g - (g - r) % span)

    def grid_next(self, pos: int, through: int | None = None) -> int:
        """The first grid point after ``pos`` (grid through ``ref``, else ``through``/``pos``)."""
        g, span = self._grid(pos)
        anchor = self.ref if self.ref is not None else through
        r, _ = self._grid(anchor) if anchor is not None else (g, span)
        return self._ungrid(g + span - (g - r) % span)

    def on_grid(self, pos: int) -> bool:
        """Does ``pos`` lie on the caller's grid?"""
        g, span = self._grid(pos)
        r, _ = self._grid(self.ref if self.ref is not None else pos)
        return (g - r) % span == 0

    def offset(self, pos: int, tz: Any = None) -> int:
        """The UTC offset at ``pos`` of ``tz`` (default: the bounds' zone), where the
        grid counts local days (else 0).

        Whether a row lies on a local-day grid depends on it (and on the offset of
        the rows' own zone): a row seen on the grid says so only where both are the same.
        """
        return _wall(pos, self.tz if tz is None else tz) - pos if self.local_days else 0

    def grid_ceil(self, pos: int) -> int:
        """The first grid point at or after ``pos``."""
        return pos if self.on_grid(pos) else self.grid_next(pos)

    @property
    def midnight_grid(self) -> bool:
        """Is a whole-day grid anchored at (local) midnight? Sub-day grids: always True.

        Daily bars stamped at another zone's midnight drift by an hour against
        any other grid across DST, so only a midnight grid may be closed up.
        """
        if self.kind != "datetime" or self.step % _DAY_NS or self.ref is None:
            return True
        return self._grid(self.ref)[0] % _DAY_NS == 0

    def last(self, lo: int, hi: int) -> int:
        """The inclusive end of ``[lo, hi)`` in a closed="both" call.

        The last grid point in the range (``hi - step`` when the grid runs
        through ``hi``); for a sliver holding none (left by off-grid
        requests) the last representable position, so a gap is never handed
        over with its end before its start.
        """
        last = self.grid_floor(hi - 1, hi)
        return last if last >= lo else hi - 1

    @property
    def signature(self) -> tuple[AxisKind, bool]:
        """What must agree between every call of one key."""
        return (self.kind, self.aware)

    def encode(self, value: Any) -> int:
        if self.kind == "int":
            return int(value)
        if self.kind == "date":
            return int((value.toordinal() - _EPOCH_ORDINAL) * _DAY_NS)
        return int(pd.Timestamp(value).value)

    def decode(self, pos: int) -> Any:
        if self.kind == "int":
            return pos
        if self.kind == "date":
            return dt.date.fromordinal(pos // _DAY_NS + _EPOCH_ORDINAL)
        ts = pd.Timestamp(pos, unit="ns")
        if self.unit != "ns" and pos % _UNIT_NS[self.unit] == 0:
            ts = ts.as_unit(self.unit)  # type: ignore[arg-type]  # the caller's unit, where lossless
        if self.aware:
            ts = ts.tz_localize("UTC").tz_convert(self.tz)
        if self.numpy_out:
            return ts.to_datetime64()
        if self.timestamp_out or ts.nanosecond:
            return ts
        return ts.to_pydatetime()

    def request(self, start: Any, end: Any) -> tuple[int, int, int]:
        """Encode a caller's bounds as ``(lo, hi_cover, hi_rows)``.

        ``[lo, hi_cover)`` is what a successful fetch covers; ``[lo, hi_rows)``
        is where the rows of the answer lie.
        """
        try:
            lo, e = self.encode(start), self.encode(end)
        except OverflowError:  # pandas: a datetime past 2262 has no int64 nanoseconds
            lo, e = _MIN, _MAX
        hi = self.grid_next(e, lo) if self.closed == "both" else e
        if lo <= _MIN or max(e, hi) >= _MAX:
            what = "int64" if self.kind == "int" else "nanoseconds (1677-09-22 to 2262-04-10)"
            raise InvalidRange(
                f"start={start!r}, end={end!r} reach outside the positions rangememo can "
                f"store ({what}, less one step); pass bounds within that range"
            )
        return (lo, hi, e + 1) if self.closed == "both" else (lo, e, e)

    def bounds(self, lo: int, hi: int) -> tuple[Any, Any]:
        """A covered ``[lo, hi)`` in the caller's own convention."""
        if self.closed == "both":
            return self.decode(lo), self.decode(self.last(lo, hi))
        return self.decode(lo), self.decode(hi)


_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_UNIT_NS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}


# Wall-time conversion costs ~20 µs in pandas; calls repeat the same bounds
# (a hit re-asks what it asked before), so memoise it.
def _wall_now(pos: int, tz: Any) -> int:
    return int(pd.Timestamp(pos, unit="ns", tz="UTC").tz_convert(tz).tz_localize(None).value)


def _unwall_now(wall: int, tz: Any) -> int:
    local = pd.Timestamp(wall, unit="ns").tz_localize(
        tz, ambiguous=True, nonexistent="shift_forward"
    )
    return int(local.value)


_wall_cached = functools.lru_cache(maxsize=4096)(_wall_now)
_unwall_cached = functools.lru_cache(maxsize=4096)(_unwall_now)


def _wall(pos: int, tz: Any) -> int:
    try:
        return _wall_cached(pos, tz)
    except TypeError:  # an unhashable tzinfo (dateutil's tzfile): uncached
        return _wall_now(pos, tz)


def _unwall(wall: int, tz: Any) -> int:
    try:
        return _unwall_cached(wall, tz)
    except TypeError:
        return _unwall_now(wall, tz)


def _kind_of(value: Any) -> AxisKind | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (dt.datetime, np.datetime64)):
        return "datetime"
    if isinstance(value, dt.date):
        return "date"
    if isinstance(value, (int, np.integer)):
        return "int"
    return None


def _tz_of(value: Any) -> Any:
    return value.tzinfo if isinstance(value, dt.datetime) else None


def axis_of(start: Any, end: Any, step: Any, closed: Closed) -> Axis:
    """Check one call's bounds and build its :class:`Axis`.

    Raises ``TypeError`` for bounds of different kinds or naive mixed with
    aware, and ``InvalidRange`` (a ``ValueError``) for ``start > end``; both
    messages name the two values.
    """
    kind, end_kind = _kind_of(start), _kind_of(end)
    if kind is None or end_kind is None or kind != end_kind:
        raise BoundsTypeError(
            f"start and end must both be datetimes, dates or ints of one kind; "
            f"got start={start!r} ({type(start).__name__}) and end={end!r} ({type(end).__name__})"
        )
    # np.datetime64 is one more spelling of a (naive) datetime: mixes with the others.
    numpy_out = isinstance(start, np.datetime64)
    if numpy_out:
        start = pd.Timestamp(start)
    if isinstance(end, np.datetime64):
        end = pd.Timestamp(end)
    tz_start, tz_end = _tz_of(start), _tz_of(end)
    if (tz_start is None) != (tz_end is None):
        raise BoundsTypeError(
            f"cannot mix tz-naive and tz-aware bounds: start={start!r}, end={end!r}"
        )
    if pd.isna(start) or pd.isna(end):
        raise InvalidRange(f"bounds must not be NaT/NaN: start={start!r}, end={end!r}")
    if start > end:
        raise InvalidRange(f"start must not be after end: start={start} > end={end}")
    try:
        try:
            resolved = parse_step_cached(step, kind)
        except TypeError:  # an unhashable step: parse it uncached
            resolved = parse_step(step, kind)
    except InvalidOption as exc:  # ints to a daily function: name what was passed
        raise InvalidOption(f"{exc} (this call: start={start!r}, end={end!r})") from None
    timestamp_out = isinstance(start, pd.Timestamp)
    return Axis(
        kind=kind,
        aware=tz_start is not None,
        tz=tz_start,
        step=resolved,
        closed=closed,
        timestamp_out=timestamp_out and not numpy_out,
        # Gap bounds keep the caller's unit (pandas 3 parses at s/ms/us).
        unit=start.unit if timestamp_out else "ns",
        numpy_out=numpy_out,
    )
