"""Adversarial tests of ParquetStore's log protocol across several store objects.

Two (or more) ``ParquetStore`` objects on one directory stand for processes; a
spawned process is used where a real second process matters (leases). Every
interleaving is driven step by step. The provider is a deterministic fake whose
values depend on the day and on a generation counter bumped between steps, and
which remembers the generation it last served per day: the expected answer is
always built from what the provider served, never from cache output.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from rangememo import CacheWarning, ParquetStore, range_cached
from rangememo._stores.parquet import logformat
from rangememo._stores.parquet.layout import namespace_dirname, namespace_dirs
from rangememo._stores.parquet.maintenance import scan, verify
from rangememo._stores.parquet.tidy import collect

NAMESPACE = "proto.adv"
NS = f"{NAMESPACE}@v0"
DAY0 = pd.Timestamp("2024-01-01")


def day(n: int) -> pd.Timestamp:
    return DAY0 + pd.Timedelta(days=n)


class Provider:
    """A fake API: one row per day, values from the day and the current generation."""

    def __init__(self) -> None:
        self.gen = 1
        self.calls: list[tuple[int, int]] = []
        self.served: dict[int, int] = {}  # day number -> generation last served

    def __call__(self, symbol: str, start: Any, end: Any) -> pd.DataFrame:
        a = (pd.Timestamp(start) - DAY0).days
        b = (pd.Timestamp(end) - DAY0).days
        self.calls.append((a, b))
        for n in range(a, b + 1):
            self.served[n] = self.gen
        return self.frame(symbol, range(a, b + 1), [self.gen] * (b - a + 1))

    @staticmethod
    def frame(symbol: str, days: Any, gens: list[int]) -> pd.DataFrame:
        days = list(days)
        index = pd.DatetimeIndex([day(n) for n in days], name="date")
        base = float(sum(map(ord, symbol)))
        return pd.DataFrame(
            {
                "value": np.array(
                    [base + n * 1.5 + g * 1000.0 for n, g in zip(days, gens, strict=True)]
                ),
                "gen": np.array(gens, dtype="int64"),
            },
            index=index,
        )

    def expected(self, symbol: str, a: int, b: int) -> pd.DataFrame:
        """What the provider served last for days ``a..b`` (every day must have been served)."""
        days = range(a, b + 1)
        return self.frame(symbol, days, [self.served[n] for n in days])

    def fetched_days(self) -> list[int]:
        return [n for a, b in self.calls for n in range(a, b + 1)]


def cached(root: Path, provider: Provider, **options: Any) -> Any:
    """A cached function over a new ParquetStore(root): a store object per "process"."""

    @range_cached(
        key="symbol",
        step="1D",
        store=ParquetStore(root, durable=False, **options),
        namespace=NAMESPACE,
        settle=None,
        readahead=None,
    )
    def series(symbol: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        return provider(symbol, start, end)

    return series


def check(fn: Any, provider: Provider, a: int, b: int, symbol: str = "AAA") -> pd.DataFrame:
    got = fn(symbol, day(a), day(b))
    pd.testing.assert_frame_equal(got, provider.expected(symbol, a, b))
    return got


@pytest.fixture
def strict() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        yield


def key_files(root: Path) -> list[Path]:
    (keydir,) = [p.parent for p in root.glob(f"{namespace_dirname(NS)}/*/log")]
    return sorted(p for p in keydir.rglob("*") if p.is_file())


def all_files(base: Path) -> set[Path]:
    return {p for p in base.rglob("*")}


# -- a namespace cleared by another store ----------------------------------------------

# Found by this file: a store remembered having written namespace.json and code.json
# (ParquetStore._ensured/_coded) after another store's clear() had removed them, and
# wrote keys without them (writes.py, _recheck_namespace).


def test_writes_after_another_store_cleared_the_namespace_keep_it_named(tmp_path, strict):
    """B clears the namespace while A has already written to it (A remembers having
    created namespace.json). A's next writes must leave a namespace that maintenance
    still recognises: listed under its name, and compacted by ``store.compact()``."""
    root = tmp_path / "store"
    prov = Provider()
    fa, fb = cached(root, prov), cached(root, prov)
    check(fa, prov, 0, 9)
    fb.cache_clear()
    prov.gen = 2
    for first in range(0, 60, 10):  # six commits
        check(fa, prov, first, first + 9)
    assert [n for n, _ in namespace_dirs(fa.cache.store.medium)] == [NS]
    assert [i.namespace for i in scan(root)] == [NS]


def test_a_code_change_after_another_store_cleared_still_warns(tmp_path):
    """A writes, B clears the namespace, A writes again. A later function of the same
    name whose code differs must get the documented 'written by other code' warning:
    A's entries are served to it (usage.md, "Which entries a function owns")."""
    root = tmp_path / "store"
    prov = Provider()
    fa, fb = cached(root, prov), cached(root, prov)
    check(fa, prov, 0, 9)
    fb.cache_clear()
    check(fa, prov, 0, 9)

    def series(symbol: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        out = prov(symbol, start, end)
        out["value"] = out["value"] * 2  # other code, other answers
        return out

    # The same function as cached() makes, edited (as a later process would see it).
    series.__qualname__ = "cached.<locals>.series"
    edited = range_cached(
        key="symbol",
        step="1D",
        store=ParquetStore(root, durable=False),
        namespace=NAMESPACE,
        settle=None,
        readahead=None,
    )(series)
    with pytest.warns(CacheWarning, match="other code"):
        edited("AAA", day(0), day(9))


def test_a_code_change_warns_without_a_clear(tmp_path):
    """Control of the test above: the warning fires when nobody cleared."""
    root = tmp_path / "store"
    prov = Provider()
    check(cached(root, prov), prov, 0, 9)

    def series(symbol: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        out = prov(symbol, start, end)
        out["value"] = out["value"] * 2
        return out

    series.__qualname__ = "cached.<locals>.series"
    edited = range_cached(
        key="symbol",
        step="1D",
        store=ParquetStore(root, durable=False),
        namespace=NAMESPACE,
        settle=None,
        readahead=None,
    )(series)
    with pytest.warns(CacheWarning, match="other code"):
        edited("AAA", day(0), day(9))


def test_compact_of_the_whole_store_after_another_store_cleared(tmp_path, monkeypatch, strict):
    """As above: ``store.compact()`` (every namespace) must still find A's key."""
    from rangememo._stores.parquet import compaction

    monkeypatch.setattr(compaction, "SMALL_ROWS", 0)  # one segment per commit
    root = tmp_path / "store"
    prov = Provider()
    fa, fb = cached(root, prov), cached(root, prov)
    check(fa, prov, 100, 109)
    fb.cache_clear()
    for first, last in ((0, 39), (50, 69), (80, 84)):  # decreasing sizes: no merges
        check(fa, prov, first, last)
    before = len([p for p in key_files(root) if p.name.startswith("seg-")])
    assert before >= 3
    merged = cached(root, prov).cache.store.compact()
    assert merged >= 2


# -- a key cleared and rewritten while another store holds it --------------------------


@pytest.mark.parametrize("how", ["invalidate", "cache_clear"])
@pytest.mark.parametrize("every", [1, 3, 32])
def test_a_key_cleared_and_rewritten_past_a_checkpoint_is_not_taken_for_the_old(
    tmp_path, monkeypatch, strict, every, how
):
    """A holds the key at some checkpoint/record number; B invalidates the whole key
    and writes it again with new values, past A's number and across checkpoints. A
    must answer with B's values and never ask its provider again."""
    monkeypatch.setattr(logformat, "CHECKPOINT_EVERY", every)
    root = tmp_path / "store"
    prov = Provider()
    fa, fb = cached(root, prov), cached(root, prov)
    for first in range(0, 40, 5):
        check(fa, prov, first, first + 4)
    check(fa, prov, 0, 39)
    prov.gen = 2
    fb.invalidate("AAA") if how == "invalidate" else fb.cache_clear()
    for first in range(0, 50, 5):
        check(fb, prov, first, first + 4)
    calls = len(prov.calls)
    check(fa, prov, 0, 49)
    assert len(prov.calls) == calls  # all of it is stored: A asks nothing
    prov.gen = 3
    check(fb, prov, 50, 54)
    check(fa, prov, 0, 54)
    assert len(prov.calls) == calls + 1
    assert verify(root).problems == []


# Found by this file: log.append/log.checkpoint took the stamp of the anchor they had
# just created only at the next check; if another store had cleared the key and written
# that number again by then, the writer took the new file for its own and served its old
# rows (log.py, _stamp_now).


@pytest.mark.parametrize("anchor", ["checkpoint", "record"])
def test_a_key_cleared_and_rewritten_right_after_this_stores_commit(
    tmp_path, monkeypatch, strict, anchor
):
    """A commits (its last file read is the one it created) and is not asked again
    until B has cleared the key and written it again up to the same log number. A must
    answer with B's values, as a fresh store does."""
    monkeypatch.setattr(logformat, "CHECKPOINT_EVERY", 1000)
    root = tmp_path / "store"
    prov = Provider()
    fa, fb = cached(root, prov), cached(root, prov)
    last = 99 if anchor == "checkpoint" else 101
    check(fa, prov, 0, 99)  # record 1, folded at once: checkpoint 1
    if anchor == "record":
        check(fa, prov, 100, 101)  # record 2, small: not folded
    prov.gen = 2
    fb.invalidate("AAA")
    check(fb, prov, 0, 99)
    if anchor == "record":
        check(fb, prov, 100, 101)
    calls = len(prov.calls)
    check(cached(root, prov), prov, 0, last)  # control: a fresh store reads B's log
    check(fa, prov, 0, last)  # A served its old rows from memory
    prov.gen = 3
    check(fb, prov, 102, 103)  # one more record of B's log
    check(fa, prov, 0, 103)
    # B's 102-103, and (a checkpoint anchor) 100-101, which nobody had stored.
    expected = [(102, 103)] + ([(100, 101)] if anchor == "checkpoint" else [])
    assert prov.calls[calls:] == expected


def test_a_range_invalidated_by_another_store_is_refetched_once(tmp_path, strict):
    """A holds days 0-29; B forgets days 10-14; the provider's data changed meanwhile.
    A's next read refetches exactly 10-14 (new values there, old elsewhere), once."""
    root = tmp_path / "store"
    prov = Provider()
    fa, fb = cached(root, prov), cached(root, prov)
    check(fa, prov, 0, 29)
    prov.gen = 2
    fb.invalidate("AAA", start=day(10), end=day(14))
    check(fa, prov, 0, 29)
    assert prov.calls[1:] == [(10, 14)]
    check(fb, prov, 0, 29)
    check(cached(root, prov), prov, 0, 29)
    assert prov.calls[1:] == [(10, 14)]


# -- many tiny commits across checkpoint boundaries, a second store reading each step --


@pytest.mark.parametrize("every", [2, 5, 32])
def test_tiny_commits_across_checkpoints_seen_by_a_reader_at_every_step(
    tmp_path, monkeypatch, strict, every
):
    monkeypatch.setattr(logformat, "CHECKPOINT_EVERY", every)
    root = tmp_path / "store"
    prov = Provider()
    writer, reader = cached(root, prov), cached(root, prov)
    lazy = cached(root, prov, eager_rows=0, memory=0)
    check(writer, prov, 0, 0)
    for n in range(1, 80):
        prov.gen = n % 7 + 1
        if n % 9 == 0:  # a revision: forget one older day, refetched by the writer
            writer.invalidate("AAA", start=day(n - 5), end=day(n - 5))
            check(writer, prov, n - 5, n - 5)
        check(writer, prov, n, n)
        calls = len(prov.calls)
        check(reader, prov, 0, n)
        check(lazy, prov, max(0, n - 3), n)
        assert len(prov.calls) == calls, f"step {n}: a stored day fetched again"
        if n % 13 == 0:
            reader.cache.store.compact()
            collect(root, grace=0.0)
    assert sorted(set(prov.fetched_days())) == list(range(80))
    refetched = len(prov.fetched_days()) - 80
    assert refetched == len(range(9, 80, 9))
    assert verify(root).problems == []
    collect(root, grace=0.0)
    # Steady state: one segment, one checkpoint, at most one record.
    files = key_files(root)
    assert len(files) <= 3, [p.name for p in files]


def test_files_per_key_stay_bounded_with_two_writers_and_compactions(tmp_path, strict):
    root = tmp_path / "store"
    prov = Provider()
    fa, fb = cached(root, prov), cached(root, prov)
    for n in range(120):
        fn = fa if n % 2 else fb
        check(fn, prov, n, n)
        if n % 10 == 9:
            (fb if n % 20 == 9 else fa).cache.store.compact()
        assert len(key_files(root)) <= 8, (n, [p.name for p in key_files(root)])
    check(fa, prov, 0, 119)
    check(fb, prov, 0, 119)
    assert len(prov.calls) == 120


# -- a reader's answer held while another store compacts and gcs -----------------------


def test_an_answer_held_across_another_stores_compaction_and_gc(tmp_path, monkeypatch, strict):
    from rangememo._stores.parquet import compaction

    monkeypatch.setattr(compaction, "SMALL_ROWS", 0)
    root = tmp_path / "store"
    prov = Provider()
    reader = cached(root, prov, eager_rows=0)
    for a, b in ((0, 39), (50, 69), (80, 84)):
        check(reader, prov, a, b)
    view = check(reader, prov, 0, 84)  # fetches the gaps 40-49 and 70-79
    snapshot = view.copy(deep=True)
    other = cached(root, prov)
    other.cache.store.compact()
    collect(root, grace=0.0)
    prov.gen = 5
    check(other, prov, 85, 89)
    pd.testing.assert_frame_equal(view, snapshot)
    calls = len(prov.calls)
    for a, b in ((0, 39), (50, 69), (80, 89), (0, 89)):
        check(reader, prov, a, b)
    assert len(prov.calls) == calls  # everything was stored before the compaction


# -- nothing outside the store root ---------------------------------------------------


def test_nothing_is_written_outside_the_root(tmp_path, monkeypatch, strict):
    from click.testing import CliRunner

    from rangememo._cli import main

    root = tmp_path / "nest" / "store"
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    root.parent.mkdir()
    monkeypatch.chdir(cwd)
    outside_before = all_files(tmp_path) - all_files(root)
    prov = Provider()
    fa, fb = cached(root, prov), cached(root, prov)
    for n in range(0, 30, 3):
        check(fa, prov, n, n + 2)
        check(fb, prov, 0, n + 2)
    fb.invalidate("AAA", start=day(4), end=day(6))
    check(fa, prov, 0, 29, symbol="AAA")
    check(fa, prov, 0, 5, symbol="../../escape")
    fa.cache.store.compact()
    for args in (["gc", "--grace", "0"], ["compact"], ["verify"]):
        result = CliRunner().invoke(main, ["--dir", str(root), *args])
        assert result.exit_code == 0, result.output
    fb.cache_clear()
    fa.cache.store.close()
    fb.cache.store.close()
    assert all_files(tmp_path) - all_files(root) == outside_before | {root}


# -- real processes (spawn): a writer child driven step by step -----------------------


def _child_writer(root: str, conn: Any) -> None:
    """Commands over a pipe: ("write", a, b, gen), ("forget", a, b), ("compact",),
    ("gc",), ("clear",), ("stop",). Replies with the days it fetched."""
    prov = Provider()
    fn = cached(Path(root), prov)
    while True:
        cmd = conn.recv()
        if cmd[0] == "stop":
            conn.send("bye")
            return
        before = len(prov.calls)
        if cmd[0] == "write":
            prov.gen = cmd[3]
            fn("AAA", day(cmd[1]), day(cmd[2]))
        elif cmd[0] == "forget":
            fn.invalidate("AAA", start=day(cmd[1]), end=day(cmd[2]))
        elif cmd[0] == "compact":
            fn.cache.store.compact()
        elif cmd[0] == "gc":
            collect(Path(root), grace=0.0)
        elif cmd[0] == "clear":
            fn.invalidate("AAA")
        conn.send(prov.calls[before:])


def test_a_spawned_writer_interleaved_with_a_reader_step_by_step(tmp_path, monkeypatch, strict):
    """A spawned child writes, forgets, compacts, gcs and clears the key; this process
    reads after each step. Expected values: the child fetched what it reports (its
    provider is the same deterministic function of day and generation)."""
    root = tmp_path / "store"
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_child_writer, args=(str(root), child))
    proc.start()
    mirror = Provider()  # what the child served, replayed here
    reader_prov = Provider()
    reader = cached(root, reader_prov, eager_rows=0)

    def do(*cmd: Any) -> None:
        parent.send(cmd)
        assert parent.poll(60), "child did not answer"
        for a, b in parent.recv():
            for n in range(a, b + 1):
                mirror.served[n] = cmd[3]

    def read(a: int, b: int) -> None:
        got = reader("AAA", day(a), day(b))
        assert reader_prov.calls == [], "the reader fetched a stored day"
        pd.testing.assert_frame_equal(got, mirror.expected("AAA", a, b))

    try:
        do("write", 0, 9, 1)
        read(0, 9)
        for n in range(10, 50):
            do("write", n, n, n % 5 + 1)
            read(max(0, n - 20), n)
            if n % 11 == 0:
                do("compact")
                read(0, n)
                do("gc")
                read(0, n)
            if n % 7 == 0:
                do("forget", n - 3, n - 2)
                do("write", n - 3, n - 2, 9)
                read(0, n)
        do("clear")
        for n in range(0, 30, 6):
            do("write", n, n + 5, 20)
        read(0, 29)
        do("compact")
        do("gc")
        read(0, 29)
        parent.send(("stop",))
        assert parent.poll(60) and parent.recv() == "bye"
        proc.join(60)
        assert proc.exitcode == 0
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join()
    assert verify(root).problems == []


# -- a format-1 cache migrated by one store under another ------------------------------

LEGACY = Path(__file__).with_name("data") / "legacy_v1"


def legacy_fn(root: Path, calls: list[Any], **options: Any) -> Any:
    from rangememo.testing import make_bars

    @range_cached(
        key="symbol",
        step="1D",
        store=ParquetStore(root, durable=False, **options),
        namespace="legacy.bars",
        settle=None,
        readahead=None,
    )
    def bars(symbol: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        calls.append((pd.Timestamp(start), pd.Timestamp(end)))
        return make_bars(symbol, start, end)

    return bars


@pytest.mark.parametrize("eager_rows", [0, 50_000])
def test_a_legacy_key_forgotten_compacted_and_gced_by_another_store(tmp_path, strict, eager_rows):
    """A reads a format-1 key (BBB: days 5-6 of January were forgotten before it was
    written); B's first change to it is a forget (record 1 on top of ledger.json, the
    migration), then B compacts and gcs. A answers exactly, fetching only the two
    forgotten ranges, once each."""
    import shutil

    from rangememo.testing import make_bars

    root = tmp_path / "store"
    shutil.copytree(LEGACY, root)
    a_calls: list[Any] = []
    b_calls: list[Any] = []
    fa = legacy_fn(root, a_calls, eager_rows=eager_rows)
    fb = legacy_fn(root, b_calls)
    jan = pd.Timestamp("2024-01-01")
    for a, b in (("2024-01-01", "2024-01-04"), ("2024-01-07", "2024-02-05")):
        pd.testing.assert_frame_equal(
            fa("BBB", pd.Timestamp(a), pd.Timestamp(b)), make_bars("BBB", a, b)
        )
    assert a_calls == []
    fb.invalidate("BBB", start=pd.Timestamp("2024-01-10"), end=pd.Timestamp("2024-01-12"))
    fb.cache.store.compact()
    collect(root, grace=0.0)
    got = fa("BBB", jan, pd.Timestamp("2024-02-05"))
    pd.testing.assert_frame_equal(got, make_bars("BBB", jan, "2024-02-05"))
    assert sorted(a_calls) == [
        (pd.Timestamp("2024-01-05"), pd.Timestamp("2024-01-06")),
        (pd.Timestamp("2024-01-10"), pd.Timestamp("2024-01-12")),
    ]
    pd.testing.assert_frame_equal(
        fb("BBB", jan, pd.Timestamp("2024-02-05")), make_bars("BBB", jan, "2024-02-05")
    )
    assert b_calls == []
    assert verify(root).problems == []
