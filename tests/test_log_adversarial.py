"""Adversarial tests of the log-structured commit protocol (docs/parquet.md, "The commit protocol").

The protocol must be correct without locks (the key lock only avoids duplicate
fetches): these tests bypass the lock and interleave two writers, a writer and
a compaction, a reader and a compaction, at the worst moments, by hooking the
protocol's steps. Every answer is compared with the uncached provider's.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import shutil
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from log_workers import NS, bars_fn, day, read_lazily, unlocked_lock

from rangememo import CacheWarning
from rangememo._stores.parquet import compaction, keywrite, logformat
from rangememo._stores.parquet import store as store_mod
from rangememo._stores.parquet.leases import LEASES
from rangememo._stores.parquet.local.medium import LocalMedium
from rangememo._stores.parquet.maintenance import verify
from rangememo._stores.parquet.tidy import collect
from rangememo.testing import make_bars

FIXTURE = Path(__file__).with_name("data") / "legacy_v1"


@pytest.fixture
def unlocked(monkeypatch: pytest.MonkeyPatch) -> None:
    """No key lock: every interleaving is the protocol's alone to get right."""
    monkeypatch.setattr(LocalMedium, "lock", unlocked_lock)


def once(
    monkeypatch: pytest.MonkeyPatch, module: Any, name: str, before: Callable[[], None]
) -> None:
    """Patch ``module.name`` so that its first call runs ``before`` first."""
    real = getattr(module, name)
    fired: list[bool] = []

    def hooked(*args: Any, **kwargs: Any) -> Any:
        if not fired:
            fired.append(True)
            before()
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, hooked)


@contextlib.contextmanager
def strict() -> Iterator[None]:
    """Any CacheWarning (a 'damaged' file, a failed write) fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        yield


def exact(fn: Any, symbol: str, first: int, last: int) -> None:
    pd.testing.assert_frame_equal(
        fn(symbol, day(first), day(last)), make_bars(symbol, day(first), day(last))
    )


def fresh_read(root: Path, symbol: str, first: int, last: int) -> list[Any]:
    """Read ``[first, last]`` through a new store: exact; the provider calls it needed."""
    calls: list[Any] = []
    exact(bars_fn(root, calls), symbol, first, last)
    return calls


def test_forget_losing_the_race_to_a_write_never_serves_empty_rows(tmp_path, monkeypatch, unlocked):
    """A forgets days 0-9 while B commits days 5-9 first: log order is B's add, then
    A's forget. A's in-memory ledger saw them the other way round; a checkpoint written
    from it would claim days 5-9 covered behind A's tombstone: empty rows served."""
    root = tmp_path / "store"
    fa, fb = bars_fn(root), bars_fn(root)
    exact(fa, "AAA", 0, 4)
    once(monkeypatch, keywrite, "append", lambda: exact(fb, "AAA", 5, 9))
    fa.invalidate("AAA", start=day(0), end=day(9))
    monkeypatch.undo()
    assert fresh_read(root, "AAA", 0, 9) == [("AAA", pd.Timestamp(day(0)), pd.Timestamp(day(9)))]
    assert verify(root).problems == []


def test_plain_writes_racing_for_one_record_both_commit(tmp_path, monkeypatch, unlocked):
    """Two writers build record n+1 at once (A's new piece does not merge: it is
    large): the loser's plain record is retried at n+2, nothing lost, nothing twice."""
    monkeypatch.setattr(compaction, "SMALL_ROWS", 0)  # no tail merges: plain records
    root = tmp_path / "store"
    fa, fb = bars_fn(root), bars_fn(root)
    exact(fa, "AAA", 0, 39)
    once(monkeypatch, keywrite, "append", lambda: exact(fb, "AAA", 100, 109))
    with strict():
        exact(fa, "AAA", 50, 69)
    monkeypatch.undo()
    with strict():
        for first, last in ((0, 39), (50, 69), (100, 109)):
            assert fresh_read(root, "AAA", first, last) == []
    assert verify(root).problems == []


def test_a_tail_merge_whose_part_was_compacted_away_is_not_damage(tmp_path, monkeypatch, unlocked):
    """A merges its piece with the key's small tail; meanwhile B merged that tail into
    its own write and deleted the part. A must not call the part damaged (no warning,
    no quarantine): it catches up and commits its piece."""
    root = tmp_path / "store"
    fa, fb = bars_fn(root), bars_fn(root)
    exact(fa, "AAA", 0, 4)
    once(monkeypatch, keywrite, "merge", lambda: exact(fb, "AAA", 20, 24))
    with strict():
        exact(fa, "AAA", 10, 14)
    monkeypatch.undo()
    assert not (root / ".quarantine").exists()
    with strict():
        for first, last in ((0, 4), (10, 14), (20, 24)):
            assert fresh_read(root, "AAA", first, last) == []
    assert verify(root).problems == []


THREE = ((0, 39), (50, 69), (80, 84))


def _three_segments(root: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(compaction, "SMALL_ROWS", 0)  # decreasing sizes: one segment each
    fn = bars_fn(root)
    for first, last in THREE:
        exact(fn, "AAA", first, last)
    return fn


def _three_read(root: Path) -> list[Any]:
    """Read the three ranges through a new store: the provider calls it needed."""
    calls: list[Any] = []
    fn = bars_fn(root, calls)
    for first, last in THREE:
        exact(fn, "AAA", first, last)
    return calls


def test_a_compaction_whose_parts_were_compacted_away_is_not_damage(
    tmp_path, monkeypatch, unlocked
):
    """Two compactions of one key at once: the second finds its parts deleted by the
    first. Not damage: no warning, nothing quarantined, nothing refetched."""
    root = tmp_path / "store"
    _three_segments(root, monkeypatch)
    sa, sb = bars_fn(root).cache.store, bars_fn(root).cache.store
    sa.get(NS, ("AAA",)) and sb.get(NS, ("AAA",))
    once(monkeypatch, compaction, "merge", lambda: sb.compact())
    with strict():
        sa.compact()
    monkeypatch.undo()
    assert not (root / ".quarantine").exists()
    with strict():
        for first, last in ((0, 39), (50, 69), (80, 84)):
            assert fresh_read(root, "AAA", first, last) == []
    assert verify(root).problems == []


def test_a_write_committed_during_a_compaction_wins(tmp_path, monkeypatch, unlocked):
    """B commits while A's compaction is merging: A's merge (based on the old head) is
    dropped, its file deleted; B's rows and every older row stay exact."""
    root = tmp_path / "store"
    _three_segments(root, monkeypatch)
    fb = bars_fn(root)
    sa = bars_fn(root).cache.store
    once(monkeypatch, compaction, "append", lambda: exact(fb, "AAA", 200, 204))
    with strict():
        sa.compact()
    monkeypatch.undo()
    with strict():
        for first, last in ((0, 39), (50, 69), (80, 84), (200, 204)):
            assert fresh_read(root, "AAA", first, last) == []
    assert verify(root).problems == []


def test_a_lazy_reader_whose_file_is_compacted_away_mid_read_reads_again(tmp_path, monkeypatch):
    """A reader with an old lazy view (eager_rows=0) passes the up-to-date check; then
    another store compacts and deletes the file it is about to read: it catches up and
    answers exactly, with no 'damaged' warning."""
    root = tmp_path / "store"
    _three_segments(root, monkeypatch)
    reader = bars_fn(root, eager_rows=0)
    exact(reader, "AAA", 0, 9)  # opens the key, loads only the first segment's window
    other = bars_fn(root).cache.store
    real = store_mod.up_to_date

    def then_compact(*args: Any) -> bool:  # the check passes, then the files go
        current = real(*args)
        monkeypatch.setattr(store_mod, "up_to_date", real)
        other.compact()
        return current

    monkeypatch.setattr(store_mod, "up_to_date", then_compact)
    with strict():
        for first, last in THREE:
            exact(reader, "AAA", first, last)
    monkeypatch.undo()
    assert not (root / ".quarantine").exists()
    collect(root, grace=0.0)
    assert len(list((root).glob("*/*/seg-*.parquet"))) == 1  # compacted, old parts freed


def test_invalidate_racing_a_compaction_is_kept(tmp_path, monkeypatch, unlocked):
    """A forgets days 50-69 while B's compaction is merging: whichever record comes
    second, the forgotten days are fetched again and the others are not."""
    root = tmp_path / "store"
    _three_segments(root, monkeypatch)
    fa, sb = bars_fn(root), bars_fn(root).cache.store
    sb.get(NS, ("AAA",))
    once(
        monkeypatch, compaction, "append", lambda: fa.invalidate("AAA", start=day(50), end=day(69))
    )
    with strict():
        sb.compact()
    monkeypatch.undo()
    with strict():
        assert fresh_read(root, "AAA", 0, 39) == []
        assert fresh_read(root, "AAA", 50, 69) == [
            ("AAA", pd.Timestamp(day(50)), pd.Timestamp(day(69)))
        ]
    assert verify(root).problems == []


def test_a_checkpoint_by_a_slow_writer_after_a_newer_one_is_harmless(
    tmp_path, monkeypatch, unlocked
):
    """A commits record n+1 and stalls before its checkpoint; B commits and folds a
    newer checkpoint (pruning A's record). A's late, older checkpoint must not hide B's."""
    monkeypatch.setattr(logformat, "CHECKPOINT_EVERY", 1)  # every commit folds the log
    root = tmp_path / "store"
    fa, fb = bars_fn(root), bars_fn(root)
    exact(fa, "AAA", 0, 4)
    # A's checkpoint (the first) runs only after B's two commits and their checkpoints.
    once(
        monkeypatch,
        keywrite,
        "checkpoint",
        lambda: (exact(fb, "AAA", 10, 14), exact(fb, "AAA", 20, 24)),
    )
    with strict():
        exact(fa, "AAA", 30, 34)
    monkeypatch.undo()
    with strict():
        for first, last in ((0, 4), (10, 14), (20, 24), (30, 34)):
            assert fresh_read(root, "AAA", first, last) == []
    assert verify(root).problems == []


def test_foreign_files_in_the_log_directory_are_ignored(tmp_path):
    """Editor backups, Finder droppings, a half-named temp file: ignored by readers,
    writers and gc (not ours to delete), answers exact, no warning."""
    root = tmp_path / "store"
    fn = bars_fn(root)
    exact(fn, "AAA", 0, 9)
    (logdir,) = root.glob("*/*/log")
    foreign = [
        "README.txt",
        ".DS_Store",
        "0000000001.json~",
        "abc.json",
        "1.json.bak",
        "x.checkpoint.json",
    ]
    for name in foreign:
        (logdir / name).write_bytes(b"not ours \x00\xff")
    with strict():
        assert fresh_read(root, "AAA", 0, 9) == []
        exact(bars_fn(root), "AAA", 10, 19)
        bars_fn(root).cache.store.compact()
        collect(root, grace=0.0)
        assert fresh_read(root, "AAA", 0, 19) == []
    assert sorted(p.name for p in logdir.iterdir() if p.name in foreign) == sorted(foreign)


@pytest.mark.parametrize("how", ["bit", "truncated", "empty"])
def test_a_corrupt_record_is_detected_never_served(tmp_path, monkeypatch, how):
    """A record altered in place (still valid JSON), cut short, or empty: CacheWarning,
    the log quarantined, the key fetched again: exact rows."""
    monkeypatch.setattr(logformat, "CHECKPOINT_EVERY", 1000)
    root = tmp_path / "store"
    fn = bars_fn(root)
    exact(fn, "AAA", 0, 99)  # a checkpoint big enough that the next record is not folded
    exact(fn, "AAA", 100, 101)
    records = sorted(p for p in root.glob("*/*/log/*.json") if "checkpoint" not in p.name)
    assert records, "no record after the checkpoint"
    data = records[-1].read_bytes()
    if how == "bit":
        data = data.replace(b'"ops":[["a",', b'"ops":[["r",', 1)
    elif how == "truncated":
        data = data[: len(data) // 2]
    else:
        data = b""
    records[-1].write_bytes(data)
    with pytest.warns(CacheWarning, match="damaged"):
        calls = fresh_read(root, "AAA", 0, 101)
    assert calls  # fetched again, never the altered coverage
    assert (root / ".quarantine").exists()


def _lease(root: Path, pid: int, when: float, keys: list[str]) -> Path:
    path = root / LEASES / f"otherhost-{pid}-deadbeef.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": pid, "time": when, "keys": keys}))
    return path


def _prefix(root: Path) -> str:
    (keydir,) = root.glob("*/*/log")
    return f"{keydir.parent.parent.name}/{keydir.parent.name}"


def test_a_live_lease_pins_replaced_files_a_crashed_one_does_not(tmp_path, monkeypatch):
    """A fresh lease of another process keeps the files a compaction replaced; once it
    is older than EXPIRY (its process crashed) the next gc frees them and removes it."""
    root = tmp_path / "store"
    _three_segments(root, monkeypatch)
    lease = _lease(root, 999_999, time.time(), [_prefix(root)])
    bars_fn(root).cache.store.compact()
    assert len(list(root.glob("*/*/seg-*.parquet"))) == 4  # pinned: merged + 3 replaced
    payload = json.loads(lease.read_text())
    payload["time"] = time.time() - 1000
    lease.write_text(json.dumps(payload))
    os.utime(lease, (time.time() - 1000, time.time() - 1000))
    collect(root, grace=0.0)
    assert len(list(root.glob("*/*/seg-*.parquet"))) == 1
    assert not lease.exists()
    assert _three_read(root) == []


def test_a_crashed_lease_from_a_clock_far_ahead_does_not_pin_forever(tmp_path, monkeypatch):
    """A crashed process on a host whose clock ran a day ahead left a lease 'from the
    future'. It must not pin replaced files forever (nothing would ever refresh or
    remove it)."""
    root = tmp_path / "store"
    _three_segments(root, monkeypatch)
    lease = _lease(root, 999_998, time.time() + 86_400, [_prefix(root)])
    old = time.time() - 1000
    os.utime(lease, (old, old))
    bars_fn(root).cache.store.compact()
    collect(root, grace=0.0)
    assert len(list(root.glob("*/*/seg-*.parquet"))) == 1
    assert _three_read(root) == []


def test_everything_the_store_writes_stays_in_its_directory(tmp_path, monkeypatch):
    """Temp files, leases, locks, probes: nothing outside the store directory (not in
    the working directory, not in TMPDIR)."""
    cwd, tmp, root = tmp_path / "cwd", tmp_path / "tmp", tmp_path / "store"
    cwd.mkdir()
    tmp.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("TMPDIR", str(tmp))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    _three_segments(root, monkeypatch)
    fn = bars_fn(root, eager_rows=0)
    exact(fn, "AAA", 0, 100)
    exact(bars_fn(root, eager_rows=0), "AAA", 0, 100)
    fn.invalidate("AAA", start=day(3), end=day(5))
    fn.cache.store.compact()
    collect(root, grace=0.0)
    fn.cache.store.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cwd", "store", "tmp"]
    assert list(cwd.iterdir()) == [] and list(tmp.iterdir()) == []


def test_a_legacy_key_migrated_under_a_reader_of_its_old_ledger(tmp_path):
    """A reader opened a format-1 key (its ledger.json) lazily; another store's first
    write migrates it (checkpoint, ledger.json deleted, tail merged, parts freed).
    The reader catches up and answers exactly, without a warning or a refetch."""
    root = tmp_path / "store"
    shutil.copytree(FIXTURE, root)
    reader_calls: list[Any] = []
    reader = bars_fn(root, reader_calls, eager_rows=0, namespace="legacy.bars")
    first = pd.Timestamp("2024-01-01")
    with strict():
        got = reader("AAA", first, pd.Timestamp("2024-01-03"))
    pd.testing.assert_frame_equal(got, make_bars("AAA", first, "2024-01-03"))
    writer = bars_fn(root, namespace="legacy.bars")
    writer("AAA", first, pd.Timestamp("2024-02-10"))
    with strict():
        got = reader("AAA", first, pd.Timestamp("2024-02-05"))
    pd.testing.assert_frame_equal(got, make_bars("AAA", first, "2024-02-05"))
    assert reader_calls == []
    assert verify(root).problems == []


def test_a_reader_process_keeps_its_view_while_another_compacts(tmp_path, monkeypatch):
    """A spawned reader opens the key lazily and waits; this process compacts (the
    reader's lease pins the parts); the reader then reads everything: exact, no warning,
    no provider call. After it exits cleanly the parts are freed."""
    root = tmp_path / "store"
    _three_segments(root, monkeypatch)
    ctx = multiprocessing.get_context("spawn")
    opened, go = ctx.Event(), ctx.Event()
    with ctx.Manager() as manager:
        out = manager.dict()
        proc = ctx.Process(target=read_lazily, args=(str(root), opened, go, out))
        proc.start()
        assert opened.wait(60)
        bars_fn(root).cache.store.compact()
        pinned = len(list(root.glob("*/*/seg-*.parquet")))
        go.set()
        proc.join(60)
        assert proc.exitcode == 0, dict(out)
        result = dict(out)
    assert pinned == 4  # the live reader's lease kept the replaced parts
    assert result == {"calls": 0, "warnings": [], "exact": True}
    collect(root, grace=0.0)
    assert len(list(root.glob("*/*/seg-*.parquet"))) == 1


def test_writer_processes_without_locks_lose_nothing(tmp_path):
    """Four processes, locks disabled, write interleaved ranges of one key (with
    invalidations and compactions): afterwards every range they left covered reads
    exactly, nothing the log covers is refetched, and the store verifies clean."""
    from log_workers import race_writer

    root = tmp_path / "store"
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=race_writer, args=(str(root), w, barrier)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    calls: list[Any] = []
    fn = bars_fn(root, calls)
    with strict():
        exact(fn, "AAA", 0, 199)
    assert verify(root).problems == []


class _OnFetch(list[Any]):
    """A call log that runs ``hook`` at the first provider call (mid-request)."""

    def __init__(self, hook: Callable[[], None]) -> None:
        super().__init__()
        self.hook: Callable[[], None] | None = hook

    def append(self, item: Any) -> None:
        super().append(item)
        hook, self.hook = self.hook, None
        if hook is not None:
            hook()


def test_a_forget_landing_while_a_reader_fetches_its_gap_leaves_no_hole(tmp_path, unlocked):
    """R asks days 40-79 (40-59 cached); while R fetches the gap another writer forgets
    days 45-47. R's answer must be exact: from before the forget or refetched after it,
    never the covered days with the forgotten rows missing."""
    root = tmp_path / "store"
    exact(bars_fn(root), "AAA", 40, 59)
    w = bars_fn(root)
    r = bars_fn(root, _OnFetch(lambda: w.invalidate("AAA", start=day(45), end=day(47))))
    exact(r, "AAA", 40, 79)
    exact(bars_fn(root), "AAA", 40, 79)


@pytest.mark.parametrize("step", ["merge", "append", "checkpoint"])
def test_a_forget_landing_inside_a_readers_commit_leaves_no_hole(
    tmp_path, monkeypatch, unlocked, step
):
    """As above, with the forget landing at each step of R's commit of its gap."""
    root = tmp_path / "store"
    exact(bars_fn(root), "AAA", 40, 59)
    w = bars_fn(root)
    r = bars_fn(root)
    once(monkeypatch, keywrite, step, lambda: w.invalidate("AAA", start=day(45), end=day(47)))
    exact(r, "AAA", 40, 79)
    monkeypatch.undo()
    exact(r, "AAA", 40, 79)
    exact(bars_fn(root), "AAA", 40, 79)


def test_a_writer_behind_a_checkpoint_does_not_fork_the_log(tmp_path, monkeypatch, unlocked):
    """A reads head n; B commits record n+1, folds it into checkpoint n+1 and deletes
    record n+1. A's create-if-absent of record n+1 then *succeeds* (the name is free
    again): A must notice it was overtaken, or its next record (n+2, on the real log)
    replaces segments by position in a list it never had: days B wrote stay covered
    with their rows gone."""
    monkeypatch.setattr(logformat, "CHECKPOINT_EVERY", 1)  # every commit folds the log
    root = tmp_path / "store"
    fa, fb = bars_fn(root), bars_fn(root)
    exact(fa, "AAA", 0, 4)
    once(monkeypatch, keywrite, "append", lambda: exact(fb, "AAA", 20, 24))
    exact(fa, "AAA", 10, 14)
    monkeypatch.undo()
    exact(fa, "AAA", 30, 34)
    calls: list[Any] = []
    fresh = bars_fn(root, calls)
    for first, last in ((0, 4), (20, 24), (30, 34)):
        exact(fresh, "AAA", first, last)
    assert calls == []
    assert verify(root).problems == []
