"""ParquetStore under faults: damaged files, full or read-only disks, failing writes."""

from __future__ import annotations

import errno
import json
import os
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

import rangememo._stores.parquet.keywrite
import rangememo._stores.parquet.logformat
import rangememo._stores.parquet.segments
from rangememo import CacheWarning, ParquetStore, range_cached
from rangememo._stores.parquet.local.medium import LocalMedium
from rangememo._stores.parquet.log import load
from rangememo._stores.parquet.maintenance import verify
from rangememo.testing import make_bars

NS = "tests.faults@v0"


def day(d: int) -> pd.Timestamp:
    return pd.Timestamp(2024, 1, d)


class Provider:
    """make_bars, recording the ranges asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[pd.Timestamp, pd.Timestamp]] = []

    def __call__(self, symbol: str, start: Any, end: Any) -> pd.DataFrame:
        self.calls.append((pd.Timestamp(start), pd.Timestamp(end)))
        return make_bars(symbol, start, end)


def cached(root: Path, provider: Any, **store: Any) -> Any:
    store.setdefault("durable", False)
    return range_cached(
        key="symbol", step="1D", store=ParquetStore(root, **store), namespace="tests.faults"
    )(provider)


def keydir(root: Path) -> Path:
    (log,) = [p for p in root.rglob("log") if p.is_dir()]
    return log.parent


def segments(root: Path) -> list[Path]:
    """The key's segment files, in log order."""
    kdir = keydir(root)
    state = load(LocalMedium(root), f"{kdir.parent.name}/{kdir.name}")
    assert state is not None
    return [kdir / s.file for s in state.segments if s.file]


def files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and ".locks" not in p.parts and ".leases" not in p.parts
    }


@pytest.fixture
def two_segments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A key written by two calls: days 2-10 and 11-20, one segment each (no tail merge)."""
    with monkeypatch.context() as m:
        m.setattr(rangememo._stores.parquet.keywrite, "plan_tail", lambda segs, *_: len(segs))
        _two_calls(tmp_path)
    return tmp_path


def _two_calls(tmp_path: Path) -> None:
    fn = cached(tmp_path, Provider())
    fn("AAA", day(2), day(10))
    fn("AAA", day(11), day(20))
    assert len(segments(tmp_path)) == 2


# -- damaged files -------------------------------------------------------------------------


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip(offset: float) -> Any:
    def damage(path: Path) -> None:
        data = bytearray(path.read_bytes())
        i = int(len(data) * offset)
        data[i : i + 8] = bytes(b ^ 0xFF for b in data[i : i + 8])
        path.write_bytes(bytes(data))

    return damage


DAMAGE = {
    "truncated": _truncate,
    "bytes-flipped-early": _flip(0.15),
    "bytes-flipped-middle": _flip(0.5),
    "emptied": lambda p: p.write_bytes(b""),
    "deleted": lambda p: p.unlink(),
    "replaced-by-another-part": None,  # filled in below: a valid Parquet file, wrong rows
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_segment_warns_quarantines_and_refetches_its_range(two_segments, damage):
    """CacheWarning, the file moved to .quarantine, only its range fetched again, exact rows."""
    root = two_segments
    first, second = segments(root)
    if damage == "replaced-by-another-part":
        second.write_bytes(first.read_bytes())
    else:
        DAMAGE[damage](second)
    provider = Provider()
    fn = cached(root, provider)
    with pytest.warns(CacheWarning, match="damaged"):
        got = fn("AAA", day(2), day(20))
    assert_frame_equal(got, make_bars("AAA", day(2), day(20)))
    assert provider.calls == [(day(11), day(20))]
    if damage != "deleted":
        assert [p.name.split(".")[0] for p in (root / ".quarantine").rglob("seg-*")] == [
            second.name.split(".")[0]
        ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = cached(root, provider)
        assert_frame_equal(again("AAA", day(2), day(20)), got)
    assert len(provider.calls) == 1
    assert verify(root).problems == []


def test_damage_found_in_a_big_key_read_window_by_window(tmp_path, monkeypatch):
    """A key too big to load whole: the damage is found by the window that needs it."""
    fn = cached(tmp_path, Provider(), eager_rows=0)
    with monkeypatch.context() as m:  # two parts: no tail merge
        m.setattr(rangememo._stores.parquet.keywrite, "plan_tail", lambda segs, *_: len(segs))
        fn("AAA", day(2), day(10))
        fn("AAA", day(11), day(20))
    _truncate(segments(tmp_path)[0])
    provider = Provider()
    cold = cached(tmp_path, provider, eager_rows=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_frame_equal(cold("AAA", day(12), day(18)), make_bars("AAA", day(12), day(18)))
    with pytest.warns(CacheWarning, match="damaged"):
        assert_frame_equal(cold("AAA", day(2), day(20)), make_bars("AAA", day(2), day(20)))
    assert provider.calls == [(day(2), day(10))]


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.write_text("{not json"),
        lambda p: p.write_bytes(p.read_bytes()[:-20]),
        lambda p: p.write_text(p.read_text().replace('"rows":7', '"rows":6', 1)),
        lambda p: p.write_bytes(b"\x00" * 100),
    ],
    ids=["garbage", "truncated", "edited", "zeros"],
)
def test_damaged_ledger_warns_quarantines_and_refetches_the_key(two_segments, damage):
    """An unreadable log file: CacheWarning, the log quarantined, the key fetched again."""
    root = two_segments
    for path in sorted((keydir(root) / "log").iterdir()):
        damage(path)
    provider = Provider()
    fn = cached(root, provider)
    with pytest.warns(CacheWarning, match="log"):
        got = fn("AAA", day(2), day(20))
    assert_frame_equal(got, make_bars("AAA", day(2), day(20)))
    assert provider.calls == [(day(2), day(20))]
    assert list((root / ".quarantine").rglob("log.*"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_frame_equal(cached(root, provider)("AAA", day(2), day(20)), got)
    assert len(provider.calls) == 1


def test_a_ledger_of_a_newer_version_is_left_alone(two_segments):
    """A ledger with a newer format: not read, not quarantined, not overwritten; the call
    answers (uncached, with a warning)."""
    root = two_segments
    for path in (keydir(root) / "log").iterdir():
        body = json.loads(path.read_bytes().rpartition(b"\n")[0].rpartition(b"\n")[0])
        body["format"] = 3
        path.write_bytes(rangememo._stores.parquet.logformat.seal(body))
    before = files(root)
    provider = Provider()
    with pytest.warns(CacheWarning, match="newer rangememo"):
        got = cached(root, provider)("AAA", day(2), day(20))
    assert_frame_equal(got, make_bars("AAA", day(2), day(20)))
    assert files(root) == before
    assert verify(root).problems == []


# -- failing writes: full disk, no permission ---------------------------------------------


def _failing(code: int) -> Any:
    def write(*args: Any, **kwargs: Any) -> None:
        raise OSError(code, os.strerror(code))

    return write


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES, errno.EROFS])
def test_failed_segment_write_still_answers_and_leaves_the_key_as_it_was(
    two_segments, monkeypatch, code
):
    """Disk full / permission denied: the call returns the provider's rows with a
    CacheWarning; the ledger is untouched and no temp file stays behind."""
    root = two_segments
    before = files(root)
    monkeypatch.setattr(rangememo._stores.parquet.segments, "write_bytes", _failing(code))
    provider = Provider()
    fn = cached(root, provider)
    with pytest.warns(CacheWarning, match=os.strerror(code)):
        got = fn("AAA", day(2), day(31))
    assert_frame_equal(got, make_bars("AAA", day(2), day(31)))
    assert files(root) == before
    monkeypatch.undo()
    assert_frame_equal(fn("AAA", day(2), day(31)), got)  # stored now
    assert provider.calls == [(day(21), day(31))] * 2
    assert len(segments(root)) == 1  # the new piece merged with the small parts


def test_failed_ledger_write_removes_the_new_segment(two_segments, monkeypatch):
    """The segment is written, the record's create fails: the segment goes, the log stays
    as it was, the call still answers."""
    root = two_segments
    before = files(root)
    real = LocalMedium.create

    def no_record(self: LocalMedium, name: str, data: Any) -> bool:
        if "/log/" in name:
            raise PermissionError(errno.EACCES, "Permission denied", name)
        return real(self, name, data)

    monkeypatch.setattr(LocalMedium, "create", no_record)
    fn = cached(root, Provider())
    with pytest.warns(CacheWarning, match="Permission denied"):
        got = fn("AAA", day(15), day(31))
    assert_frame_equal(got, make_bars("AAA", day(15), day(31)))
    assert files(root) == before


async def test_failed_write_in_an_async_function(two_segments, monkeypatch):
    """The async path: the same warning, the same answer, nothing written."""
    root = two_segments
    before = files(root)
    monkeypatch.setattr(rangememo._stores.parquet.segments, "write_bytes", _failing(errno.ENOSPC))

    @range_cached(
        key="symbol", step="1D", store=ParquetStore(root, durable=False), namespace="tests.faults"
    )
    async def fn(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        return make_bars(symbol, start, end)

    with pytest.warns(CacheWarning, match="No space left"):
        got = await fn("AAA", day(2), day(31))
    assert_frame_equal(got, make_bars("AAA", day(2), day(31)))
    assert files(root) == before


def test_a_directory_that_cannot_be_created_still_answers(tmp_path):
    """A store path under a regular file cannot hold anything: answers come uncached."""
    (tmp_path / "file").write_text("")
    provider = Provider()
    fn = cached(tmp_path / "file" / "store", provider)
    for _ in range(2):
        with pytest.warns(CacheWarning):
            assert_frame_equal(fn("AAA", day(2), day(5)), make_bars("AAA", day(2), day(5)))
    assert len(provider.calls) == 2
