"""Adversarial tests of three fast paths (and the schemas they see), through the public API.

* ``_core/struct.py``: the small records (gaps, stamps, coverage states, marches,
  chunks) are slotted ``Struct`` classes instead of dataclasses.
* ``_core/frames.py::column_dtypes``: reads the blocks' placements (``mgr_locs``)
  for frames of at most 64 columns instead of ``DataFrame.dtypes``.
* ``_core/rows.py::Rows.replace``: a fast path for a piece appended past every
  stored row (the live update).

The oracle is always the uncached provider: every answer the cache gives is
compared with what the provider itself returns for the same request (or, where
the provider is deliberately inconsistent between calls, with the rows of the
last provider call that covered each position, which is what "newest fetch
wins" promises), using ``assert_frame_equal`` (values, dtypes, index name, tz).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pandas.testing import assert_frame_equal

from rangememo import CacheWarning, MemoryStore, ParquetStore, range_cached
from rangememo._core.frames import column_dtypes

DAY = pd.Timedelta("1D")
D0 = pd.Timestamp("2024-01-01")
OPTS: dict[str, Any] = {"key": "sym", "step": "1D", "readahead": None, "settle": False}


def _day(n: int) -> pd.Timestamp:
    return D0 + n * DAY


def _index(start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
    ix = pd.date_range(start, end, freq="D", name="time")
    return pd.DatetimeIndex(ix.to_numpy(), name="time")  # no freq, as providers give


def _store(kind: str, tmp_path: Path) -> Any:
    return MemoryStore() if kind == "memory" else ParquetStore(tmp_path / "cache")


# -- frames of every awkward shape --------------------------------------------------------


def build(kind: str, start: pd.Timestamp, end: pd.Timestamp, call: int = 0) -> pd.DataFrame:
    """Deterministic rows for days ``[start, end]``; values depend on the day only."""
    ix = _index(start, end)
    n = np.asarray((ix - D0) // DAY, dtype=np.int64)
    f, i = n * 1.5, n * 7
    if kind == "numpy_mixed":
        obj = pd.Series([f"s{k}" for k in n], dtype=object, index=ix)
        return pd.DataFrame({"a": f, "b": i, "c": n % 2 == 0, "d": obj}, index=ix)
    if kind == "duplicate_names":
        df = pd.DataFrame({"x": f, "y": i, "z": f + 1}, index=ix)
        df.columns = pd.Index(["x", "y", "x"])
        return df
    if kind == "multiindex_columns":
        df = pd.DataFrame({"a": f, "b": i, "c": f * 2}, index=ix)
        df.columns = pd.MultiIndex.from_tuples([("p", "a"), ("p", "b"), ("q", "a")])
        return df
    if kind == "extension":
        return pd.DataFrame(
            {
                "s": pd.array([f"v{k}" for k in n], dtype="string[pyarrow]"),
                "I": pd.array([None if k % 3 == 0 else int(k) for k in n], dtype="Int64"),
                "B": pd.array([None if k % 4 == 0 else bool(k % 2) for k in n], dtype="boolean"),
                "cat": pd.Categorical(
                    [["lo", "mid", "hi"][k % 3] for k in n], categories=["lo", "mid", "hi"]
                ),
                "tz": (ix.tz_localize("UTC") + pd.Timedelta("1h")).tz_convert("America/New_York"),
                "td": pd.to_timedelta(n, unit="s"),
                "f32": f.astype(np.float32),
                "u8": (n % 200).astype(np.uint8),
            },
            index=ix,
        )
    if kind == "inserted":  # df.insert and df[col] = ...: unconsolidated, unordered blocks
        df = pd.DataFrame({"b": i}, index=ix)
        df.insert(0, "a", f)
        df["c"] = f * 3
        df.insert(1, "s", pd.Series([f"t{k}" for k in n], index=ix))
        df["b"] = i + 1  # replaces a column in place: a new block for it
        return df
    if kind == "zero_columns":
        return pd.DataFrame(index=ix)
    if kind == "int_labels":  # not evenly spaced: pandas would make a RangeIndex of 3, 7, 11
        return pd.DataFrame({3: f, 7: i, 12: f * 2}, index=ix)
    if kind == "range_labels":  # pd.DataFrame(ndarray): a RangeIndex of columns
        return pd.DataFrame(np.column_stack([f, i * 1.0, f * 2]), index=ix)
    if kind == "layout_varies":  # one schema, a different block layout on every call
        cols = {"a": f, "b": i, "c": f * 3, "d": i * 2}
        if call % 3 == 0:
            return pd.DataFrame(cols, index=ix)
        if call % 3 == 1:
            df = pd.DataFrame({"d": cols["d"]}, index=ix)
            df.insert(0, "c", cols["c"])
            df.insert(0, "b", cols["b"])
            df.insert(0, "a", cols["a"])
            return df
        df = pd.DataFrame(index=ix)
        for name in ("a", "b", "c", "d"):
            df[name] = cols[name]
        return df
    if kind.startswith("wide"):  # 64 columns (the walked path) and 65 (get_dtypes)
        width = int(kind[4:])
        out: dict[str, Any] = {}
        for c in range(width):
            out[f"c{c}"] = (f + c, i + c, np.array([f"w{c}"] * len(n), dtype=object))[c % 3]
        return pd.DataFrame(out, index=ix)
    raise KeyError(kind)


KINDS = [
    "numpy_mixed",
    "duplicate_names",
    "multiindex_columns",
    "extension",
    "inserted",
    "zero_columns",
    "int_labels",
    "range_labels",
    "layout_varies",
    "wide64",
    "wide65",
]
#: Documented refusals of ParquetStore (UnstorableError -> CacheWarning, answered uncached).
PARQUET_UNSTORABLE = {"duplicate_names"}

#: Overlaps, a partial hit, a gap, a range over several pieces, a live update, all of it.
REQUESTS = [(0, 9), (5, 14), (20, 25), (0, 25), *((t - 5, t) for t in range(26, 36)), (0, 35)]


@pytest.mark.parametrize("store_kind", ["memory", "parquet"])
@pytest.mark.parametrize("kind", KINDS)
def test_awkward_frames_answer_like_the_provider(
    kind: str, store_kind: str, tmp_path: Path
) -> None:
    calls: list[tuple[pd.Timestamp, pd.Timestamp]] = []

    def provider(sym: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        calls.append((start, end))
        return build(kind, start, end, len(calls))

    get = range_cached(store=_store(store_kind, tmp_path), namespace=f"fp.{kind}", **OPTS)(provider)
    unstorable = store_kind == "parquet" and kind in PARQUET_UNSTORABLE
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for a, b in REQUESTS:
            got = get("X", _day(a), _day(b))
            assert_frame_equal(got, build(kind, _day(a), _day(b)), check_freq=False)
    refused = [w for w in caught if issubclass(w.category, CacheWarning)]
    assert bool(refused) == unstorable, [str(w.message) for w in refused]
    if unstorable:
        return
    # Nothing asked twice: 0-9, 10-14, 20-25, 15-19 then one day per live step.
    assert len(calls) == 4 + 10
    if store_kind == "parquet":  # a fresh store over the same files answers from disk
        again = ParquetStore(tmp_path / "cache")

        def refuse(sym: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
            raise AssertionError(f"refetched {start}..{end}")

        reopened = range_cached(store=again, namespace=f"fp.{kind}", **OPTS)(refuse)
        for a, b in [(0, 35), (3, 27), (30, 35)]:
            got = reopened("X", _day(a), _day(b))
            assert_frame_equal(got, build(kind, _day(a), _day(b)), check_freq=False)


def test_parquet_caches_rangeindex_columns(tmp_path: Path) -> None:
    """RangeIndex column labels (``pd.DataFrame(ndarray)``) are stored, and read back as one.

    Arrow's pandas metadata brings them back as an int64 Index: the store once refused
    such frames as unstorable (answered right, never cached).
    """
    calls: list[int] = []

    def provider(sym: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        calls.append(1)
        return build("range_labels", start, end)

    def cached(store: ParquetStore) -> Any:
        return range_cached(store=store, namespace="fp.rl", **OPTS)(provider)

    get = cached(ParquetStore(tmp_path / "c"))
    expected = build("range_labels", _day(0), _day(3))
    assert isinstance(expected.columns, pd.RangeIndex)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        for _ in range(2):
            got = get("X", _day(0), _day(3))
            assert_frame_equal(got, expected, check_column_type=True)
        # A new process: the template and the rows read back from disk.
        again = cached(ParquetStore(tmp_path / "c"))
        got = again("X", _day(1), _day(2))
        assert_frame_equal(got, build("range_labels", _day(1), _day(2)), check_column_type=True)
        assert_frame_equal(again("X", _day(0), _day(5)), build("range_labels", _day(0), _day(5)))
    assert len(calls) == 2  # days 0-3, then 4-5


# -- column_dtypes against DataFrame.dtypes, on frames the provider tests cannot reach ----


def _derived_frames() -> list[tuple[str, pd.DataFrame]]:
    base = build("extension", _day(0), _day(6))
    out: list[tuple[str, pd.DataFrame]] = [(k, build(k, _day(0), _day(6), 1)) for k in KINDS]
    out += [(k + "_call2", build(k, _day(0), _day(6), 2)) for k in ("layout_varies",)]
    perm = [5, 0, 7, 2, 1, 6, 3, 4]
    out.append(("permuted", base.iloc[:, perm]))
    out.append(("dropped", base.drop(columns=["s", "tz"])))
    out.append(("reindexed_missing", base.reindex(columns=["u8", "nope", "s", "I", "zz"])))
    out.append(("concat_axis1", pd.concat([base, build("numpy_mixed", _day(0), _day(6))], axis=1)))
    out.append(("transposed_twice", build("numpy_mixed", _day(0), _day(6)).T.T))
    out.append(("astype", base.astype({"u8": "int64", "f32": "float64"})))
    out.append(("row_slice", base.iloc[2:5]))
    out.append(("no_rows", base.iloc[:0]))
    wide = build("wide64", _day(0), _day(2))
    out.append(("wide64_reversed", wide.iloc[:, ::-1]))
    out.append(("wide64_plus_one", wide.assign(extra=pd.array([1, None, 3], dtype="Int64"))))
    dup = build("numpy_mixed", _day(0), _day(6))
    dup = pd.concat([dup, dup.iloc[:, ::-1]], axis=1)  # every name twice, blocks interleaved
    out.append(("duplicates_interleaved", dup))
    return out


@pytest.mark.parametrize(
    ("name", "frame"), _derived_frames(), ids=lambda x: x if isinstance(x, str) else ""
)
def test_column_dtypes_equals_dataframe_dtypes(name: str, frame: pd.DataFrame) -> None:
    assert column_dtypes(frame) == list(frame.dtypes), name


# -- the same schema in another block layout: one key, no mismatch, exact answers ---------


@pytest.mark.parametrize("store_kind", ["memory", "parquet"])
def test_block_layout_changes_do_not_change_the_schema(store_kind: str, tmp_path: Path) -> None:
    calls: list[int] = []

    def provider(sym: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        calls.append(1)
        return build("layout_varies", start, end, len(calls))

    get = range_cached(store=_store(store_kind, tmp_path), namespace="fp.layout", **OPTS)(provider)
    for t in range(0, 40, 3):  # every live step in another layout, answers over all of them
        got = get("X", _day(max(t - 29, 0)), _day(t))
        assert_frame_equal(
            got, build("layout_varies", _day(max(t - 29, 0)), _day(t)), check_freq=False
        )
    assert len(calls) == len(range(0, 40, 3))


# -- column order changing between calls -------------------------------------------------


@pytest.mark.parametrize("store_kind", ["memory", "parquet"])
def test_column_order_of_a_later_piece(store_kind: str, tmp_path: Path) -> None:
    """A provider that reorders its columns is answered in the key's order (decisions.md).

    The key keeps one column layout, its first piece's (new columns appended), as a
    widened schema shows a new column in every answer: an answer's columns do not
    depend on which pieces its range happens to span. The values are the provider's.
    """

    def frame(start: pd.Timestamp, end: pd.Timestamp, reverse: bool) -> pd.DataFrame:
        df = build("numpy_mixed", start, end)
        return df[df.columns[::-1]] if reverse else df

    calls: list[int] = []

    def provider(sym: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        calls.append(1)
        return frame(start, end, len(calls) > 1)

    get = range_cached(store=_store(store_kind, tmp_path), namespace="fp.order", **OPTS)(provider)
    first = frame(_day(0), _day(3), False)
    assert_frame_equal(get("X", _day(0), _day(3)), first)
    later = frame(_day(4), _day(6), True)
    assert list(later.columns) != list(first.columns)
    got = get("X", _day(4), _day(6))
    assert_frame_equal(got, later[first.columns], check_freq=False)
    spanning = get("X", _day(2), _day(5))
    assert_frame_equal(spanning, frame(_day(2), _day(5), False), check_freq=False)
    assert len(calls) == 2


# -- live updates against a model of "the newest fetch wins" -------------------------------

MODES = ["ok", "ok", "ok", "empty_none", "empty_frame", "empty_columns", "before", "after",
         "dups", "float", "layout", "extra_rows_both"]  # fmt: skip


def _rows(start: pd.Timestamp, end: pd.Timestamp, gen: int, float_volume: bool) -> pd.DataFrame:
    ix = _index(start, end)
    n = np.asarray((ix - D0) // DAY, dtype=np.int64)
    volume = (n * 10 + 1000).astype(np.float64 if float_volume else np.int64)
    return pd.DataFrame(
        {
            "close": n * 0.25 + 100.0,
            "volume": volume,
            "up": n % 3 == 0,
            "gen": np.full(len(n), gen, dtype=np.int64),
        },
        index=ix,
    )


class Flaky:
    """A daily provider that misbehaves by a script of modes, one per call.

    Every call's rows carry its generation, so a stale row is visible. ``log``
    keeps, per call, the requested days and the rows inside them (what the cache
    must keep: rows outside the request are dropped, rows of one day are all kept).
    """

    def __init__(self, script: list[str]) -> None:
        self.script = script
        self.log: list[tuple[pd.Timestamp, pd.Timestamp, pd.DataFrame]] = []
        self.covered: set[pd.Timestamp] = set()  # asked and not invalidated since

    def __call__(self, sym: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame | None:
        gen = len(self.log)
        self.covered.update(pd.date_range(start, end, freq="D"))
        mode = self.script[gen % len(self.script)] if gen else "ok"  # the first call has rows
        rows = _rows(start, end, gen, mode == "float")
        if mode == "empty_none":
            rows = rows.iloc[:0]
            answer: pd.DataFrame | None = None
        elif mode == "empty_frame":
            rows, answer = rows.iloc[:0], pd.DataFrame()
        elif mode == "empty_columns":
            rows, answer = rows.iloc[:0], pd.DataFrame(columns=["close", "volume", "up", "gen"])
        elif mode in ("before", "after", "extra_rows_both"):
            before = _rows(start - DAY, start - DAY, -gen - 1, False)  # a stale revision
            after = _rows(end + DAY, end + DAY, -gen - 1, False)
            parts = {"before": [before, rows], "after": [rows, after]}.get(
                mode, [before, rows, after]
            )
            answer = pd.concat(parts)
        elif mode == "dups":  # two rows on the last day, in the provider's order
            extra = rows.iloc[-1:].assign(close=-1.0)
            rows = pd.concat([rows, extra])
            answer = rows
        elif mode == "layout":
            answer = pd.DataFrame(index=rows.index)
            for c in ("gen", "up", "volume", "close"):
                answer.insert(0, c, rows[c])
            rows = answer
        else:
            answer = rows
        self.log.append((start, end, rows))
        return answer

    def expected(self, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """The rows of ``[start, end]`` as the newest provider call covering each day gave them."""
        owner: dict[pd.Timestamp, int] = {}
        for g, (a, b, _) in enumerate(self.log):
            for d in pd.date_range(max(a, start), min(b, end), freq="D"):
                owner[d] = g
        missing = [d for d in pd.date_range(start, end, freq="D") if d not in owner]
        assert not missing, f"the cache answered {missing} without asking"
        pieces = []
        for g, (_, _, rows) in enumerate(self.log):
            days = [d for d, o in owner.items() if o == g]
            part = rows[rows.index.isin(days)]
            if len(part):
                pieces.append(part)
        if not pieces:
            floats = any(r["volume"].dtype == np.float64 for _, _, r in self.log if len(r))
            out = _rows(start, start, 0, floats).iloc[:0]
            return out
        out = pd.concat(pieces)
        return out.iloc[np.argsort(np.asarray(out.index), kind="stable")]


def _run_live(
    store: Any, namespace: str, script: list[str], ops: list[tuple[str, int]], **extra: Any
) -> Flaky:
    flaky = Flaky(script)
    get = range_cached(store=store, namespace=namespace, **{**OPTS, **extra})(flaky)
    t = 40
    for op, arg in ops:
        if op == "step":
            t += 1
        elif op == "jump":
            t += arg
        elif op == "back":
            a = t - 60 - arg
            got = get("X", _day(a), _day(a + 10))
            assert_frame_equal(got, flaky.expected(_day(a), _day(a + 10)), check_freq=False)
            continue
        elif op == "refresh":
            got = get.refresh("X", _day(t - 29), _day(t))
            assert_frame_equal(got, flaky.expected(_day(t - 29), _day(t)), check_freq=False)
            continue
        elif op == "invalidate":
            get.invalidate("X", start=_day(t - arg), end=_day(t - arg + 2))
            flaky.covered.difference_update(pd.date_range(_day(t - arg), _day(t - arg + 2)))
            continue
        got = get("X", _day(t - 29), _day(t))
        assert_frame_equal(got, flaky.expected(_day(t - 29), _day(t)), check_freq=False)
    return flaky


OPS = st.lists(
    st.tuples(
        st.sampled_from(["step"] * 6 + ["jump", "back", "refresh", "invalidate"]),
        st.integers(1, 6),
    ),
    min_size=5,
    max_size=30,
)


@pytest.mark.parametrize("store_kind", ["memory", "parquet"])
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    script=st.lists(st.sampled_from(MODES), min_size=1, max_size=12),
    ops=OPS,
    coalesce=st.sampled_from([None, "10D"]),
)
def test_live_updates_match_the_newest_fetch(
    store_kind: str,
    tmp_path_factory: pytest.TempPathFactory,
    script: list[str],
    ops: Any,
    coalesce: str | None,
) -> None:
    path = tmp_path_factory.mktemp("live")
    store = _store(store_kind, path)
    flaky = _run_live(store, "fp.live", script, ops, coalesce=coalesce)
    if store_kind == "parquet":  # what the files say after it all
        fresh = range_cached(store=ParquetStore(path / "cache"), namespace="fp.live", **OPTS)(
            lambda sym, start, end: pytest.fail(f"refetched {start}..{end}")
        )
        days = flaky.covered
        # the covered run at the end (the live window, up to 30 days), read back from disk
        end = max(days)
        start = end
        while start - DAY in days and start - DAY >= end - 29 * DAY:
            start -= DAY
        assert_frame_equal(fresh("X", start, end), flaky.expected(start, end), check_freq=False)


@pytest.mark.parametrize("store_kind", ["memory", "parquet"])
def test_live_update_every_misbehaviour_in_turn(store_kind: str, tmp_path: Path) -> None:
    """Deterministic: 60 live steps cycling through every mode, then backfills and refreshes."""
    ops = [("step", 1)] * 60 + [("back", 5), ("refresh", 0), ("step", 1), ("jump", 3)]
    flaky = _run_live(_store(store_kind, tmp_path), "fp.cycle", MODES, ops)
    # the first window, one call per later day (59), none for the backfill (inside the
    # first window), the refresh, the day after it and the jump's three days in one call
    assert len(flaky.log) == 1 + 59 + 0 + 1 + 1 + 1
    seen: set[pd.Timestamp] = set()
    for g, (a, b, _) in enumerate(flaky.log):
        days = set(pd.date_range(a, b, freq="D"))
        if g != 60:  # all but the refresh ask only days never asked before
            assert not days & seen, (g, a, b)
        seen |= days


@pytest.mark.parametrize("store_kind", ["memory", "parquet"])
def test_coalesced_refetch_over_the_last_rows(store_kind: str, tmp_path: Path) -> None:
    """A hole in the live window plus the new day: one coalesced call that refetches
    stored rows up to the last one (a piece that starts before the last stored row:
    not the append fast path), then appends again."""
    ops: list[tuple[str, int]] = []
    for k in range(12):
        ops += [("step", 1), ("invalidate", 3 + k % 5), ("step", 1), ("step", 1)]
    ops += [("refresh", 0), ("step", 1), ("step", 1)]  # a refetch inside the last chunk
    flaky = _run_live(_store(store_kind, tmp_path), "fp.coal", ["ok", "dups"], ops, coalesce="10D")
    refetched = [
        g for g, (a, b, _) in enumerate(flaky.log) if g and b - a >= 3 * DAY
    ]  # the hole, the stored days after it and the new day, in one call
    assert len(refetched) >= 10


# -- records (Struct) seen through coverage, invalidate and readahead -----------------------


@pytest.mark.parametrize("store_kind", ["memory", "parquet"])
def test_coverage_after_invalidations_matches_a_model(store_kind: str, tmp_path: Path) -> None:
    get = range_cached(store=_store(store_kind, tmp_path), namespace="fp.cov", **OPTS)(
        lambda sym, start, end: _rows(start, end, 0, False)
    )
    covered: set[int] = set()
    for a, b in [(0, 9), (20, 25), (12, 14)]:
        get("X", _day(a), _day(b))
        covered |= set(range(a, b + 1))
    for a, b in [(3, 5), (9, 12), (22, 22), (30, 40)]:
        get.invalidate("X", start=_day(a), end=_day(b))
        covered -= set(range(a, b + 1))
    runs: list[tuple[int, int]] = []
    for d in sorted(covered):
        if runs and runs[-1][1] == d - 1:
            runs[-1] = (runs[-1][0], d)
        else:
            runs.append((d, d))
    assert get.coverage("X") == [(_day(a), _day(b)) for a, b in runs]
    detail = get.coverage("X", detail=True)
    assert [(c.start, c.end, c.state) for c in detail] == [
        (_day(a), _day(b), "final") for a, b in runs
    ]
    assert len({hash(c) for c in detail}) == len(detail)  # distinct records hash apart
    assert detail == get.coverage("X", detail=True)  # value equality, not identity


@pytest.mark.parametrize("store_kind", ["memory", "parquet"])
def test_auto_readahead_marches_never_ask_twice(store_kind: str, tmp_path: Path) -> None:
    """Forward and backward marches (March/Trail records) with the default readahead."""
    calls: list[tuple[pd.Timestamp, pd.Timestamp]] = []

    def provider(sym: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        calls.append((start, end))
        return build("extension", start, end)

    opts = {k: v for k, v in OPTS.items() if k != "readahead"}
    clock = lambda: pd.Timestamp("2025-06-01", tz="UTC").to_pydatetime()  # noqa: E731
    get = range_cached(
        store=_store(store_kind, tmp_path), namespace="fp.ahead", clock=clock, **opts
    )(provider)
    windows = [(t, t + 4) for t in range(100, 160, 5)] + [(t, t + 4) for t in range(95, 20, -5)]
    windows += [(50, 52), (140, 170)]
    for a, b in windows:
        assert_frame_equal(
            get("X", _day(a), _day(b)), build("extension", _day(a), _day(b)), check_freq=False
        )
    days = [d for a, b in calls for d in pd.date_range(a, b, freq="D")]
    assert len(days) == len(set(days)), "a day was asked twice"
    assert len(calls) < len(windows), "adaptive readahead never read ahead"


def test_struct_records_pickle_and_copy_like_dataclasses() -> None:
    """The records the cache keeps per key survive copy and pickle (protocols 2-5) by value."""
    import copy
    import pickle

    from rangememo._core.planner import Gap
    from rangememo._core.records import Stamp

    for rec in (Stamp(1, 2, 3.0, False), Gap(0, 10, 2, 8, quiet=True)):
        assert copy.copy(rec) == rec and copy.deepcopy(rec) == rec
        assert hash(copy.copy(rec)) == hash(rec)
        for proto in range(2, pickle.HIGHEST_PROTOCOL + 1):
            assert pickle.loads(pickle.dumps(rec, protocol=proto)) == rec
        assert rec.replace() == rec and rec.replace() is not rec
        assert rec != rec.replace(lo=rec.lo + 1)
    with pytest.raises(TypeError):
        Stamp(1, 2, 3.0, False).replace(nope=1)
