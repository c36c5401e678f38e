"""A ParquetStore key of a few thousand disjoint covered intervals, reopened (issue 8).

Such a key is one or a few segments with thousands of claims each: opening
it, answering from it and committing into it go through the claim
arithmetic (``claims.py``), the bulk row load and the masked merges. Every
answer is compared with the uncached function's, and provider calls are
counted: a covered request fetches nothing, a gap request fetches the gap.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rangememo import ParquetStore, range_cached

K = 2_000  # intervals [10 i, 10 i + 5): holes [10 i + 5, 10 i + 10)


def provider(key: str, lo: int, hi: int) -> pd.DataFrame:
    pos = np.arange(lo, hi, dtype=np.int64)
    return pd.DataFrame(
        {"v": pos * 2, "f": pos / 7.0, "s": [f"{key}{p}" for p in pos]},
        index=pd.Index(pos, name="pos"),
    )


def counted(store: ParquetStore, calls: list[tuple[int, int]]) -> Callable[..., pd.DataFrame]:
    def fetch(key: str, lo: int, hi: int) -> pd.DataFrame:
        calls.append((lo, hi))
        return provider(key, lo, hi)

    return range_cached(
        key="key", start="lo", end="hi", step=1, closed="left", store=store, namespace="frag"
    )(fetch)


def same(got: pd.DataFrame, key: str, lo: int, hi: int) -> None:
    pd.testing.assert_frame_equal(got, provider(key, lo, hi), check_exact=True)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fragmented key, built one interval per call (as a user's calls would)."""
    path = tmp_path_factory.mktemp("frag")
    store = ParquetStore(path, durable=False)
    calls: list[tuple[int, int]] = []
    fn = counted(store, calls)
    for i in range(K):
        fn("k", 10 * i, 10 * i + 5)
    assert len(calls) == K
    store.close()
    return path


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst / "store")
    return dst / "store"


@pytest.mark.parametrize("eager_rows", [50_000, 0], ids=["eager", "windowed"])
def test_reopened_fragmented_key_answers_exactly(
    built: Path, tmp_path: Path, eager_rows: int
) -> None:
    path = _copy(built, tmp_path)
    store = ParquetStore(path, durable=False, eager_rows=eager_rows)
    calls: list[tuple[int, int]] = []
    fn = counted(store, calls)
    for i in range(K):  # every covered interval, and pieces of it (no fetch)
        same(fn("k", 10 * i, 10 * i + 5), "k", 10 * i, 10 * i + 5)
        if i % 97 == 0:
            same(fn("k", 10 * i + 1, 10 * i + 4), "k", 10 * i + 1, 10 * i + 4)
    assert calls == []
    for i in range(0, K, 13):  # a gap request: the hole only is fetched
        same(fn("k", 10 * i, 10 * i + 8), "k", 10 * i, 10 * i + 8)
        assert calls[-1] == (10 * i + 5, 10 * i + 8)
    assert len(calls) == len(range(0, K, 13))
    calls.clear()
    # One request over many intervals: each hole not filled yet is one fetch.
    lo, hi = 10 * (K // 2), 10 * (K // 2 + 40)
    same(fn("k", lo, hi), "k", lo, hi)
    holes = [(10 * i + 5, 10 * i + 10) for i in range(K // 2, K // 2 + 40)]
    filled = {(10 * i + 5, 10 * i + 8) for i in range(0, K, 13)}
    want = []
    for a, b in holes:
        want.append((a + 3, b) if (a, a + 3) in filled else (a, b))
    assert sorted(calls) == want
    store.close()
    # And all of it again from a fresh store: nothing is fetched.
    again = ParquetStore(path, durable=False, eager_rows=eager_rows)
    calls2: list[tuple[int, int]] = []
    fn2 = counted(again, calls2)
    for i in range(0, K, 7):
        same(fn2("k", 10 * i, 10 * i + 5), "k", 10 * i, 10 * i + 5)
    for i in range(0, K, 13):
        same(fn2("k", 10 * i, 10 * i + 8), "k", 10 * i, 10 * i + 8)
    same(fn2("k", lo, hi), "k", lo, hi)
    assert calls2 == []
    again.close()


def test_writes_around_unloaded_intervals_then_a_wide_read(built: Path, tmp_path: Path) -> None:
    """Holes filled in memory before the intervals around them load (windowed key):
    in-memory chunks then span pending pieces, which load into their middle."""
    path = _copy(built, tmp_path)
    store = ParquetStore(path, durable=False, eager_rows=0)
    calls: list[tuple[int, int]] = []
    fn = counted(store, calls)
    for i in range(100, 160, 2):  # every other hole: chunks merge across the rest
        same(fn("k", 10 * i + 5, 10 * i + 10), "k", 10 * i + 5, 10 * i + 10)
    assert len(calls) == 30
    calls.clear()
    same(fn("k", 1000, 1600), "k", 1000, 1600)  # the other holes only
    assert calls == [(10 * i + 5, 10 * i + 10) for i in range(101, 160, 2)]
    calls.clear()
    # A wide read around them: every remaining hole is one fetch.
    same(fn("k", 500, 2500), "k", 500, 2500)
    assert len(calls) == 200 - 60
    store.close()


def test_compacted_fragmented_key_reopens_exactly(built: Path, tmp_path: Path) -> None:
    path = _copy(built, tmp_path)
    store = ParquetStore(path, durable=False)
    calls: list[tuple[int, int]] = []
    fn = counted(store, calls)
    for i in range(K - 30, K):  # a few newer segments over the big one
        same(fn("k", 10 * i + 2, 10 * i + 9), "k", 10 * i + 2, 10 * i + 9)
    assert len(calls) == 30
    store.compact()
    store.close()
    again = ParquetStore(path, durable=False)
    calls.clear()
    fn = counted(again, calls)
    for i in range(0, K, 5):
        same(fn("k", 10 * i, 10 * i + 5), "k", 10 * i, 10 * i + 5)
    for i in range(K - 30, K):
        same(fn("k", 10 * i, 10 * i + 9), "k", 10 * i, 10 * i + 9)
    assert calls == []
    again.close()
