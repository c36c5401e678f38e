"""Realistic daily-bar providers for the adversarial tests.

A :class:`Bars` answers ``start <= t <= end`` with one row per trading day, stamped at a
local time of day in the exchange's zone and shown in the zone the API uses, as real APIs
do: Alpaca stamps New York midnight and hands it out in UTC (or naive UTC), Yahoo stamps
09:30 New York, a crypto exchange stamps 00:00 UTC every day of the week. Values depend
only on the row's instant, so a row fetched in a small range equals the same row in a
large one.
"""

from __future__ import annotations

import collections
import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

NY = "America/New_York"
# 2024 US exchange holidays that fall on weekdays (enough for the ranges used here).
HOLIDAYS = [
    dt.date(2024, 1, 1),
    dt.date(2024, 1, 15),
    dt.date(2024, 2, 19),
    dt.date(2024, 3, 29),
    dt.date(2024, 5, 27),
    dt.date(2024, 6, 19),
    dt.date(2024, 7, 4),
    dt.date(2024, 9, 2),
    dt.date(2024, 11, 28),
    dt.date(2024, 12, 25),
]


def to_ts(bound: Any) -> pd.Timestamp:
    """A bound of any supported type as a Timestamp (a ``date`` is its midnight)."""
    return pd.Timestamp(bound)


class Bars:
    """Daily rows at ``tod`` past each local midnight of ``row_zone`` (None: naive wall).

    ``out_tz``: ``"same"`` shows rows in ``row_zone``; ``None`` shows aware rows as naive
    UTC instants; a zone name converts to it. ``weekends=True`` is a 24/7 market.
    """

    def __init__(
        self,
        row_zone: str | None,
        tod: str = "00:00",
        out_tz: str | None = "same",
        *,
        weekends: bool = False,
        unit: str = "ns",
    ) -> None:
        self.row_zone, self.out_tz, self.weekends, self.unit = row_zone, out_tz, weekends, unit
        self.tod = pd.Timedelta(tod + ":00")
        self.seen: collections.Counter[pd.Timestamp] = collections.Counter()
        self.calls: list[tuple[Any, Any]] = []

    def _local(self, ts: pd.Timestamp) -> pd.Timestamp:
        return ts if ts.tz is None else ts.tz_convert(self.row_zone or "UTC").tz_localize(None)

    def index(self, start: Any, end: Any) -> pd.DatetimeIndex:
        s, e = to_ts(start), to_ts(end)
        days = pd.date_range(
            self._local(s).normalize() - pd.Timedelta("3D"),
            self._local(e).normalize() + pd.Timedelta("3D"),
        )
        if not self.weekends:
            days = days[(days.day_of_week < 5) & ~np.isin(days.date, HOLIDAYS)]
        stamps = days + self.tod
        if self.row_zone:
            idx = stamps.tz_localize(self.row_zone, ambiguous=True, nonexistent="shift_forward")
            out = self.row_zone if self.out_tz == "same" else self.out_tz
            idx = idx.tz_convert(out) if out else idx.tz_convert("UTC").tz_localize(None)
        else:
            idx = stamps if self.out_tz in ("same", None) else stamps.tz_localize(self.out_tz)
        idx = idx.as_unit(self.unit)
        return idx[(idx >= s) & (idx <= e)]

    def __call__(self, symbol: str, start: Any, end: Any, record: bool = True) -> pd.DataFrame:
        sel = self.index(start, end)
        if record:
            self.calls.append((start, end))
            self.seen.update(sel)
        secs = sel.asi8 // 10 ** {"s": 0, "ms": 3, "us": 6, "ns": 9}[self.unit]
        return pd.DataFrame(
            {
                "close": (secs % 9973).astype("float64") / 4,
                "volume": (secs % 1000).astype("int64"),
            },
            index=pd.DatetimeIndex(sel, name="timestamp", freq=None),
        )

    def expect(self, start: Any, end: Any) -> pd.DataFrame:
        """The uncached answer, not counted as a fetch."""
        return self(None, start, end, record=False)  # type: ignore[arg-type]

    def duplicates(self) -> dict[pd.Timestamp, int]:
        """Rows the provider was asked for more than once."""
        return {t: n for t, n in self.seen.items() if n > 1}
