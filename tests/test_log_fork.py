"""A key cleared and written again by another process is never taken for the old log.

A reader holding a key at record N checks "no record N + 1, and record N still
there". If another process clears the key and writes it again from record 1,
record N exists again under the same name with other content: taking it for
the old one would serve cleared rows and later fold the new log's records onto
the old state (a fork: wrong rows). The anchor's identity (a stat signature, an
ETag) is checked, not only its name.
"""

from __future__ import annotations

import warnings
from typing import Any

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from rangememo import ParquetStore, range_cached
from rangememo.testing import make_bars


def day(n: int) -> pd.Timestamp:
    return pd.Timestamp("2024-01-01") + pd.Timedelta(days=n)


def bars(store: Any, calls: list[Any], scale: float = 1.0) -> Any:
    # readahead=None: the test compares the calls made with the ranges asked for.
    @range_cached(key=("symbol",), step="1D", store=store, namespace="fork.bars", readahead=None)
    def get_bars(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        calls.append((start, end))
        out = make_bars(symbol, start, end)
        out["close"] = out["close"] * scale  # the revised history after the clear
        return out

    return get_bars


def revised(start: Any, end: Any, scale: float) -> pd.DataFrame:
    out = make_bars("AAA", start, end)
    out["close"] = out["close"] * scale
    return out


@pytest.fixture(params=["local", "s3"])
def where(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "local":
        return str(tmp_path / "cache")
    return str(request.getfixturevalue("s3_bucket_url"))


def test_a_reader_does_not_take_a_rewritten_log_for_its_own(where):
    reader_calls: list[Any] = []
    reader = bars(ParquetStore(where, refresh=0), reader_calls)
    for d in (0, 3, 6):  # records 1, 2, 3 (no checkpoint yet)
        reader("AAA", day(d), day(d + 2))
    assert_frame_equal(reader("AAA", day(0), day(8)), revised(day(0), day(8), 1.0))

    writer_calls: list[Any] = []
    other = ParquetStore(where)
    writer = bars(other, writer_calls, scale=2.0)
    writer.invalidate("AAA")  # another process clears the key ...
    for d in (0, 3, 6):  # ... and writes it again: records 1, 2, 3 once more
        writer("AAA", day(d), day(d + 2))

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = reader("AAA", day(0), day(8))
    assert_frame_equal(got, revised(day(0), day(8), 2.0))  # the new log's rows
    writer("AAA", day(9), day(11))  # record 4 of the new log
    assert_frame_equal(reader("AAA", day(0), day(11)), revised(day(0), day(11), 2.0))
    assert reader_calls == [(day(d), day(d + 2)) for d in (0, 3, 6)]
