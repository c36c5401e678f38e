"""ParquetStore: exact round trips, the on-disk layout, the memory layer, lazy reads."""

from __future__ import annotations

import datetime as dt
import json
import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from pandas.testing import assert_frame_equal

import rangememo
from rangememo import CacheWarning, ParquetStore, SchemaMismatchError, range_cached
from rangememo._stores.parquet.local.medium import LocalMedium
from rangememo._stores.parquet.log import load
from rangememo._stores.parquet.store import default_cache_dir
from rangememo._stores.parquet.stored_rows import SegmentRows
from rangememo.testing import FakeProvider, make_bars, make_blocks
from rangememo.testing.store_contract import assert_same

D = dt.datetime
NS = "tests.parquet@v0"


def day(m: int, d: int, tz: Any = None) -> pd.Timestamp:
    return pd.Timestamp(2024, m, d, tz=tz)


def cached(root: Path, fn: Any, **options: Any) -> Any:
    """``fn`` under ``range_cached`` over a new ParquetStore on ``root`` (a fresh memory)."""
    store = options.pop("store", None) or ParquetStore(root, durable=False)
    options.setdefault("key", "symbol")
    return range_cached(store=store, namespace="tests.parquet", **options)(fn)


def counting(fn: Any) -> Any:
    """``fn`` with a ``calls`` list of the ranges it was asked for."""

    def wrapper(symbol: str, start: Any, end: Any) -> Any:
        wrapper.calls.append((start, end))  # type: ignore[attr-defined]
        return fn(symbol, start, end)

    wrapper.calls = []  # type: ignore[attr-defined]
    return wrapper


# -- exactness across the Parquet round trip ----------------------------------------------


def _tz_bars(symbol: str, start: Any, end: Any) -> pd.DataFrame:
    return make_bars(symbol, start, end, tz="America/New_York")


def _second_bars(symbol: str, start: Any, end: Any) -> pd.DataFrame:
    bars = make_bars(symbol, start, end)
    out = bars.set_axis(bars.index.as_unit("s"))
    out["label"] = pd.array([f"{symbol}{t:%m%d}" for t in out.index], dtype="object")
    out["py"] = pd.array(["x"] * len(out), dtype="string[python]")
    out["at"] = out.index.tz_localize("Asia/Tokyo").as_unit("ms")
    out["n"] = pd.array(np.where(out["volume"] % 3 == 0, None, out["volume"]), dtype="Int64")
    return out


def _position_column(symbol: str, start: Any, end: Any) -> pd.DataFrame:
    return make_bars(symbol, start, end).reset_index()


def _series(symbol: str, start: Any, end: Any) -> pd.Series:
    return make_bars(symbol, start, end, tz="UTC")["close"].rename(("close", symbol))


def _table(symbol: str, start: Any, end: Any) -> pa.Table:
    bars = make_bars(symbol, start, end).reset_index()
    table = pa.Table.from_pandas(bars, preserve_index=False)
    return table.set_column(0, "time", table.column("time").cast(pa.timestamp("s")))


def _blocks(symbol: str, start: int, end: int) -> pd.DataFrame:
    return make_blocks(symbol, start, end)


EXACT = [
    ("naive", make_bars, {"step": "1D"}, lambda d: day(1, d)),
    ("tz-aware", _tz_bars, {"step": "1D"}, lambda d: day(1, d, "America/New_York")),
    ("seconds-and-odd-dtypes", _second_bars, {"step": "1D"}, lambda d: day(1, d)),
    ("position-column", _position_column, {"step": "1D", "index": "time"}, lambda d: day(1, d)),
    ("series", _series, {"step": "1D"}, lambda d: day(1, d, "UTC")),
    ("arrow-table", _table, {"step": "1D", "index": "time"}, lambda d: day(1, d)),
    ("int-index", _blocks, {"step": 1}, lambda d: 1000 + d),
]


@pytest.mark.parametrize(("name", "raw", "options", "bound"), EXACT, ids=[e[0] for e in EXACT])
def test_cached_results_equal_uncached_after_a_reopen(tmp_path, name, raw, options, bound):
    """Values, dtypes (units, tz), column order, index, Series name, arrow schema survive disk."""
    requests = [(2, 10), (8, 20), (25, 31), (1, 31)]
    warm = cached(tmp_path, raw, **options)
    for a, b in requests:
        assert_same(warm("AAA", bound(a), bound(b)), raw("AAA", bound(a), bound(b)))
    provider = counting(raw)
    cold = cached(tmp_path, provider, **options)  # a new store: nothing in memory
    for a, b in requests:
        assert_same(cold("AAA", bound(a), bound(b)), raw("AAA", bound(a), bound(b)))
    assert provider.calls == []


def test_unstorable_result_is_returned_with_a_warning(tmp_path):
    """Rows Parquet cannot hold (mixed-type objects) are served uncached, one CacheWarning."""

    def mixed(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        bars = make_bars(symbol, start, end)
        return bars.assign(note=pd.array([1, "a"] * (len(bars) // 2) + [2.5] * (len(bars) % 2)))

    provider = counting(mixed)
    fn = cached(tmp_path, provider, step="1D")
    with pytest.warns(CacheWarning, match="cannot"):
        got = fn("AAA", day(1, 1), day(1, 10))
    assert_frame_equal(got, mixed("AAA", day(1, 1), day(1, 10)))
    with warnings.catch_warnings():  # warned once per key, not once per call
        warnings.simplefilter("error", CacheWarning)
        fn("AAA", day(1, 1), day(1, 10))
    assert len(provider.calls) == 2
    assert not list(tmp_path.rglob("*.parquet"))


def test_an_arrow_decimal_column_is_returned_uncached_with_a_warning(tmp_path):
    """pandas prints ``decimal128(10, 2)[pyarrow]`` but refuses that name back
    (NotImplementedError): the answer is still the provider's, with one CacheWarning."""
    import decimal

    import pyarrow as pa

    def priced(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        bars = make_bars(symbol, start, end)
        cents = [decimal.Decimal(int(c * 100)) / 100 for c in bars["close"]]
        return bars.assign(tick=pd.array(cents, dtype=pd.ArrowDtype(pa.decimal128(10, 2))))

    provider = counting(priced)
    fn = cached(tmp_path, provider, step="1D")
    with pytest.warns(CacheWarning, match="cannot restore exactly"):
        got = fn("AAA", day(1, 1), day(1, 10))
    assert_frame_equal(got, priced("AAA", day(1, 1), day(1, 10)))
    assert not list(tmp_path.rglob("*.parquet"))


def _in_callers_zone(symbol: str, start: Any, end: Any) -> pd.DataFrame:
    utc = make_bars(symbol, start.tz_convert("UTC"), end.tz_convert("UTC"))
    return utc.tz_convert(start.tz)


@pytest.mark.parametrize("last", ["2024-01-05", "2024-01-20"], ids=["hit", "partial-hit"])
def test_answers_follow_the_callers_timezone_after_a_reopen(tmp_path, last):
    """A provider answering in the caller's zone: a reopened store answers a New York
    request in New York time, as the uncached call does."""
    warm = cached(tmp_path, _in_callers_zone, step="1D")
    warm("X", pd.Timestamp("2024-01-02", tz="UTC"), pd.Timestamp("2024-01-12", tz="UTC"))
    zone = "America/New_York"
    ny = (pd.Timestamp("2024-01-02 19:00", tz=zone), pd.Timestamp(last + " 19:00", tz=zone))
    cold = cached(tmp_path, _in_callers_zone, step="1D")
    assert_same(cold("X", *ny), _in_callers_zone("X", *ny))
    assert_same(cached(tmp_path, _in_callers_zone, step="1D")("X", *ny), _in_callers_zone("X", *ny))


# -- layout --------------------------------------------------------------------------------


def test_layout_is_parquet_and_json_with_readable_names(tmp_path):
    """Namespace dir + namespace.json, key hash dir + log/ (records, checkpoint), segments."""
    fn = cached(tmp_path, make_bars, step="1D")
    fn("AAA", day(1, 2), day(1, 10))
    fn("AAA", day(1, 11), day(1, 12))
    (nsdir,) = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    assert nsdir.name.startswith("tests.parquet@v0-")
    assert json.loads((nsdir / "namespace.json").read_text())["namespace"] == NS
    (keydir,) = [p for p in nsdir.iterdir() if p.is_dir()]
    logs = sorted((keydir / "log").iterdir())
    assert logs and all(p.name[:10].isdigit() and p.suffix == ".json" for p in logs)
    state = load(LocalMedium(tmp_path), f"{nsdir.name}/{keydir.name}")
    assert state is not None and state.seq == 2
    assert state.key == {"repr": "('AAA',)", "key": {"tuple": ["AAA"]}}
    assert state.schema is not None and state.schema["kind"] == "DataFrame"
    assert state.schema["axis"] == ["datetime", False]
    assert [s.rows for s in state.segments] == [9]  # the small tail merged with the write
    files = sorted(p.name for p in keydir.iterdir() if p.is_file())
    assert all(f.startswith("seg-") and f.endswith(".parquet") for f in files)
    everything = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert all(p.suffix in (".json", ".parquet", ".lock") for p in everything)


@pytest.mark.parametrize("symbol", ["../../etc/passwd", "a\x00b", "x" * 5000, "/abs", "..", "é/ü"])
def test_dangerous_key_values_are_hashed_never_paths(tmp_path, symbol):
    """A key that would be a dangerous path only ever appears hashed on disk."""
    store = ParquetStore(tmp_path / "store", durable=False)
    fn = cached(tmp_path, make_bars, step="1D", store=store)
    assert_same(fn(symbol, day(1, 2), day(1, 5)), make_bars(symbol, day(1, 2), day(1, 5)))
    for path in (tmp_path / "store").rglob("*"):
        assert path.resolve().is_relative_to((tmp_path / "store").resolve())
        assert len(path.name) < 120
    assert store.keys(NS) == [(symbol,)]
    assert not (tmp_path / "etc").exists()


def test_dangerous_namespace_is_sanitised(tmp_path):
    """A namespace with separators and dots becomes a safe directory name plus a hash."""
    store = ParquetStore(tmp_path, durable=False)

    @range_cached(key="symbol", step="1D", store=store, namespace="../../x/y")
    def fn(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        return make_bars(symbol, start, end)

    fn("AAA", day(1, 2), day(1, 5))
    (nsdir,) = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    assert "/" not in nsdir.name and not nsdir.name.startswith(".")
    assert store.keys("../../x/y@v0") == [("AAA",)]


def test_default_cache_dir_and_path_stores(tmp_path, monkeypatch):
    """$RANGEMEMO_CACHE_DIR wins; store='dir' means a ParquetStore there."""
    monkeypatch.setenv("RANGEMEMO_CACHE_DIR", str(tmp_path / "env"))
    assert default_cache_dir() == tmp_path / "env"
    monkeypatch.delenv("RANGEMEMO_CACHE_DIR")
    assert default_cache_dir().name == "rangememo"

    @range_cached(key="symbol", step="1D", store=str(tmp_path / "given"), namespace="p")
    def fn(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        return make_bars(symbol, start, end)

    fn("AAA", day(1, 2), day(1, 3))
    assert list((tmp_path / "given").rglob("log/*.json"))


def test_store_pickles_as_its_directory(tmp_path):
    """A pickled store reopens the same directory with the same options."""
    store = ParquetStore(tmp_path, memory=1234, compact_at=7)
    again = pickle.loads(pickle.dumps(store))
    assert (again.path, again.memory, again.compact_at) == (store.path, 1234, 7)


def test_parquet_store_is_exported():
    """The store is part of the public API."""
    assert "ParquetStore" in rangememo.__all__


# -- the memory layer ----------------------------------------------------------------------


def test_writes_of_another_process_are_seen_on_the_next_call(tmp_path):
    """Two stores on one directory (as two processes): a hit checks the ledger's stat."""
    first = counting(make_bars)
    second = counting(make_bars)
    a = cached(tmp_path, first, step="1D")
    b = cached(tmp_path, second, step="1D")
    a("AAA", day(1, 2), day(1, 10))
    b("AAA", day(1, 2), day(1, 10))  # read from disk
    b("AAA", day(1, 11), day(1, 20))  # b extends the key
    assert_same(a("AAA", day(1, 2), day(1, 20)), make_bars("AAA", day(1, 2), day(1, 20)))
    assert first.calls == [(day(1, 2), day(1, 10))]
    assert second.calls == [(day(1, 11), day(1, 20))]


def test_a_hit_served_from_memory_reads_no_file(tmp_path, monkeypatch):
    """After the first read, a hit does two stats of the log and nothing else."""
    fn = cached(tmp_path, make_bars, step="1D")
    fn("AAA", day(1, 2), day(1, 20))

    def no_reads(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a memory hit read a file")

    monkeypatch.setattr("rangememo._stores.parquet.segments.pq.ParquetFile", no_reads)
    monkeypatch.setattr("rangememo._stores.parquet.reading.load", no_reads)
    monkeypatch.setattr("rangememo._stores.parquet.local.medium.LocalMedium.read", no_reads)
    assert_same(fn("AAA", day(1, 5), day(1, 9)), make_bars("AAA", day(1, 5), day(1, 9)))


def test_memory_budget_bounds_resident_keys(tmp_path):
    """``memory=`` bytes: least recently used keys are dropped (and read back from disk)."""
    store = ParquetStore(tmp_path, memory=30_000, durable=False)
    fn = cached(tmp_path, make_bars, step="1D", store=store)
    for symbol in ("AAA", "BBB", "CCC", "DDD"):
        fn(symbol, day(1, 1), day(12, 31))
    resident = [k for _, k in store._memory.resident()]
    assert resident and len(resident) < 4 and ("DDD",) in resident
    assert store._memory.nbytes <= 30_000
    assert_same(fn("AAA", day(2, 1), day(3, 1)), make_bars("AAA", day(2, 1), day(3, 1)))


def test_memory_zero_still_works(tmp_path):
    """With no memory layer every call reads the ledger from disk, results stay exact."""
    provider = counting(make_bars)
    fn = cached(tmp_path, provider, step="1D", store=ParquetStore(tmp_path, memory=0))
    for _ in range(2):
        assert_same(fn("AAA", day(1, 2), day(1, 20)), make_bars("AAA", day(1, 2), day(1, 20)))
    assert len(provider.calls) == 1


# -- lazy reads of big keys ----------------------------------------------------------------


def _minute(symbol: str, start: Any, end: Any) -> pd.DataFrame:
    return make_bars(symbol, start, end, "1min", skip_weekends=False)


def test_a_small_window_of_a_big_key_reads_only_its_row_group(tmp_path, monkeypatch):
    """A new process asking 30 rows of a 200k-row key decodes one row group, not the key."""
    start = pd.Timestamp("2024-01-01")
    warm = cached(tmp_path, _minute, step="1min")
    warm("AAA", start, start + pd.Timedelta(minutes=199_999))
    reads: list[Any] = []
    original = rangememo._stores.parquet.segments.pq.ParquetFile

    def spy(*args: Any, **kwargs: Any) -> Any:
        pf = original(*args, **kwargs)
        real = pf.read_row_groups

        def read_row_groups(groups: Any, **kw: Any) -> Any:
            reads.append(list(groups))
            return real(groups, **kw)

        pf.read_row_groups = read_row_groups
        return pf

    monkeypatch.setattr(rangememo._stores.parquet.segments.pq, "ParquetFile", spy)
    store = ParquetStore(tmp_path, durable=False)
    cold = cached(tmp_path, _minute, step="1min", store=store)
    s = start + pd.Timedelta(minutes=150_000)
    e = s + pd.Timedelta(minutes=29)
    assert_same(cold("AAA", s, e), _minute("AAA", s, e))
    assert reads == [[2]]
    rows = store.get(NS, ("AAA",)).rows
    assert isinstance(rows, SegmentRows) and not rows.complete
    assert len(rows.chunks) == 1 and len(rows.chunks[0]) == 30


def test_appending_to_a_reopened_key_loads_nothing(tmp_path, monkeypatch):
    """A write needs the ledger, never the rows: O(appended) even in a new process."""
    warm = cached(tmp_path, make_bars, step="1D")
    warm("AAA", day(1, 1), day(6, 30))

    def no_reads(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a write loaded rows")

    monkeypatch.setattr("rangememo._stores.parquet.key.read_segment", no_reads)
    store = ParquetStore(tmp_path, durable=False, eager_rows=0)  # as for a big key
    fn = cached(tmp_path, make_bars, step="1D", store=store)
    fn.prefetch("AAA", day(7, 1), day(7, 31))
    assert store.get(NS, ("AAA",)).ledger.intervals()  # only what the ledger says
    monkeypatch.undo()
    assert_same(fn("AAA", day(6, 20), day(7, 10)), make_bars("AAA", day(6, 20), day(7, 10)))


def test_newest_segment_wins_after_a_reopen(tmp_path):
    """Overlapping commits: the later one's rows win, also when read back from disk."""

    def revised(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        bars = make_bars(symbol, start, end)
        return bars.assign(close=bars["close"] + 1000)

    old = cached(tmp_path, make_bars, step="1D")
    old("AAA", day(1, 1), day(1, 20))
    new = cached(tmp_path, revised, step="1D")
    new.invalidate("AAA", start=day(1, 8), end=day(1, 12))
    new("AAA", day(1, 1), day(1, 20))
    expected = pd.concat(
        [
            make_bars("AAA", day(1, 1), day(1, 7)),
            revised("AAA", day(1, 8), day(1, 12)),
            make_bars("AAA", day(1, 13), day(1, 20)),
        ]
    )
    assert_same(cached(tmp_path, make_bars, step="1D")("AAA", day(1, 1), day(1, 20)), expected)


# -- compaction ----------------------------------------------------------------------------


def test_compaction_merges_segments_and_keeps_results_exact(tmp_path):
    """Tens of one-day writes make one segment (small ones merge at once); reads agree."""
    store = ParquetStore(tmp_path, durable=False, compact_at=8)
    fn = cached(tmp_path, make_bars, step="1D", store=store)
    for d in range(1, 31):
        fn("AAA", day(1, d), day(1, d))
    doc = store._memory.get(NS, ("AAA",)).doc
    assert len(doc.segments) < 8
    assert not doc.retired  # replaced files go at once: no other process reads the key
    assert_same(fn("AAA", day(1, 1), day(1, 30)), make_bars("AAA", day(1, 1), day(1, 30)))
    cold = cached(tmp_path, counting(make_bars), step="1D")
    assert_same(cold("AAA", day(1, 1), day(1, 30)), make_bars("AAA", day(1, 1), day(1, 30)))
    assert store.compact() == 0  # nothing left to merge
    assert len(store._memory.get(NS, ("AAA",)).doc.segments) == 1
    keydir = next(p for p in tmp_path.glob("*/*") if p.is_dir())
    assert len(list(keydir.glob("seg-*.parquet"))) == 1  # the replaced files are gone
    assert_same(
        cached(tmp_path, make_bars, step="1D")("AAA", day(1, 1), day(1, 30)),
        cold("AAA", day(1, 1), day(1, 30)),
    )


def test_compaction_keeps_a_new_column_apart(tmp_path):
    """Schema drift: parts before and after a new column are not merged into one file."""

    def wider(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        bars = make_bars(symbol, start, end)
        return bars.assign(vwap=bars["close"] * 1.0)

    store = ParquetStore(tmp_path, durable=False)
    cached(tmp_path, make_bars, step="1D", store=store)("AAA", day(1, 1), day(1, 10))
    later = cached(tmp_path, wider, step="1D", store=store)
    later("AAA", day(1, 11), day(1, 20))
    expected = later("AAA", day(1, 1), day(1, 20))
    assert list(expected.columns) == [*make_bars("AAA", day(1, 1), day(1, 1)).columns, "vwap"]
    assert expected.loc[: day(1, 10), "vwap"].isna().all()
    store.compact()
    assert len(store._memory.get(NS, ("AAA",)).doc.segments) == 2
    assert_same(cached(tmp_path, wider, step="1D")("AAA", day(1, 1), day(1, 20)), expected)
    assert_same(
        cached(tmp_path, wider, step="1D")("AAA", day(1, 12), day(1, 20)),
        wider("AAA", day(1, 12), day(1, 20)),
    )


def _str_volume(symbol: str, start: Any, end: Any) -> pd.DataFrame:
    # A real conflict (int64 to float64 would be a lossless widening, merged).
    return make_bars(symbol, start, end).astype({"volume": "str"})


def _with_close_time(tz: str) -> Any:
    def provider(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        bars = make_bars(symbol, start, end)
        return bars.assign(closed_at=(bars.index + pd.Timedelta(hours=16)).tz_localize(tz))

    return provider


@pytest.mark.parametrize(
    ("before", "after", "column"),
    [
        (make_bars, _str_volume, "volume"),
        (_with_close_time("UTC"), _with_close_time("Asia/Tokyo"), "closed_at"),
    ],
    ids=["dtype", "timezone"],
)
def test_changed_dtype_or_timezone_raises_and_writes_nothing(tmp_path, before, after, column):
    """Schema drift of an existing column: SchemaMismatchError naming it; disk untouched."""
    cached(tmp_path, before, step="1D")("AAA", day(1, 1), day(1, 10))
    files = _files(tmp_path)
    with pytest.raises(SchemaMismatchError, match=column):
        cached(tmp_path, after, step="1D")("AAA", day(1, 1), day(1, 20))
    assert _files(tmp_path) == files
    assert_same(
        cached(tmp_path, before, step="1D")("AAA", day(1, 2), day(1, 9)),
        before("AAA", day(1, 2), day(1, 9)),
    )


def _files(root: Path) -> dict[Path, bytes]:
    """The store's files but readers' leases (a reader announcing itself writes one)."""
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and ".leases" not in p.parts}


# -- async ------------------------------------------------------------------------------------


async def test_async_functions_over_the_store(tmp_path):
    """An async cached function: gaps only, exact, and a reopened store makes no call."""
    provider = FakeProvider()

    async def get_bars(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        return await provider.get_bars(symbol, start, end)

    fn = cached(tmp_path, get_bars, step="1D")
    await fn("AAA", D(2024, 1, 1), D(2024, 1, 10))
    await fn("AAA", D(2024, 1, 5), D(2024, 1, 20))
    assert provider.call_count == 2
    cold = cached(tmp_path, get_bars, step="1D")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_same(
            await cold("AAA", D(2024, 1, 1), D(2024, 1, 20)),
            make_bars("AAA", "2024-01-01", "2024-01-20"),
        )
    assert provider.call_count == 2
