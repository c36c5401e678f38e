"""Rows on the bounds' local-day grid in one season only: every answer equals the uncached one.

UTC-midnight bars asked with London bounds sit at London midnight in winter (GMT) and at
01:00 in summer (BST); a fixed 04:00Z asked with New York bounds is New York midnight in
summer only. A row seen on the grid in one season must not vouch for the other: a key
whose only row was a GMT one skipped the BST bar of a sliver as "no grid point, no row".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest
from adv_providers import NY, Bars
from pandas.testing import assert_frame_equal

from rangememo import MemoryStore, ParquetStore, range_cached

LONDON = "Europe/London"


@pytest.fixture(params=["memory", "parquet"])
def make_store(request: pytest.FixtureRequest, tmp_path: Any) -> Callable[[], Any]:
    """The same MemoryStore, or a NEW ParquetStore on one directory (a reopen)."""
    if request.param == "memory":
        store = MemoryStore()
        return lambda: store
    return lambda: ParquetStore(tmp_path / "cache")


def cache(provider: Bars, store: Any) -> Any:
    return range_cached(key="symbol", step="1D", store=store, namespace="ldn", max_concurrency=1)(
        provider
    )


def at(d: str, tz: str | None, hours: float = 0) -> pd.Timestamp:
    return pd.Timestamp(d, tz=tz) + pd.Timedelta(hours=hours)


def check(cached: Any, provider: Bars, start: Any, end: Any) -> None:
    assert_frame_equal(cached("X", start, end), provider.expect(start, end), check_exact=True)


def test_the_hypothesis_example(make_store):
    """[Oct 20, Oct 20], [Oct 28, Oct 28], then [Oct 20 00:00, Oct 20 01:00] (London bounds).

    The empty first answer claims London midnight only; the GMT row of Oct 28 is on the
    London grid, but the BST row at Oct 20 00:00Z (01:00 London) is not, and was skipped.
    """
    provider = Bars("UTC", "00:00", "UTC", weekends=True)
    for start, end in [
        (at("2024-10-20", LONDON), at("2024-10-20", LONDON)),
        (at("2024-10-28", LONDON), at("2024-10-28", LONDON)),
        (at("2024-10-20", LONDON), at("2024-10-20", LONDON, 1)),
    ]:
        check(cache(provider, make_store()), provider, start, end)
    assert not provider.duplicates()


def test_spring_mirror(make_store):
    """The same calls across the March change: GMT row before, BST sliver after."""
    provider = Bars("UTC", "00:00", "UTC", weekends=True)
    for start, end in [
        (at("2024-04-05", LONDON), at("2024-04-05", LONDON)),
        (at("2024-03-25", LONDON), at("2024-03-25", LONDON)),
        (at("2024-04-05", LONDON), at("2024-04-05", LONDON, 1)),
    ]:
        check(cache(provider, make_store()), provider, start, end)
    assert not provider.duplicates()


def test_start_rounded_up_past_the_change_claims_no_bst_sliver(make_store):
    """A gap from Oct 27 00:30 London is asked from Oct 28 (GMT rows on the grid): the
    sliver before it holds the BST row at Oct 27 00:00Z, which must still be fetched."""
    provider = Bars("UTC", "00:00", "UTC", weekends=True)
    cached = cache(provider, make_store())
    check(cached, provider, at("2024-10-20", LONDON), at("2024-10-27", LONDON, 0.5))
    check(cached, provider, at("2024-10-20", LONDON), at("2024-10-31", LONDON))
    check(
        cache(provider, make_store()), provider, at("2024-10-26", LONDON), at("2024-10-29", LONDON)
    )
    assert not provider.duplicates()


@pytest.mark.parametrize("tod", ["04:00", "05:00"])
@pytest.mark.parametrize("change", ["2024-03-10", "2024-11-03"])
def test_fixed_utc_hour_with_new_york_bounds(tod, change, make_store):
    """04:00Z / 05:00Z bars asked with New York bounds: New York midnight in one season."""
    provider = Bars("UTC", tod, "UTC")
    base = pd.Timestamp(change)
    for i in range(-8, 9):
        day = (base + pd.Timedelta(days=i)).strftime("%Y-%m-%d")
        back = (base + pd.Timedelta(days=i - 4)).strftime("%Y-%m-%d")
        cached = cache(provider, make_store())
        check(cached, provider, at(day, NY), at(day, NY))
        check(cached, provider, at(back, NY), at(day, NY, 16 if i % 2 else 0))
    assert not provider.duplicates()


@pytest.mark.parametrize("change", ["2024-03-31", "2024-10-27"])
def test_sliding_window_of_utc_bars_with_london_bounds(change, make_store):
    """A 3-day window sliding a day at a time across the EU change, point requests between."""
    provider = Bars("UTC", "00:00", "UTC", weekends=True)
    base = pd.Timestamp(change)
    for i in range(-6, 7):
        day = (base + pd.Timedelta(days=i)).strftime("%Y-%m-%d")
        back = (base + pd.Timedelta(days=i - 3)).strftime("%Y-%m-%d")
        cached = cache(provider, make_store())
        check(cached, provider, at(day, LONDON), at(day, LONDON))
        check(cached, provider, at(back, LONDON), at(day, LONDON, 1))
    assert not provider.duplicates()


def test_london_midnight_shown_in_london_with_utc_bounds(make_store):
    """The documented limit's calls (test_adversarial), with the rows shown in their own
    zone: the London offset of the rows is known, so the GMT side vouches for no BST row."""
    provider = Bars(LONDON, "00:00", "same", weekends=True)
    cached = cache(provider, make_store())
    check(cached, provider, at("2024-10-26", "UTC"), at("2024-10-26", "UTC", 9.5))
    check(cached, provider, at("2024-11-03", "UTC"), at("2024-11-06", "UTC", 16))
    check(cached, provider, at("2024-10-26", "UTC"), at("2024-10-27", "UTC", 9.5))
    assert not provider.duplicates()


def test_london_0500_shown_in_london_with_new_york_bounds(make_store):
    """05:00 London is New York midnight but in the week the EU clocks changed first."""
    provider = Bars(LONDON, "05:00", "same", weekends=True)
    cached = cache(provider, make_store())
    check(cached, provider, at("2024-10-20", NY), at("2024-10-27", NY))
    check(cached, provider, at("2024-10-26", NY), at("2024-10-27", NY, 1))
    check(cache(provider, make_store()), provider, at("2024-10-24", NY), at("2024-11-05", NY))
    assert not provider.duplicates()
