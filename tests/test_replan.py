"""``RangeCache.replan``: what a gap planned before another process's commit still needs.

A call on a shared store plans from what it read, then takes the key's lock
and plans the gap again against the entry as it is now. When a neighbour's
call starting on the gap's last day committed meanwhile, the gap's end (the
caller's inclusive end, one unit past that day) is then one unit from what is
missing: that is a change, not fitting's sliver, so the gap is planned again
and the day is not fetched twice. Eight
processes on a barrier (tests/test_s3_multiprocess.py) fetched such days twice
under load before.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from rangememo import ParquetStore, range_cached
from rangememo._core.grid import fit
from rangememo._core.planner import plan_gaps
from rangememo.testing import make_bars


def day(n: int) -> dt.datetime:
    return dt.datetime(2024, 1, 1) + dt.timedelta(days=n)


def bars(root: Any, calls: list[Any]) -> Any:
    @range_cached(
        key="symbol", step="1D", store=ParquetStore(root), namespace="replan", readahead=None
    )
    def get(symbol: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        calls.append((pd.Timestamp(start), pd.Timestamp(end)))
        return make_bars(symbol, start, end)  # no rows on weekends

    return get


def test_a_neighbours_commit_on_the_last_day_is_planned_again(tmp_path: Any) -> None:
    a_calls: list[Any] = []
    b_calls: list[Any] = []
    a, b = bars(tmp_path, a_calls), bars(tmp_path, b_calls)  # two processes' stores
    b("AAA", day(0), day(4))  # Mon-Fri: B knows the key's rows
    cache = b.cache
    saturday = 12  # 2024-01-13
    req = cache.request(("AAA", day(5), day(saturday)), {})  # B's range ends on it
    view = cache.view(req, cache.store.get(cache.namespace, req.key))
    assert view is not None
    (planned,) = plan_gaps(req.lo, req.hi, view.ledger).gaps
    gap = fit(req.axis, req.rows_hi, planned, view)
    assert gap is not None
    before = cache.missing_in(view, gap)
    a("AAA", day(saturday), day(20))  # the neighbour commits first, from that Saturday
    gaps, _ = cache.replan(req, cache.store.get(cache.namespace, req.key), gap, before)
    asks = [cache.call_bounds(req, g) for g in gaps]
    assert asks and all(pd.Timestamp(e) < pd.Timestamp(day(saturday)) for _, e in asks), asks
    # Nothing changed meanwhile: the gap stands exactly as fitted.
    again = cache.view(req, cache.store.get(cache.namespace, req.key))
    (fresh,) = [
        g
        for g in (
            fit(req.axis, req.rows_hi, p, again)
            for p in plan_gaps(req.lo, req.hi, again.ledger).gaps
        )
        if g is not None
    ]
    now = cache.store.get(cache.namespace, req.key)
    assert cache.replan(req, now, fresh, cache.missing_in(again, fresh)) == ([fresh], [])
