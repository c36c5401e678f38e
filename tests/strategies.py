"""Hypothesis strategies shared by the test modules.

Everything lives on a small domain so that random requests overlap, touch and
repeat often: positions ``0 .. DOMAIN`` for the pure core, a few weeks of days,
two hours of minutes and a hundred blocks for the end-to-end model.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd
from hypothesis import strategies as st

#: Positions used by the pure-core strategies: ``0 <= lo <= hi <= DOMAIN``.
DOMAIN = 40

Pair = tuple[int, int]


# -- half-open int intervals ------------------------------------------------------


@st.composite
def intervals(draw: st.DrawFn, lo: int = 0, hi: int = DOMAIN, min_size: int = 0) -> Pair:
    """A half-open ``(a, b)`` with ``lo <= a``, ``a + min_size <= b <= hi``."""
    a = draw(st.integers(lo, hi - min_size))
    b = draw(st.integers(a + min_size, hi))
    return a, b


def nonempty_intervals(lo: int = 0, hi: int = DOMAIN) -> st.SearchStrategy[Pair]:
    """A half-open interval holding at least one position."""
    return intervals(lo, hi, min_size=1)


def interval_lists(max_size: int = 6) -> st.SearchStrategy[list[Pair]]:
    """Several intervals, possibly overlapping, touching or empty."""
    return st.lists(intervals(), max_size=max_size)


#: Clock readings for provisional (live-edge) ranges.
times = st.integers(0, 10).map(float)


# -- end-to-end series -----------------------------------------------------------

BoundKind = Literal["timestamp", "datetime", "date", "int"]


@dataclass(frozen=True)
class SeriesSpec:
    """One cached series: which provider method, its key and the bounds it is called with."""

    name: str  # symbol or chain: also the cache key (with the timeframe)
    timeframe: str | None  # None for blocks
    tz: str | None
    bounds: BoundKind
    size: int  # grid positions 0 .. size - 1

    @property
    def is_blocks(self) -> bool:
        return self.timeframe is None

    @property
    def step(self) -> pd.Timedelta | int:
        if self.timeframe is None:
            return 1
        return pd.Timedelta(STEP_TEXT[self.timeframe])

    @property
    def origin(self) -> pd.Timestamp | int:
        """Grid position 0 (on the provider's epoch-anchored grid)."""
        if self.timeframe is None:
            return 1_000
        ts = pd.Timestamp(ORIGINS[self.timeframe])
        return ts if self.tz is None else ts.tz_localize(self.tz)

    def bound(self, i: int) -> Any:
        """Grid position ``i`` as the value a caller passes."""
        if self.timeframe is None:
            return self.origin + i  # type: ignore[operator]
        ts = self.origin + i * self.step  # type: ignore[operator]
        if self.bounds == "date":
            return ts.date()
        if self.bounds == "datetime":
            out = ts.to_pydatetime()
            return out.replace(tzinfo=_PY_TZ[self.tz]) if self.tz is not None else out
        return ts

    def index_of(self, value: Any) -> int:
        """The grid position of a bound the cache handed to the provider (must be on grid)."""
        if self.timeframe is None:
            return int(value) - int(self.origin)  # type: ignore[call-overload]
        offset = pd.Timestamp(value) - self.origin
        q, r = divmod(offset, self.step)
        assert r == pd.Timedelta(0), f"{value!r} is not on the {self.timeframe} grid"
        return int(q)


#: The ``step`` each timeframe is cached with, in three spellings of a span.
STEP_TEXT = {"D": "1D", "1h": "1h", "1min": "1min"}
STEPS: dict[str, Any] = {
    "D": "1D",
    "1h": pd.Timedelta(hours=1),
    "1min": dt.timedelta(minutes=1),
}
#: Grid origins: a Monday for days (so weekends fall inside), a Friday evening for
#: hours and minutes (so the domain runs into an empty Saturday). All in January:
#: no DST transition inside any domain.
ORIGINS = {"D": "2024-01-01", "1h": "2024-01-05 12:00", "1min": "2024-01-05 23:00"}
_PY_TZ: dict[str | None, dt.tzinfo] = {
    "UTC": dt.UTC,
    "America/New_York": zoneinfo.ZoneInfo("America/New_York"),
}

SERIES: tuple[SeriesSpec, ...] = (
    SeriesSpec("AAPL", "D", None, "timestamp", 36),
    SeriesSpec("MSFT", "D", "UTC", "datetime", 36),
    SeriesSpec("IBM", "D", None, "date", 36),
    SeriesSpec("NYD", "D", "America/New_York", "timestamp", 36),
    SeriesSpec("AAPL", "1h", "UTC", "timestamp", 72),
    SeriesSpec("AAPL", "1min", None, "datetime", 120),
    SeriesSpec("NYM", "1min", "America/New_York", "datetime", 120),
    SeriesSpec("eth", None, None, "int", 90),
    SeriesSpec("btc", None, None, "int", 90),
)


@dataclass(frozen=True)
class Request:
    """Grid positions ``i .. j`` of a series (``j`` included or not, per ``closed``)."""

    series: SeriesSpec
    i: int
    j: int


@st.composite
def requests(
    draw: st.DrawFn, series: tuple[SeriesSpec, ...] = SERIES, nonempty: bool = True
) -> Request:
    """A request over one series' domain; ``i < j`` when ``nonempty`` (else ``i <= j``)."""
    spec = draw(st.sampled_from(series))
    i = draw(st.integers(0, spec.size - 1 - int(nonempty)))
    j = draw(st.integers(i + int(nonempty), spec.size - 1))
    return Request(spec, i, j)


def request_sequences(
    series: tuple[SeriesSpec, ...] = SERIES, max_size: int = 8
) -> st.SearchStrategy[list[Request]]:
    """A sequence of requests over a few series, often overlapping."""
    return st.lists(requests(series), min_size=1, max_size=max_size)


#: Keys of the form a decorator might build: strings, ints, tuples of both.
keys = st.one_of(
    st.text(min_size=1, max_size=5),
    st.integers(-5, 5),
    st.tuples(st.sampled_from(["AAPL", "MSFT"]), st.sampled_from(["D", "1min"])),
)
