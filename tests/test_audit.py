"""``audit``: refetch cached ranges, report what the provider revised, heal on request."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any

import audit_target
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from pandas.testing import assert_frame_equal

from rangememo import AuditReport, InvalidOption, MemoryStore, ParquetStore, offline, range_cached
from rangememo._cli import main
from rangememo._core.audit import diff_answers
from rangememo.testing import make_bars, make_blocks

START, END = pd.Timestamp("2024-01-01"), pd.Timestamp("2024-06-30")
# Three business days in the middle of the history (a Tuesday to a Thursday).
MIDDLE = [pd.Timestamp("2024-03-12"), pd.Timestamp("2024-03-13"), pd.Timestamp("2024-03-14")]
PRICES = ["open", "high", "low", "close"]


class Provider:
    """Daily bars that can be revised later: ``none``, ``middle`` (three days) or ``split``."""

    def __init__(self) -> None:
        self.revision = "none"
        self.calls = 0

    def answer(self, symbol: str, start: Any, end: Any) -> pd.DataFrame:
        df = make_bars(symbol, start, end)
        if self.revision == "middle":
            hit = df.index.isin(MIDDLE)
            df.loc[hit, "close"] += 1.25
            df.loc[hit, "high"] += 1.25
        elif self.revision == "split":  # 4-for-1, adjusted back over the whole history
            df[PRICES] = df[PRICES] / 4
            df["volume"] = df["volume"] * 4
        return df


@pytest.fixture(params=["memory", "parquet"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    return MemoryStore() if request.param == "memory" else ParquetStore(tmp_path / "cache")


def sync_bars(store: Any, provider: Provider) -> Any:
    @range_cached(key="symbol", step="1D", store=store, namespace="t.audit.bars")
    def bars(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        provider.calls += 1
        return provider.answer(symbol, start, end)

    return bars


def async_bars(store: Any, provider: Provider) -> Any:
    @range_cached(key="symbol", step="1D", store=store, namespace="t.audit.abars")
    async def bars(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        provider.calls += 1
        return provider.answer(symbol, start, end)

    return bars


def files(root: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


# -- the three providers, sync --------------------------------------------------------


def test_unrevised_key_reports_nothing(store: Any) -> None:
    p = Provider()
    bars = sync_bars(store, p)
    bars("AAPL", START, END)
    calls = p.calls
    report = bars.audit("AAPL")
    assert isinstance(report, AuditReport)
    assert report.clean and not report.revised and not report.everywhere
    assert report.advice is None and not report.healed
    assert (report.rows_added, report.rows_removed, report.rows_changed) == (0, 0, 0)
    assert report.columns_changed == () and report.largest_change == {}
    assert report.ranges_checked == report.ranges_covered > 1
    assert report.rows_checked == len(make_bars("AAPL", START, END))
    assert p.calls > calls  # it did ask the provider again


def test_three_revised_days_are_found_exactly(store: Any, tmp_path: Path) -> None:
    p = Provider()
    bars = sync_bars(store, p)
    bars("AAPL", START, END)
    before = bars.cached("AAPL", START, END)
    on_disk = files(tmp_path)
    p.revision = "middle"
    report = bars.audit("AAPL")
    assert (report.rows_added, report.rows_removed, report.rows_changed) == (0, 0, 3)
    assert set(report.columns_changed) == {"high", "close"}
    assert report.largest_change == pytest.approx({"high": 1.25, "close": 1.25})
    assert len(report.revised) == 1
    lo, hi = report.revised[0]
    assert lo <= MIDDLE[0] and MIDDLE[-1] <= hi
    assert not report.everywhere and not report.healed
    # heal=False never changes what is stored.
    assert_frame_equal(bars.cached("AAPL", START, END), before)
    assert files(tmp_path) == on_disk


def test_heal_makes_answers_equal_the_uncached_ones(store: Any) -> None:
    p = Provider()
    bars = sync_bars(store, p)
    bars("AAPL", START, END)
    p.revision = "middle"
    report = bars.audit("AAPL", heal=True)
    assert report.healed and report.rows_changed == 3
    calls = p.calls
    for a, b in [(START, END), (MIDDLE[0], MIDDLE[-1]), (pd.Timestamp("2024-03-01"), END)]:
        assert_frame_equal(bars("AAPL", a, b), p.answer("AAPL", a, b))
    assert p.calls == calls  # answered from the healed rows
    assert bars.audit("AAPL").clean


def test_split_is_reported_as_whole_history(store: Any) -> None:
    p = Provider()
    bars = sync_bars(store, p)
    bars("AAPL", START, END)
    original = make_bars("AAPL", START, END)
    p.revision = "split"
    report = bars.audit("AAPL")
    assert report.everywhere and report.advice is not None and "refetch" in report.advice
    assert report.rows_changed == len(original) and report.rows_added == report.rows_removed == 0
    assert set(report.columns_changed) == {*PRICES, "volume"}
    expected = {c: float((original[c] * 0.75).max()) for c in PRICES}
    expected["volume"] = float((original["volume"] * 3).max())
    assert report.largest_change == pytest.approx(expected)
    healed = bars.audit("AAPL", heal=True)
    assert healed.healed
    calls = p.calls
    assert_frame_equal(bars("AAPL", START, END), p.answer("AAPL", START, END))
    assert p.calls == calls


def test_a_sampled_split_is_still_reported(store: Any) -> None:
    p = Provider()
    bars = sync_bars(store, p)
    bars("AAPL", START, END)
    p.revision = "split"
    for seed in range(5):
        report = bars.audit("AAPL", sample=2, seed=seed)
        assert report.ranges_checked == 2 and report.everywhere
        # every range checked that has bars was revised (a weekend-only range has none)
        held = [r for r in report.ranges if len(make_bars("AAPL", *r))]
        assert list(report.revised) == held


def test_late_print_and_removed_row() -> None:
    extra = pd.Timestamp("2024-02-10")  # a Saturday: make_bars has no row there

    class Late(Provider):
        def answer(self, symbol: str, start: Any, end: Any) -> pd.DataFrame:
            df = make_bars(symbol, start, end)
            if self.revision == "late":
                df = df.drop(index=[pd.Timestamp("2024-02-06")], errors="ignore")
                if start <= extra <= end:
                    row = make_bars(symbol, extra, extra, skip_weekends=False)
                    df = pd.concat([df, row]).sort_index()
            return df

    p = Late()
    bars = sync_bars(MemoryStore(), p)
    bars("AAPL", START, END)
    p.revision = "late"
    report = bars.audit("AAPL", heal=True)
    assert (report.rows_added, report.rows_removed, report.rows_changed) == (1, 1, 0)
    assert_frame_equal(bars("AAPL", START, END), p.answer("AAPL", START, END))


# -- sampling and bounds --------------------------------------------------------------


def test_sample_count_fraction_all_and_seed() -> None:
    p = Provider()
    bars = sync_bars(MemoryStore(), p)
    bars("AAPL", START, END)
    total = bars.audit("AAPL").ranges_covered
    assert total == 7  # 182 days in ranges of 30 days
    assert bars.audit("AAPL", sample=3).ranges_checked == 3
    assert bars.audit("AAPL", sample=100).ranges_checked == total
    assert bars.audit("AAPL", sample=0.5).ranges_checked == 4  # ceil(3.5)
    assert bars.audit("AAPL", sample="all").ranges_checked == total
    assert bars.audit("AAPL", sample=np.int64(2)).ranges_checked == 2
    assert bars.audit("AAPL", sample=np.float64(0.3)).ranges_checked == 3  # ceil(2.1)
    one = bars.audit("AAPL", sample=3, seed=7).ranges
    assert bars.audit("AAPL", sample=3, seed=7).ranges == one
    seen = {bars.audit("AAPL", sample=3, seed=s).ranges for s in range(10)}
    assert len(seen) > 1
    for bad in (0, -1, 0.0, 1.5, True, "some", [1]):
        with pytest.raises(InvalidOption, match="sample="):
            bars.audit("AAPL", sample=bad)


def test_span_and_bounds_restrict_the_ranges() -> None:
    p = Provider()
    bars = sync_bars(MemoryStore(), p)
    bars("AAPL", START, END)
    weekly = bars.audit("AAPL", span="7D")
    assert weekly.ranges_covered == 26
    assert all((b - a) <= pd.Timedelta(days=6) for a, b in weekly.ranges)
    part = bars.audit("AAPL", start=pd.Timestamp("2024-03-01"), end=pd.Timestamp("2024-03-31"))
    assert part.ranges[0][0] == pd.Timestamp("2024-03-01")
    assert part.ranges[-1][1] == pd.Timestamp("2024-03-31")
    p.revision = "split"
    assert bars.audit("AAPL", start=pd.Timestamp("2024-04-01"), heal=True).healed
    # only April on was healed: March still holds the unsplit prices
    assert_frame_equal(
        bars.cached("AAPL", pd.Timestamp("2024-03-01"), pd.Timestamp("2024-03-29")),
        make_bars("AAPL", pd.Timestamp("2024-03-01"), pd.Timestamp("2024-03-29")),
    )


def test_a_key_never_cached_and_offline() -> None:
    bars = sync_bars(MemoryStore(), Provider())
    report = bars.audit("NOPE")
    assert report.ranges_covered == 0 and report.clean and report.key == ("NOPE",)
    with offline(), pytest.raises(InvalidOption, match="audit"):
        bars.audit("NOPE")


def test_int_axis_and_empty_ranges() -> None:
    revised = {"on": False}

    @range_cached(key="chain", step=1, store=MemoryStore())
    def blocks(chain: str, start: int, end: int) -> pd.DataFrame:
        if start >= 1000 and not revised["on"]:  # nothing there at first; a late print later
            return make_blocks(chain, start, start - 1)
        df = make_blocks(chain, start, end)
        if revised["on"]:
            df.loc[df.index == 150, "tx_count"] += 7
        return df

    blocks("eth", 100, 199)
    blocks("eth", 1000, 1009)
    revised["on"] = True
    report = blocks.audit("eth")
    assert report.ranges_covered == 2  # an int axis: each covered piece whole
    assert (report.rows_added, report.rows_changed) == (10, 1)
    assert report.largest_change == {"tx_count": 7.0}
    blocks.audit("eth", heal=True)
    assert_frame_equal(blocks("eth", 1000, 1009), make_blocks("eth", 1000, 1009))


def test_bound_method() -> None:
    p = Provider()

    class Client:
        @range_cached(key="symbol", step="1D", store=MemoryStore())
        def bars(self, symbol: str, start: Any, end: Any) -> pd.DataFrame:
            return p.answer(symbol, start, end)

    c = Client()
    c.bars("AAPL", START, END)
    p.revision = "middle"
    report = c.bars.audit("AAPL", heal=True)
    assert report.rows_changed == 3 and report.healed
    assert_frame_equal(c.bars.cached("AAPL", START, END), p.answer("AAPL", START, END))


# -- async ----------------------------------------------------------------------------


@pytest.mark.parametrize("revision", ["none", "middle", "split"])
async def test_async_audit(store: Any, tmp_path: Path, revision: str) -> None:
    p = Provider()
    bars = async_bars(store, p)
    await bars("AAPL", START, END)
    on_disk = files(tmp_path)
    p.revision = revision
    report = await bars.audit("AAPL")
    assert files(tmp_path) == on_disk
    assert report.clean == (revision == "none")
    assert report.everywhere == (revision == "split")
    if revision == "middle":
        assert report.rows_changed == 3
    healed = await bars.audit("AAPL", heal=True)
    assert healed.healed == (revision != "none")
    calls = p.calls
    assert_frame_equal(await bars("AAPL", START, END), p.answer("AAPL", START, END))
    assert p.calls == calls


async def test_async_bound_method() -> None:
    p = Provider()

    class Client:
        @range_cached(key="symbol", step="1D", store=MemoryStore())
        async def bars(self, symbol: str, start: Any, end: Any) -> pd.DataFrame:
            return p.answer(symbol, start, end)

    c = Client()
    await c.bars("AAPL", START, END)
    p.revision = "middle"
    assert (await c.bars.audit("AAPL")).rows_changed == 3


# -- the pure diff --------------------------------------------------------------------


def test_diff_answers_shapes() -> None:
    a = make_bars("X", START, pd.Timestamp("2024-01-10"))
    assert not diff_answers(a, a.copy()).differs
    assert diff_answers(None, None) == diff_answers(a.iloc[:0], a.iloc[:0])
    gone = diff_answers(a, a.iloc[:0])
    assert (gone.removed, gone.columns) == (len(a), ())
    nan = a.astype({"volume": "float64"})
    nan.iloc[2, 4] = float("nan")
    d = diff_answers(nan, nan.copy())
    assert not d.differs  # NaN on both sides is no change
    other = nan.copy()
    other.iloc[2, 4] = 5.0
    d = diff_answers(nan, other)
    assert (d.changed, d.columns, d.largest) == (1, ("volume",), {})
    s = diff_answers(a["close"], (a["close"] + 0.5))
    assert s.changed == len(a) and s.largest == pytest.approx({"close": 0.5})
    extra = a.assign(vwap=1.0)
    assert diff_answers(a, extra).columns == ("vwap",)
    wider = a.astype({"volume": "float64"})
    d = diff_answers(a, wider)
    assert (d.changed, d.columns, d.largest) == (0, ("volume",), {})


def test_a_dtype_revision_is_found_and_healed(store: Any) -> None:
    state = {"float": False}

    def answer(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        df = make_bars(symbol, start, end)
        return df.astype({"volume": "float64"}) if state["float"] else df

    @range_cached(key="symbol", step="1D", store=store, namespace="t.audit.dtype")
    def bars(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        return answer(symbol, start, end)

    bars("AAPL", START, END)
    state["float"] = True
    report = bars.audit("AAPL")
    assert report.columns_changed == ("volume",) and report.rows_changed == 0
    assert bars.audit("AAPL", heal=True).healed
    assert_frame_equal(bars("AAPL", START, END), answer("AAPL", START, END))
    assert bars.audit("AAPL").clean


def test_tz_aware_bounds_ask_in_the_rows_zone() -> None:
    # make_bars lays hourly bars out in the bounds' wall-clock time, across a DST change.
    zone = "America/New_York"
    start = pd.Timestamp("2024-03-08 09:00", tz=zone)
    end = pd.Timestamp("2024-03-12 17:00", tz=zone)
    revised = {"on": False}

    def answer(symbol: str, a: Any, b: Any) -> pd.DataFrame:
        df = make_bars(symbol, a, b, "1h")
        if revised["on"]:
            df.loc[df.index == pd.Timestamp("2024-03-11 10:00", tz=zone), "low"] -= 0.5
        return df

    @range_cached(key="symbol", step="1h", store=MemoryStore())
    def bars(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        return answer(symbol, start, end)

    bars("X", start, end)
    assert bars.audit("X").clean
    revised["on"] = True
    report = bars.audit("X", heal=True)
    assert (report.rows_changed, report.columns_changed) == (1, ("low",))
    assert report.largest_change == pytest.approx({"low": 0.5})
    assert_frame_equal(bars("X", start, end), answer("X", start, end))


# -- the command ------------------------------------------------------------------------


def test_cli_audit_json_and_heal() -> None:
    audit_target.STORE.clear()
    audit_target.REVISED.clear()
    audit_target.bars("AAPL", START, END)
    audit_target.bars("MSFT", START, pd.Timestamp("2024-01-31"))
    runner = CliRunner()
    ok = runner.invoke(main, ["audit", "audit_target:bars", "--json"], catch_exceptions=False)
    assert ok.exit_code == 0, ok.output
    reports = json.loads(ok.output)
    assert [r["key"] for r in reports] == ["('AAPL',)", "('MSFT',)"]
    assert all(r["revised"] == [] for r in reports)
    audit_target.REVISED.update(MIDDLE)
    found = runner.invoke(
        main, ["audit", "audit_target:bars", "AAPL", "--json"], catch_exceptions=False
    )
    assert found.exit_code == 1
    (report,) = json.loads(found.output)
    assert report["rows_changed"] == 3 and report["columns_changed"] == ["close"]
    assert report["largest_change"] == {"close": pytest.approx(2.0)}
    assert report["revised"] and not report["healed"]
    healed = runner.invoke(
        main, ["audit", "audit_target:bars", "('AAPL',)", "--heal"], catch_exceptions=False
    )
    assert healed.exit_code == 0 and "healed" in healed.output and "close" in healed.output
    n = len(audit_target.CALLS)
    assert_frame_equal(
        audit_target.bars("AAPL", START, END), audit_target.provider("AAPL", START, END)
    )
    assert len(audit_target.CALLS) == n
    sampled = runner.invoke(main, ["audit", "audit_target:bars", "AAPL", "--sample", "2", "--json"])
    assert json.loads(sampled.output)[0]["ranges_checked"] == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["audit", "audit_target"], "MODULE:FUNCTION"),
        (["audit", "audit_target:nope"], "nope"),
        (["audit", "audit_target:provider"], "not a function decorated"),
        (["audit", "audit_target:bars", "--sample", "many"], "--sample"),
    ],
)
def test_cli_audit_bad_input(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and message in result.output


async def test_cli_audit_of_an_async_function() -> None:
    audit_target.STORE.clear()
    audit_target.REVISED.clear()
    await audit_target.abars("AAPL", START, END)
    audit_target.REVISED.add(MIDDLE[1])
    # The command runs its own event loop: call it from a thread, outside this test's loop.
    result = await asyncio.to_thread(
        CliRunner().invoke, main, ["audit", "audit_target:abars", "--json", "--heal"]
    )
    assert result.exit_code == 0, result.output
    (report,) = json.loads(result.output)
    assert report["rows_changed"] == 1 and report["healed"]
    n = len(audit_target.CALLS)
    got = await audit_target.abars("AAPL", START, END)
    assert_frame_equal(got, audit_target.provider("AAPL", START, END))
    assert len(audit_target.CALLS) == n


def test_the_live_edge_is_not_audited() -> None:
    now = dt.datetime(2024, 6, 28, 15, 0, tzinfo=dt.UTC)  # a Friday afternoon
    p = Provider()

    @range_cached(key="symbol", step="1D", store=MemoryStore(), clock=lambda: now)
    def bars(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        return p.answer(symbol, start, end)

    bars("AAPL", START, pd.Timestamp("2024-06-28"))
    assert bars.coverage("AAPL", detail=True)[-1].state == "provisional"
    report = bars.audit("AAPL")
    assert report.ranges[-1][1] == pd.Timestamp("2024-06-27")  # the forming bar is left out
    assert report.rows_checked == len(make_bars("AAPL", START, pd.Timestamp("2024-06-27")))


@given(
    n=st.integers(0, 40),
    data=st.data(),
)
def test_diff_counts_what_was_edited(n: int, data: st.DataObject) -> None:
    index = pd.date_range("2024-01-01", periods=n, freq="D", name="time")
    base = pd.DataFrame(
        {"x": np.arange(n, dtype="float64"), "k": np.arange(n, dtype=np.int64)}, index=index
    )
    rows = list(range(n))
    removed = data.draw(st.sets(st.sampled_from(rows)) if rows else st.just(set()))
    kept = [i for i in rows if i not in removed]
    changed = data.draw(st.sets(st.sampled_from(kept)) if kept else st.just(set()))
    deltas = {i: data.draw(st.floats(0.5, 100)) for i in changed}
    added = data.draw(st.integers(0, 5))
    fresh = base.iloc[kept].copy()
    for i, d in deltas.items():
        fresh.loc[index[i], "x"] += d
    extra = pd.date_range("2025-01-01", periods=added, freq="D", name="time")
    more = pd.DataFrame({"x": np.zeros(added), "k": np.zeros(added, dtype=np.int64)}, index=extra)
    fresh = pd.concat([fresh, more])
    d = diff_answers(base, fresh)
    assert (d.added, d.removed, d.changed) == (added, len(removed), len(changed))
    assert d.columns == (("x",) if changed else ())
    assert d.largest == ({"x": pytest.approx(max(deltas.values()))} if changed else {})


@pytest.mark.parametrize(("revision", "everywhere"), [("split", True), ("middle", False)])
def test_one_range_split_needs_most_rows_changed(revision: str, everywhere: bool) -> None:
    p = Provider()
    bars = sync_bars(MemoryStore(), p)
    bars("AAPL", START, END)
    p.revision = revision
    report = bars.audit("AAPL", span="365D")
    assert report.ranges_checked == report.ranges_covered == 1
    assert report.everywhere is everywhere and (report.advice is not None) is everywhere


@pytest.mark.parametrize("closed", ["both", "left"])
def test_date_bounds_and_half_open_ranges(closed: str) -> None:
    revised = {"on": False}
    last = pd.Timedelta(days=1) if closed == "left" else pd.Timedelta(0)

    def answer(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        df = make_bars(symbol, pd.Timestamp(start), pd.Timestamp(end) - last)
        if revised["on"]:
            df.loc[df.index == pd.Timestamp("2024-02-14"), "open"] += 3
        return df

    @range_cached(key="symbol", step="1D", closed=closed, store=MemoryStore())
    def bars(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        return answer(symbol, start, end)

    s, e = dt.date(2024, 1, 1), dt.date(2024, 4, 1)
    bars("A", s, e)
    clean = bars.audit("A")
    assert clean.clean and all(isinstance(a, dt.date) for a, _ in clean.ranges)
    revised["on"] = True
    report = bars.audit("A", heal=True)
    assert (report.rows_changed, report.largest_change) == (1, {"open": 3.0})
    assert_frame_equal(bars("A", s, e), answer("A", s, e))


@pytest.mark.parametrize("kind", ["memory", "parquet"])
def test_a_unit_change_alone_is_not_a_revision(kind: str, tmp_path: Path) -> None:
    """A provider answering a ``datetime64[us]`` column where the key holds ``[ns]`` (pandas 3
    parses at varying units) revised nothing: a commit casts it back, so healing could not
    undo the "revision", and a cron job would exit 1 for ever. A changed value still is one."""
    now = {"unit": "ns", "late": pd.Timedelta(0)}

    def answer(start: Any, end: Any) -> pd.DataFrame:
        index = pd.date_range(start, end, freq="1D", inclusive="left", name="ts").as_unit("ns")
        when = pd.Series(index, index=index).dt.as_unit(now["unit"]) + pd.Timedelta("3us")
        when.iloc[len(when) // 2 :] += now["late"]
        return pd.DataFrame({"close": np.arange(len(index), dtype=float), "when": when})

    store = MemoryStore() if kind == "memory" else ParquetStore(tmp_path)

    @range_cached(key="symbol", step="1D", store=store, namespace="audit.units")
    def bars(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        return answer(start, end)

    start, end = pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-20")
    first = bars("A", start, end)
    now["unit"] = "us"
    assert bars.audit("A").clean
    now["late"] = pd.Timedelta("1us")
    report = bars.audit("A", heal=True)
    assert report.columns_changed == ("when",)
    assert report.rows_changed == len(first) - len(first) // 2
    assert bars.audit("A").clean, "healed"
