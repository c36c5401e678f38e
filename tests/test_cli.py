"""The ``rangememo`` command, run with click's test runner against real store directories."""

from __future__ import annotations

import importlib.metadata
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner, Result
from pandas.testing import assert_frame_equal

import rangememo._stores.parquet.keywrite
from rangememo import ParquetStore, range_cached
from rangememo._cli import main
from rangememo._stores.parquet.local.medium import LocalMedium
from rangememo._stores.parquet.log import load
from rangememo.testing import make_bars, make_blocks


def day(d: int, m: int = 1) -> pd.Timestamp:
    return pd.Timestamp(2024, m, d)


def bars_fn(root: Path, calls: list[Any] | None = None, **store: Any) -> Any:
    @range_cached(key="symbol", step="1D", store=ParquetStore(root, **store), namespace="app.bars")
    def bars(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        if calls is not None:
            calls.append((symbol, start, end))
        return make_bars(symbol, start, end)

    return bars


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A store made by real calls: two keys of daily bars (one with a hole, in two parts:
    tail merging off), one of blocks."""
    root = tmp_path / "cache"
    bars = bars_fn(root, durable=False)
    bars("AAPL", day(2), day(10))
    with monkeypatch.context() as m:
        m.setattr(rangememo._stores.parquet.keywrite, "plan_tail", lambda segs, *_: len(segs))
        bars("AAPL", day(20), day(31))
    bars("MSFT", day(2), day(5))

    @range_cached(key="chain", step=1, store=ParquetStore(root), namespace="app.blocks")
    def blocks(chain: str, start: int, end: int) -> pd.DataFrame:
        return make_blocks(chain, start, end)

    blocks("eth", 100, 199)
    return root


def run(root: Path | None, *args: str, input: str | None = None) -> Result:
    prefix = ["--dir", str(root)] if root is not None else []
    return CliRunner().invoke(main, [*prefix, *args], input=input, catch_exceptions=False)


def _state(kdir: Path) -> Any:
    return load(LocalMedium(kdir.parent.parent), f"{kdir.parent.name}/{kdir.name}")


def keydir(root: Path, symbol: str) -> Path:
    for path in root.glob("*/*/log"):
        state = _state(path.parent)
        if state is not None and symbol in state.key["repr"]:
            return path.parent
    raise AssertionError(symbol)


def seg_files(kdir: Path) -> list[Path]:
    return [kdir / s.file for s in _state(kdir).segments if s.file]


def _old(path: Path) -> None:
    """Make a file look an hour old (gc spares younger orphans: a writer may be at work)."""
    old = time.time() - 3600
    os.utime(path, (old, old))


# -- looking ------------------------------------------------------------------------------


def test_ls_lists_namespaces_keys_rows_coverage_and_bytes(store):
    """Every key with its rows, covered range (pieces), segments, bytes and last write."""
    out = run(store, "ls")
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    (aapl,) = [line for line in lines if "('AAPL',)" in line]
    assert "app.bars@v0" in aapl and "2024-01-02 → 2024-02-01 (2 pieces)" in aapl
    assert " 15 " in aapl and " 2 " in aapl and " kB" in aapl
    assert any("('eth',)" in line and " 100 " in line and "100 → 200" in line for line in lines)
    assert "2 namespaces, 3 keys" in out.output
    assert "1 key" in run(store, "ls", "app.blocks").output


def test_ls_of_one_namespace_and_default_directory(store, monkeypatch):
    """``ls NAMESPACE`` filters by name or prefix; ``--dir`` defaults to $RANGEMEMO_CACHE_DIR."""
    monkeypatch.setenv("RANGEMEMO_CACHE_DIR", str(store))
    out = run(None, "ls", "app.blocks")
    assert out.exit_code == 0
    assert "('eth',)" in out.output and "AAPL" not in out.output


def test_show_prints_coverage_gaps_and_segments(store):
    """``show NAMESPACE KEY``: covered pieces with state, the gap between them, segments."""
    out = run(store, "show", "app.bars", "('AAPL',)")
    assert out.exit_code == 0, out.output
    assert "2024-01-02" in out.output and "2024-01-20" in out.output and "final" in out.output
    gaps = out.output.split("gaps")[1].split("segments")[0]
    assert "2024-01-11" in gaps and "2024-01-20" in gaps
    assert out.output.count("seg-") == 2
    by_hash = run(store, "show", "app.bars@v0", keydir(store, "AAPL").name[:8])
    assert by_hash.exit_code == 0 and by_hash.output == out.output


def test_show_unknown_or_ambiguous_key_fails_naming_it(store):
    """No such key: exit 1 naming it; a prefix matching several namespaces is refused."""
    out = run(store, "show", "app.bars", "('NOPE',)")
    assert out.exit_code == 1 and "('NOPE',)" in out.output
    assert run(store, "clear", "app").exit_code == 1


def test_keys_that_look_like_markup_are_shown_as_they_are(tmp_path):
    """A key such as ``[red]x[/]`` is text, not rich markup."""
    bars_fn(tmp_path)("[red]x[/] [", day(2), day(3))
    out = run(tmp_path, "ls")
    assert out.exit_code == 0 and "('[red]x[/] [',)" in out.output


def test_missing_directory_is_an_error(tmp_path):
    out = run(tmp_path / "nowhere", "ls")
    assert out.exit_code == 1 and "no store directory" in out.output


# -- verify ---------------------------------------------------------------------------------


def test_verify_passes_on_a_healthy_store(store):
    out = run(store, "verify")
    assert out.exit_code == 0, out.output
    assert "OK: 3 keys verified" in out.output


def test_verify_fails_naming_a_damaged_segment(store):
    """A truncated segment: exit 1, the file named."""
    seg = seg_files(keydir(store, "MSFT"))[0]
    seg.write_bytes(seg.read_bytes()[:100])
    out = run(store, "verify")
    assert out.exit_code == 1
    assert seg.name in out.output and "PROBLEM" in out.output and "('MSFT',)" in out.output


def test_verify_fails_naming_a_damaged_ledger(store):
    name = keydir(store, "AAPL").name
    for record in (keydir(store, "AAPL") / "log").iterdir():
        record.write_bytes(record.read_bytes()[:-10])
    out = run(store, "verify")
    assert out.exit_code == 1 and "log" in out.output and name in out.output


def test_verify_notes_orphans_but_passes(store):
    """An orphan part (a crashed writer's) is harmless: a note, exit 0."""
    seg = seg_files(keydir(store, "MSFT"))[0]
    (seg.parent / "seg-0000orphan.parquet").write_bytes(seg.read_bytes())
    out = run(store, "verify")
    assert out.exit_code == 0 and "orphan" in out.output


# -- gc, compact, clear -----------------------------------------------------------------------


def test_gc_removes_orphans_temp_files_and_old_retired_parts(store):
    """What a crash or a compaction leaves behind goes; what the log names stays."""
    kdir = keydir(store, "AAPL")
    seg = seg_files(kdir)[0]
    (kdir / "seg-0000orphan.parquet").write_bytes(seg.read_bytes())
    (kdir / ".tmp-abc").write_text("{")
    (kdir / "seg-0000young.parquet").write_bytes(seg.read_bytes())  # a writer's, maybe
    _old(kdir / "seg-0000orphan.parquet")
    _old(kdir / ".tmp-abc")
    swept = run(store, "gc")
    assert "seg-0000orphan.parquet" in swept.output and ".tmp-abc" in swept.output
    assert "2 files removed" in swept.output and (kdir / "seg-0000young.parquet").exists()
    assert "1 file removed" in run(store, "gc", "--grace", "0").output
    replaced = seg_files(kdir)
    assert len(replaced) == 2
    assert run(store, "compact").exit_code == 0  # no other process reads AAPL: freed at once
    assert not any(f.exists() for f in replaced) and len(seg_files(kdir)) == 1
    assert "0 files removed" in run(store, "gc").output
    assert run(store, "verify").exit_code == 0
    calls: list[Any] = []
    got = bars_fn(store, calls)("AAPL", day(2), day(31))
    assert_frame_equal(got, make_bars("AAPL", day(2), day(31)))
    assert calls == [("AAPL", day(11), day(19))]


def test_compact_merges_segments_and_readers_see_the_same_rows(store, monkeypatch):
    """``compact``: one segment per key after, identical answers, no provider call."""
    bars = bars_fn(store)
    with monkeypatch.context() as m:  # one part per write: tail merging off
        m.setattr(rangememo._stores.parquet.keywrite, "plan_tail", lambda segs, *_: len(segs))
        for d in range(1, 20):
            bars("IBM", day(d, 3), day(d, 3))
    before = bars_fn(store)("IBM", day(1, 3), day(19, 3))
    out = run(store, "compact")
    assert out.exit_code == 0 and "segments merged away" in out.output
    assert len(seg_files(keydir(store, "IBM"))) == 1
    calls: list[Any] = []
    assert_frame_equal(bars_fn(store, calls)("IBM", day(1, 3), day(19, 3)), before)
    assert calls == []


def test_clear_one_key_one_namespace_everything(store):
    """``clear NS KEY`` then ``clear NS`` then ``clear`` (asks first unless --yes)."""
    assert run(store, "clear", "app.bars", "('MSFT',)").exit_code == 0
    assert "MSFT" not in run(store, "ls").output
    assert run(store, "clear", "app.blocks").exit_code == 0
    assert "eth" not in run(store, "ls").output and "AAPL" in run(store, "ls").output
    refused = run(store, "clear", input="n\n")
    assert refused.exit_code == 1 and "AAPL" in run(store, "ls").output
    assert run(store, "clear", "--yes").exit_code == 0
    assert "0 namespaces, 0 keys" in run(store, "ls").output


def test_gc_of_a_key_whose_first_write_never_finished(store):
    """A key directory without a ledger (killed before its first commit) is removed."""
    kdir = keydir(store, "MSFT")
    for record in (kdir / "log").iterdir():
        record.unlink()
    assert "did not finish" in run(store, "verify").output
    assert run(store, "gc").exit_code == 0
    assert kdir.exists(), "its files are younger than the grace: a writer may be at work"
    old = time.time() - 3600
    for path in [kdir, *kdir.rglob("*")]:
        os.utime(path, (old, old))
    assert run(store, "gc").exit_code == 0
    assert not kdir.exists()


def test_console_script_entry_point():
    """``rangememo`` is installed as a console script running this CLI."""
    (ep,) = [
        e for e in importlib.metadata.entry_points(group="console_scripts") if e.name == "rangememo"
    ]
    assert ep.load() is main
