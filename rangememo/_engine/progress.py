"""An optional tqdm progress bar for long prefetches: it counts time (or positions) covered.

A bar over gaps would sit still through one long gap and jump at the end; a
gap split by ``max_span`` is fetched as several flights, so the bar advances by
each flight's span as it lands, with the rows fetched so far as its postfix.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .._core.axis import Axis

__all__ = ["Progress", "progress_bar"]

_HOUR_NS = 3_600_000_000_000
_DAY_NS = 24 * _HOUR_NS


class _Span(Protocol):
    lo: int
    hi: int


class Progress:
    """A tqdm bar advanced by the span of each piece that lands."""

    __slots__ = ("_axis", "_bar", "_lock", "_rows", "_scale")

    def __init__(self, bar: Any, axis: Axis, scale: float) -> None:
        self._bar, self._axis, self._scale, self._rows = bar, axis, scale, 0
        self._lock = threading.Lock()  # pieces land on worker threads too

    def advance(self, lo: int, hi: int, rows: int) -> None:
        """A piece ``[lo, hi)`` holding ``rows`` rows is covered."""
        with self._lock:
            self._rows += rows
            self._bar.set_postfix(rows=self._rows, refresh=False)
            self._bar.update(extent(self._axis, lo, hi) / self._scale)

    def close(self) -> None:
        self._bar.close()


def extent(axis: Axis, lo: int, hi: int) -> int:
    """How much of the axis ``[lo, hi)`` spans, in whole steps where it has a grid.

    An inclusive end makes a gap's ``hi`` one past its last bar, so 40 daily bars
    span 39 days and 1 ns: counted in steps they are 40 days. Local-day grids
    are measured in wall time, where every day is 24 hours.
    """
    if axis.step <= 1:
        return hi - lo
    g_lo, span = axis._grid(lo)
    g_hi, _ = axis._grid(hi)
    return -(-(g_hi - g_lo) // span) * span


def _unit(kind: str, total: int) -> tuple[str, float]:
    """The bar's unit and how many axis positions make one."""
    if kind == "int":
        return "pos", 1.0
    return ("day", float(_DAY_NS)) if total >= 2 * _DAY_NS else ("h", float(_HOUR_NS))


def progress_bar(pieces: Sequence[_Span], axis: Axis, enabled: bool | None) -> Progress | None:
    """A bar over the span ``pieces`` cover, or ``None``.

    ``enabled=True`` always shows one; ``None`` means "when stderr is a terminal
    and there is more than one piece" (a single call has nothing to show until
    it is over). Without the ``[progress]`` extra (tqdm) there is never a bar.
    """
    if enabled is False or not pieces:
        return None
    if enabled is None and (len(pieces) < 2 or not sys.stderr.isatty()):
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    total = sum(extent(axis, p.lo, p.hi) for p in pieces)
    unit, scale = _unit(axis.kind, total)
    bar = tqdm(
        total=total / scale,
        unit=unit,
        desc="rangememo prefetch",
        leave=False,
        bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} {unit} [{elapsed}<{remaining}{postfix}]",
    )
    return Progress(bar, axis, scale)
