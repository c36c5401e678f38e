"""Per-call control of batched functions: ``.cached``, ``.refresh``, ``offline()``,
``disabled()`` and string bounds, checked against the uncached provider."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest

import rangememo
from rangememo import MemoryStore, NotCached, ParquetStore, range_cached

DAY = pd.Timedelta(days=1)
T0 = pd.Timestamp("2024-03-04", tz="UTC")


class Api:
    """A long-format multi-symbol provider whose history can be revised."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[str, ...], Any, Any]] = []
        self.revision = 0.0
        self.fail_for: set[str] = set()

    def raw(self, symbols: Sequence[str], start: Any, end: Any) -> pd.DataFrame:
        days = pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq="D", name="ts")
        return pd.concat(
            [
                pd.DataFrame(
                    {"symbol": s, "close": days.day.to_numpy(float) + len(s) + self.revision},
                    index=days,
                )
                for s in symbols
            ]
        )

    def __call__(self, symbols: list[str], start: Any, end: Any) -> pd.DataFrame:
        self.calls.append((tuple(symbols), start, end))
        if self.fail_for & set(symbols):
            raise ConnectionError(f"503 for {sorted(self.fail_for & set(symbols))}")
        return self.raw(symbols, start, end)


def expected(api: Api, members: list[str], start: Any, end: Any) -> pd.DataFrame:
    raw = api.raw(members, start, end)
    return pd.concat([raw[np.asarray(raw["symbol"] == m)] for m in members])


def same(got: Any, want: Any) -> None:
    pd.testing.assert_frame_equal(got, want, check_freq=False)


@pytest.fixture(params=["memory", "parquet"])
def store(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    return MemoryStore() if request.param == "memory" else ParquetStore(tmp_path / "c")


def batched(api: Api, store: Any, is_async: bool = False, **options: Any) -> Any:
    opts: dict[str, Any] = dict(
        batch="symbols", by="symbol", step="1D", settle=False, store=store, namespace="bc"
    )
    opts.update(options)
    if is_async:

        async def aget(symbols: list[str], start: Any, end: Any) -> pd.DataFrame:
            return api(symbols, start, end)

        return range_cached(**opts)(aget)

    def get(symbols: list[str], start: Any, end: Any) -> pd.DataFrame:
        return api(symbols, start, end)

    return range_cached(**opts)(get)


def test_cached_answers_from_the_cache_or_names_every_missing_member(store: Any) -> None:
    api = Api()
    get = batched(api, store)
    get(["A", "BB"], T0, T0 + 5 * DAY)
    n = len(api.calls)
    same(get.cached(["BB", "A"], T0, T0 + 5 * DAY), expected(api, ["BB", "A"], T0, T0 + 5 * DAY))
    with pytest.raises(NotCached, match="2 members") as info:
        get.cached(["A", "CCC", "DDDD"], T0, T0 + 5 * DAY)
    assert "CCC" in str(info.value) and "DDDD" in str(info.value)
    with pytest.raises(NotCached, match="A"):
        get.cached(["A"], T0, T0 + 6 * DAY)
    assert len(api.calls) == n  # the provider is never called


def test_offline_answers_only_from_the_cache_and_disabled_bypasses_it(store: Any) -> None:
    api = Api()
    get = batched(api, store)
    get(["A"], T0, T0 + 2 * DAY)
    n = len(api.calls)
    with rangememo.offline():
        same(get(["A"], T0, T0 + 2 * DAY), expected(api, ["A"], T0, T0 + 2 * DAY))
        with pytest.raises(NotCached):
            get(["A", "BB"], T0, T0 + 2 * DAY)
        with pytest.raises(NotCached):
            get.prefetch(["BB"], T0, T0 + 2 * DAY)
        with pytest.raises(NotCached, match="offline"):
            get.refresh(["A"], T0, T0 + 2 * DAY)
    assert len(api.calls) == n
    with rangememo.disabled():
        got = get(["BB", "A"], T0, T0 + 3 * DAY)
        with pytest.raises(NotCached, match="disabled"):
            get.cached(["A"], T0, T0 + DAY)
    assert api.calls[n:] == [(("BB", "A"), T0, T0 + 3 * DAY)]  # the caller's own call
    same(got, api.raw(["BB", "A"], T0, T0 + 3 * DAY))
    assert get.coverage("BB") == []  # disabled touched no store


@pytest.mark.parametrize("is_async", [False, True])
def test_refresh_shares_calls_replaces_rows_and_answers(store: Any, is_async: bool) -> None:
    api = Api()
    get = batched(api, store, is_async)

    def run(x: Any) -> Any:
        return asyncio.run(x) if is_async else x

    members = ["A", "BB", "CCC"]
    run(get(members, T0, T0 + 9 * DAY))
    api.revision = 0.5  # the provider revises history
    n = len(api.calls)
    got = run(get.refresh(members, T0 + 2 * DAY, T0 + 6 * DAY))
    assert api.calls[n:] == [(tuple(members), T0 + 2 * DAY, T0 + 6 * DAY)]  # one call
    same(got, expected(api, members, T0 + 2 * DAY, T0 + 6 * DAY))
    n = len(api.calls)
    later = run(get(["CCC", "A"], T0, T0 + 9 * DAY))
    assert len(api.calls) == n
    # Revised inside the refreshed range, as before outside it.
    old = Api()
    want = pd.concat(
        [
            pd.concat(
                [
                    old.raw([m], T0, T0 + DAY),
                    api.raw([m], T0 + 2 * DAY, T0 + 6 * DAY),
                    old.raw([m], T0 + 7 * DAY, T0 + 9 * DAY),
                ]
            )
            for m in ["CCC", "A"]
        ]
    )
    same(later, want)


def test_a_failed_refresh_keeps_that_members_rows(store: Any) -> None:
    api = Api()
    get = batched(api, store, max_batch=1)
    members = ["A", "BB"]
    get(members, T0, T0 + 3 * DAY)
    api.revision, api.fail_for = 1.0, {"BB"}
    with pytest.raises(ConnectionError, match="BB"):
        get.refresh(members, T0, T0 + 3 * DAY)
    api.fail_for = set()
    n = len(api.calls)
    got = get(["A", "BB"], T0, T0 + 3 * DAY)
    assert len(api.calls) == n
    same(got.iloc[:4], api.raw(["A"], T0, T0 + 3 * DAY))  # A revised
    same(got.iloc[4:], Api().raw(["BB"], T0, T0 + 3 * DAY))  # BB as it was, still covered


def test_string_bounds_reach_a_batched_provider_as_strings() -> None:
    api = Api()
    get = batched(api, MemoryStore(), coerce_bounds=True)
    get(["A", "BB"], "2024-03-04", "2024-03-08")
    got = get(["BB", "A"], "2024-03-06", "2024-03-12")
    assert api.calls[1:] == [(("BB", "A"), "2024-03-09", "2024-03-12")]  # one shared call
    same(got, expected(api, ["BB", "A"], "2024-03-06", "2024-03-12"))


def test_an_empty_member_list_has_no_cached_answer() -> None:
    api = Api()
    get = batched(api, MemoryStore())
    with pytest.raises(rangememo.InvalidOption, match="empty member list"):
        get.cached([], T0, T0)
    assert api.calls == []
