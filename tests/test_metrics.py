"""The optional Prometheus collector."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from rangememo import MemoryStore, range_cached
from rangememo.testing import make_bars

prometheus_client = pytest.importorskip("prometheus_client")


def test_collector_exports_cache_info():
    """Every cache_info field is a counter labelled by function namespace."""
    from rangememo.metrics import RangememoCollector

    @range_cached(key="symbol", step="1D", store=MemoryStore(), namespace="bars")
    def get_bars(symbol: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        return make_bars(symbol, start, end)

    get_bars("AAPL", dt.datetime(2024, 10, 1), dt.datetime(2024, 10, 10))
    get_bars("AAPL", dt.datetime(2024, 10, 2), dt.datetime(2024, 10, 3))
    registry = prometheus_client.CollectorRegistry()
    registry.register(RangememoCollector(get_bars))
    text = prometheus_client.generate_latest(registry).decode()
    assert 'rangememo_hits_total{function="bars@v0"} 1.0' in text
    assert 'rangememo_provider_calls_total{function="bars@v0"} 1.0' in text
    rows = len(make_bars("AAPL", dt.datetime(2024, 10, 1), dt.datetime(2024, 10, 10)))
    assert f'rangememo_rows_fetched_total{{function="bars@v0"}} {float(rows)}' in text


def test_collector_refuses_plain_functions():
    """Only range_cached functions can be collected."""
    from rangememo.metrics import RangememoCollector

    with pytest.raises(TypeError, match="not a range_cached function"):
        RangememoCollector(len)
