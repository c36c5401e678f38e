"""A key reopened from disk still knows its grid (from rows not yet loaded)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from pandas.testing import assert_frame_equal

from rangememo import ParquetStore, range_cached
from rangememo.testing import FakeProvider, make_bars

D = dt.datetime


def cached(provider: FakeProvider, path):
    @range_cached(key="symbol", step="1D", store=ParquetStore(path), namespace="grid")
    def get_bars(symbol: str, start: D, end: D) -> pd.DataFrame:
        return provider.get_bars_sync(symbol, start, end)

    return get_bars


def test_off_grid_request_after_reopening_claims_only_to_the_next_bar(tmp_path):
    """The first rows on disk place the grid: an off-grid request loses no bar."""
    provider = FakeProvider()
    cached(provider, tmp_path)("AAPL", D(2024, 9, 30), D(2024, 9, 30))
    reopened = cached(provider, tmp_path)  # a new store instance: rows still on disk
    reopened("AAPL", D(2024, 10, 1, 16), D(2024, 10, 1, 16))
    got = reopened("AAPL", D(2024, 10, 2), D(2024, 10, 2, 12))
    assert_frame_equal(got, make_bars("AAPL", D(2024, 10, 2), D(2024, 10, 2, 12)))
    assert all(call.start <= call.end for call in provider.calls)
