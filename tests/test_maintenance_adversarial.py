"""Maintenance commands against directories that are not (only) rangememo's.

A user points ``--dir`` at the wrong folder, keeps a README next to the cache,
or a crash leaves a directory where a log file belongs. ``gc`` and ``clear``
must delete only what rangememo wrote; ``verify`` must name what it finds,
never raise a traceback; and ``audit`` must refuse input it cannot honour.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path
from typing import Any

import audit_target
import pandas as pd
import pytest
from click.testing import CliRunner, Result

from rangememo import ParquetStore, range_cached
from rangememo._cli import main
from rangememo.testing import make_bars

DAY = pd.Timedelta("1D")


def run(root: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--dir", str(root), *args])


def cached_store(root: Path, calls: list[Any] | None = None) -> Any:
    @range_cached(key="symbol", step="1D", store=ParquetStore(root), namespace="app.bars")
    def bars(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        if calls is not None:
            calls.append((symbol, start, end))
        return make_bars(symbol, start, end)

    bars("AAPL", pd.Timestamp(2024, 1, 2), pd.Timestamp(2024, 1, 10))
    bars("AAPL", pd.Timestamp(2024, 1, 20), pd.Timestamp(2024, 1, 25))
    return bars


def age(path: Path, seconds: float = 3600) -> None:
    old = time.time() - seconds
    for p in [path, *path.rglob("*")]:
        os.utime(p, (old, old))


def key_dir(root: Path) -> Path:
    (ns,) = [d for d in root.iterdir() if d.name.startswith("app.bars")]
    (kdir,) = [d for d in ns.iterdir() if d.is_dir()]
    return kdir


# -- gc and clear delete only rangememo's own ----------------------------------------


def user_folders(root: Path) -> list[Path]:
    """What a user keeps in a folder: photos in subfolders, a notes folder shaped like
    a namespace (a dash and 12 hex digits), folders with an empty ``log/``."""
    made = [
        root / "photos" / "2020" / "a.jpg",
        root / "photos" / "2021" / "log" / "x.txt",
        root / "notes-0123456789ab" / "0123456789abcdef0123456789abcdef" / "todo.txt",
        root / "backup-aaaaaaaaaaaa" / "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb" / "log" / "keep.md",
    ]
    for path in made:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("mine")
    (root / "photos" / "2022" / "log").mkdir(parents=True)  # an empty folder named log
    age(root)
    return made


def test_gc_refuses_a_directory_that_is_not_a_store(tmp_path: Path) -> None:
    made = user_folders(tmp_path)
    for command in (["gc"], ["compact"], ["clear", "--yes"]):
        result = run(tmp_path, *command)
        assert result.exit_code == 1, result.output
        assert "not a rangememo store" in result.output
    assert all(p.read_text() == "mine" for p in made)
    assert (tmp_path / "photos" / "2022" / "log").is_dir()


def test_gc_and_clear_in_a_store_keep_the_users_folders(tmp_path: Path) -> None:
    cached_store(tmp_path)
    made = user_folders(tmp_path)
    stray = key_dir(tmp_path).parent / "readme-0123456789ab.txt"
    stray.write_text("mine")
    assert run(tmp_path, "gc", "--grace", "0").exit_code == 0
    assert all(p.read_text() == "mine" for p in made)
    assert (tmp_path / "photos" / "2022" / "log").is_dir()
    assert run(tmp_path, "verify").exit_code == 0
    ParquetStore(tmp_path).clear()
    (ns,) = [d for d in tmp_path.iterdir() if d.name.startswith("app.bars")]
    assert not [p for p in ns.iterdir() if p.is_dir()], "every key is gone"
    assert stray.read_text() == "mine"
    assert all(p.read_text() == "mine" for p in made)


def test_gc_keeps_a_key_directory_holding_a_file_it_did_not_write(tmp_path: Path) -> None:
    cached_store(tmp_path)
    kdir = key_dir(tmp_path)
    for record in (kdir / "log").iterdir():
        record.unlink()
    (kdir / "notes.txt").write_text("mine")
    age(tmp_path)
    assert run(tmp_path, "gc").exit_code == 0
    assert (kdir / "notes.txt").read_text() == "mine"
    (kdir / "notes.txt").unlink()
    assert run(tmp_path, "gc").exit_code == 0
    assert not kdir.exists(), "now only an unfinished first write is left"


def test_verify_of_a_healthy_store_has_no_notes(tmp_path: Path) -> None:
    """Every key has a ``log/`` folder: it is not an "orphan file"."""
    cached_store(tmp_path)
    result = run(tmp_path, "verify")
    assert result.exit_code == 0 and result.output.startswith("OK"), result.output
    (key_dir(tmp_path) / "notes.txt").write_text("mine")
    result = run(tmp_path, "verify")
    assert "notes.txt: not rangememo's file (left alone)" in result.output
    run(tmp_path, "gc", "--grace", "0")
    assert (key_dir(tmp_path) / "notes.txt").exists()


# -- a directory or a file where the other belongs -----------------------------------


def test_a_directory_where_a_log_record_belongs_is_damage(tmp_path: Path) -> None:
    calls: list[Any] = []
    bars = cached_store(tmp_path, calls)
    log = key_dir(tmp_path) / "log"
    nxt = max(int(p.name.partition(".")[0]) for p in log.iterdir()) + 1
    (log / f"{nxt:010d}.json").mkdir()
    for command in ("ls", "gc", "compact"):
        result = run(tmp_path, command)
        assert result.exit_code == 0, (command, result.output)
    result = run(tmp_path, "verify")
    assert result.exit_code == 1 and "a directory where a log file belongs" in result.output
    assert run(tmp_path, "repair").exit_code == 0
    assert run(tmp_path, "verify").exit_code == 0
    start, end = pd.Timestamp(2024, 1, 2), pd.Timestamp(2024, 1, 10)
    pd.testing.assert_frame_equal(bars("AAPL", start, end), make_bars("AAPL", start, end))


def test_the_store_refetches_around_a_directory_in_its_log(tmp_path: Path) -> None:
    calls: list[Any] = []
    cached_store(tmp_path, calls)
    log = key_dir(tmp_path) / "log"
    nxt = max(int(p.name.partition(".")[0]) for p in log.iterdir()) + 1
    (log / f"{nxt:010d}.json").mkdir()
    calls.clear()
    again = cached_store(tmp_path, calls)  # a new process's store
    assert calls, "the damaged log was quarantined and the key fetched again"
    start, end = pd.Timestamp(2024, 1, 20), pd.Timestamp(2024, 1, 25)
    n = len(calls)
    pd.testing.assert_frame_equal(again("AAPL", start, end), make_bars("AAPL", start, end))
    assert len(calls) == n


def test_a_file_where_the_lock_folder_belongs(tmp_path: Path) -> None:
    cached_store(tmp_path)
    locks = tmp_path / ".locks"
    if locks.is_dir():
        for p in locks.iterdir():
            p.unlink()
        locks.rmdir()
    locks.write_text("mine")
    result = run(tmp_path, "gc")
    assert result.exit_code == 1
    assert ".locks is not a folder" in result.output and "Traceback" not in result.output
    assert locks.read_text() == "mine"
    with pytest.warns(Warning, match=r"\.locks is not a folder"):
        cached_store_new_key(tmp_path)  # answered exactly, not cached


def cached_store_new_key(root: Path) -> None:
    @range_cached(key="symbol", step="1D", store=ParquetStore(root), namespace="app.bars")
    def bars(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        return make_bars(symbol, start, end)

    got = bars("NEW", pd.Timestamp(2024, 1, 2), pd.Timestamp(2024, 1, 5))
    pd.testing.assert_frame_equal(
        got, make_bars("NEW", pd.Timestamp(2024, 1, 2), pd.Timestamp(2024, 1, 5))
    )


def test_a_directory_where_namespace_json_belongs(tmp_path: Path) -> None:
    cached_store(tmp_path)
    meta = key_dir(tmp_path).parent / "namespace.json"
    meta.unlink()
    meta.mkdir()
    for command in ("verify", "gc", "compact"):
        result = run(tmp_path, command)
        assert result.exit_code == 0, (command, result.output)
    listed = run(tmp_path, "ls")
    assert "1 namespace, 1 key" in listed.output, "namespace.json/ is not a key"


# -- audit: keys as ls shows them, and options checked before any call ---------------


def test_audit_takes_a_date_key_as_ls_shows_it() -> None:
    audit_target.STORE.clear()
    session = dt.date(2024, 1, 2)
    audit_target.ticks(session, 0, 50)
    shown = repr((session,))
    assert "datetime.date" in shown
    result = CliRunner().invoke(main, ["audit", "audit_target:ticks", shown, "--json"])
    assert result.exit_code == 0, result.output
    assert '"ranges_checked": 1' in result.output


@pytest.mark.parametrize("key", ["ZZZ", "('ZZZ',)", "('AAPL', 'extra')"])
def test_audit_of_a_key_not_cached_is_an_error(key: str) -> None:
    audit_target.STORE.clear()
    audit_target.bars("AAPL", pd.Timestamp(2024, 1, 2), pd.Timestamp(2024, 1, 10))
    n = len(audit_target.CALLS)
    result = CliRunner().invoke(main, ["audit", "audit_target:bars", key])
    assert result.exit_code == 2, result.output
    assert "not cached" in result.output and "('AAPL',)" in result.output
    assert len(audit_target.CALLS) == n


@pytest.mark.parametrize("sample", ["0", "-1", "1.5", "nan", "inf", "0.0"])
def test_audit_sample_out_of_range_is_a_clear_error(sample: str) -> None:
    audit_target.STORE.clear()
    audit_target.bars("AAPL", pd.Timestamp(2024, 1, 2), pd.Timestamp(2024, 1, 10))
    n = len(audit_target.CALLS)
    result = CliRunner().invoke(main, ["audit", "audit_target:bars", "--sample", sample])
    assert result.exit_code == 2 and "--sample" in result.output and sample in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert len(audit_target.CALLS) == n, "refused before any provider call"


def test_audit_sample_fraction_one_checks_everything() -> None:
    audit_target.STORE.clear()
    audit_target.bars("AAPL", pd.Timestamp(2024, 1, 2), pd.Timestamp(2024, 3, 10))
    result = CliRunner().invoke(
        main, ["audit", "audit_target:bars", "AAPL", "--sample", "1.0", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert '"ranges_checked": 3' in result.output and '"ranges_covered": 3' in result.output
