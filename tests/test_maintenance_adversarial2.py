"""More maintenance commands against directories that are not (only) rangememo's.

What a user keeps next to a cache: editor temp files, symlinks to folders
elsewhere, folders named like hashes, a ``namespace.json`` of another tool.
``gc``, ``clear`` and ``compact`` must delete only what rangememo wrote, every
command must answer without a traceback, and the cache must still serve what
it cached. ``audit`` must take a key as ``ls`` shows it and nothing else.

The module's decorated functions are targets for ``rangememo audit
test_maintenance_adversarial2:FUNCTION`` (the command runs in-process).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner, Result

import rangememo._stores.parquet.keywrite
from rangememo import MemoryStore, ParquetStore, range_cached
from rangememo._cli import main
from rangememo.testing import make_bars

HASHY = "0123456789abcdef0123456789abcdef"  # an md5, as many tools name folders
START, END = pd.Timestamp(2024, 1, 2), pd.Timestamp(2024, 1, 10)


def run(root: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--dir", str(root), *args])


def bars_fn(root: Path, calls: list[Any] | None = None) -> Any:
    @range_cached(key="symbol", step="1D", store=ParquetStore(root), namespace="app.bars")
    def bars(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        if calls is not None:
            calls.append((symbol, start, end))
        return make_bars(symbol, start, end)

    return bars


def cached_store(root: Path, calls: list[Any] | None = None) -> Any:
    bars = bars_fn(root, calls)
    bars("AAPL", START, END)
    return bars


def age(path: Path, seconds: float = 3600) -> None:
    old = time.time() - seconds
    for p in [path, *path.rglob("*")]:
        os.utime(p, (old, old), follow_symlinks=False)


def ns_dir(root: Path) -> Path:
    (ns,) = [d for d in root.iterdir() if d.name.startswith("app.bars")]
    return ns


def mine(path: Path, text: str = "mine") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def assert_served_from_cache(root: Path) -> None:
    calls: list[Any] = []
    got = bars_fn(root, calls)("AAPL", START, END)
    pd.testing.assert_frame_equal(got, make_bars("AAPL", START, END))
    assert calls == [], "a cached range was fetched again"


# -- gc deletes only rangememo's temp files ------------------------------------------


def test_gc_keeps_temp_named_files_in_a_users_folder(tmp_path: Path) -> None:
    """``docs/`` is not a namespace: an editor's ``.draft.tmp`` there is the user's."""
    cached_store(tmp_path)
    files = [mine(tmp_path / "docs" / ".draft.tmp"), mine(tmp_path / "docs" / ".tmp-notes")]
    age(tmp_path)
    result = run(tmp_path, "gc")
    assert result.exit_code == 0, result.output
    assert all(f.exists() for f in files), result.output
    assert_served_from_cache(tmp_path)


def test_gc_does_not_follow_a_symlink_out_of_the_store(tmp_path: Path) -> None:
    """A link to a folder elsewhere: gc must never delete a file outside its root."""
    root, outside = tmp_path / "cache", tmp_path / "elsewhere"
    cached_store(root)
    draft = mine(outside / ".draft.tmp")
    os.symlink(outside, root / "shared")
    age(outside)
    result = run(root, "gc")
    assert result.exit_code == 0, result.output
    assert draft.read_text() == "mine", result.output


def test_gc_survives_a_users_folder_named_like_a_temp_file(tmp_path: Path) -> None:
    cached_store(tmp_path)
    inner = mine(tmp_path / "docs" / ".cache.tmp" / "thumb.png")
    age(tmp_path)
    result = run(tmp_path, "gc")
    assert result.exit_code == 0, result.output
    assert inner.read_text() == "mine"


def test_gc_keeps_temp_files_under_a_foreign_namespace_json(tmp_path: Path) -> None:
    """A project with a Kubernetes manifest ``k8s/namespace.json`` is not a store."""
    manifest = mine(tmp_path / "k8s" / "namespace.json", '{"apiVersion": "v1"}')
    draft = mine(tmp_path / "k8s" / ".deploy.tmp")
    age(tmp_path)
    result = run(tmp_path, "gc")
    assert "not a rangememo store" in result.output and result.exit_code == 1, result.output
    assert draft.exists() and manifest.exists()


# -- clear deletes only keys ---------------------------------------------------------


def test_cli_clear_of_a_namespace_keeps_a_hash_named_user_folder(tmp_path: Path) -> None:
    """``ParquetStore.clear(ns)`` keeps it (a key holds a log); the CLI must too."""
    cached_store(tmp_path)
    todo = mine(ns_dir(tmp_path) / HASHY / "todo.txt")
    result = run(tmp_path, "clear", "app.bars")
    assert result.exit_code == 0, result.output
    assert todo.read_text() == "mine"
    assert "cleared 1 key" in result.output, result.output


def test_cli_clear_of_a_key_by_hash_prefix_keeps_a_user_folder(tmp_path: Path) -> None:
    cached_store(tmp_path)
    todo = mine(ns_dir(tmp_path) / HASHY / "todo.txt")
    run(tmp_path, "clear", "app.bars", HASHY[:8])
    assert todo.read_text() == "mine"
    assert_served_from_cache(tmp_path)


def test_cli_clear_never_treats_a_users_folder_as_a_namespace(tmp_path: Path) -> None:
    cached_store(tmp_path)
    photo = mine(tmp_path / "photos" / HASHY / "a.jpg")
    run(tmp_path, "clear", "photos")
    assert photo.read_text() == "mine"
    run(tmp_path, "clear", "--yes")
    assert photo.read_text() == "mine"


def test_ls_and_verify_do_not_list_a_users_folder(tmp_path: Path) -> None:
    cached_store(tmp_path)
    mine(tmp_path / "photos" / HASHY / "a.jpg")
    listed = run(tmp_path, "ls")
    assert listed.exit_code == 0, listed.output
    assert "1 namespace, 1 key" in listed.output, listed.output
    assert "photos" not in listed.output
    checked = run(tmp_path, "verify")
    assert checked.exit_code == 0 and "OK: 1 key verified" in checked.output, checked.output


def test_clear_through_a_symlinked_namespace_keeps_the_targets_other_files(
    tmp_path: Path,
) -> None:
    """A namespace folder shared by a link: its keys go, the folder's other files stay."""
    root, elsewhere = tmp_path / "cache", tmp_path / "shared"
    cached_store(root)
    ns = ns_dir(root)
    shutil.move(str(ns), elsewhere)
    os.symlink(elsewhere, ns)
    assert_served_from_cache(root)
    readme = mine(elsewhere / "README.md")
    result = run(root, "clear", "--yes")
    assert result.exit_code == 0, result.output
    assert readme.read_text() == "mine"
    assert elsewhere.is_dir()


def test_api_clear_of_a_plain_folder_keeps_everything_of_the_users(tmp_path: Path) -> None:
    root, outside = tmp_path / "work", tmp_path / "elsewhere"
    made = [
        mine(root / "notes-0123456789ab" / HASHY / "todo.txt"),
        mine(root / "notes-0123456789ab" / "namespace.json", "{}"),
        mine(outside / HASHY / "keep.txt"),
    ]
    os.symlink(outside, root / "data-0123456789ab")
    ParquetStore(root).clear()
    assert all(p.read_text() in ("mine", "{}") for p in made)


# -- the store is still a store ------------------------------------------------------


def test_a_cleared_store_is_still_a_store(tmp_path: Path) -> None:
    """``clear --yes`` leaves ``.locks``: gc and verify afterwards are not typos."""
    cached_store(tmp_path)
    assert run(tmp_path, "clear", "--yes").exit_code == 0
    for command in ("verify", "gc", "compact", "repair"):
        result = run(tmp_path, command)
        assert result.exit_code == 0, (command, result.output)


def test_a_reader_lease_marks_a_store_beside_a_users_files(tmp_path: Path) -> None:
    """What a cleared S3 store leaves while its processes run: only reader leases."""
    (tmp_path / "readme.txt").write_text("mine")
    leases = tmp_path / ".leases"
    leases.mkdir()
    (leases / "notes.json").write_text("{}")  # not named as a lease: still no store
    assert run(tmp_path, "gc").exit_code == 1
    (leases / "build_host-4242-0123abcd.json").write_text('{"pid": 4242, "keys": []}')
    for command in ("verify", "gc", "compact", "repair"):
        result = run(tmp_path, command)
        assert result.exit_code == 0, (command, result.output)
    assert (tmp_path / "readme.txt").read_text() == "mine"
    assert (leases / "notes.json").read_text() == "{}"


def test_a_store_root_that_is_a_symlink(tmp_path: Path) -> None:
    real, link = tmp_path / "real", tmp_path / "link"
    real.mkdir()
    os.symlink(real, link)
    cached_store(link)
    for command in ("ls", "verify", "gc", "compact", "repair"):
        result = run(link, command)
        assert result.exit_code == 0, (command, result.output)
    assert_served_from_cache(link)
    assert run(link, "clear", "--yes").exit_code == 0
    assert link.is_symlink() and real.is_dir()
    assert not [p for p in real.iterdir() if not p.name.startswith(".")]


def test_a_symlink_loop_in_the_store_breaks_no_command(tmp_path: Path) -> None:
    cached_store(tmp_path)
    os.symlink("loop", tmp_path / "loop")  # a dangling self-link, as a bad ln -s leaves
    for command in ("ls", "verify", "gc", "compact", "repair"):
        result = run(tmp_path, command)
        assert result.exit_code == 0, (command, result.output)
    assert_served_from_cache(tmp_path)


# -- cached data survives maintenance -----------------------------------------------


def test_cached_data_survives_every_maintenance_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Any] = []
    bars = bars_fn(tmp_path, calls)
    with monkeypatch.context() as m:  # several segments per key: compact has work
        m.setattr(rangememo._stores.parquet.keywrite, "plan_tail", lambda segs, *_: len(segs))
        bars("AAPL", START, END)
        bars("AAPL", pd.Timestamp(2024, 1, 20), pd.Timestamp(2024, 1, 25))
        bars("AAPL", END, pd.Timestamp(2024, 1, 20))
        bars("MSFT", START, END)
    calls.clear()
    whole = (pd.Timestamp(2024, 1, 2), pd.Timestamp(2024, 1, 25))
    for command in (["compact"], ["gc", "--grace", "0"], ["verify"], ["repair"], ["ls"]):
        result = run(tmp_path, *command)
        assert result.exit_code == 0, (command, result.output)
        pd.testing.assert_frame_equal(bars("AAPL", *whole), make_bars("AAPL", *whole))
        assert calls == [], command
    again: list[Any] = []
    fresh = bars_fn(tmp_path, again)
    pd.testing.assert_frame_equal(fresh("AAPL", *whole), make_bars("AAPL", *whole))
    pd.testing.assert_frame_equal(fresh("MSFT", START, END), make_bars("MSFT", START, END))
    assert again == []


def test_a_directory_where_a_segment_belongs(tmp_path: Path) -> None:
    cached_store(tmp_path)
    (seg,) = tmp_path.glob("*/*/seg-*.parquet")
    seg.unlink()
    seg.mkdir()
    for command in ("ls", "gc", "compact"):
        result = run(tmp_path, command)
        assert result.exit_code == 0, (command, result.output)
    result = run(tmp_path, "verify")
    assert result.exit_code == 1 and "PROBLEM" in result.output, result.output
    assert run(tmp_path, "repair").exit_code == 0
    assert run(tmp_path, "verify").exit_code == 0
    calls: list[Any] = []
    got = bars_fn(tmp_path, calls)("AAPL", START, END)
    pd.testing.assert_frame_equal(got, make_bars("AAPL", START, END))


def test_a_file_where_a_key_directory_belongs(tmp_path: Path) -> None:
    cached_store(tmp_path)
    (log,) = tmp_path.glob("*/*/log")
    kdir = log.parent
    shutil.rmtree(kdir)
    kdir.write_text("mine")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = bars_fn(tmp_path)("AAPL", START, END)  # answered, not cached
    pd.testing.assert_frame_equal(got, make_bars("AAPL", START, END))
    for command in (["ls"], ["verify"], ["gc", "--grace", "0"], ["compact"], ["repair"]):
        result = run(tmp_path, *command)
        assert result.exit_code == 0, (command, result.output)
    assert run(tmp_path, "clear", "--yes").exit_code == 0
    assert kdir.read_text() == "mine"


# -- audit: keys as ls shows them -----------------------------------------------------

STORE = MemoryStore()
CALLS: list[Any] = []
DISK = Path(tempfile.mkdtemp(prefix="rangememo-adv2-"))


def frame(start: int, end: int) -> pd.DataFrame:
    return pd.DataFrame({"n": range(start, end)}, index=pd.RangeIndex(start, end, name="seq"))


@range_cached(key="sym", step=1, store=STORE, namespace="adv2.one")
def one(sym: Any, start: int, end: int) -> pd.DataFrame:
    CALLS.append((sym, start, end))
    return frame(start, end)


@range_cached(key=("sym", "venue"), step=1, store=STORE, namespace="adv2.two")
def two(sym: Any, venue: Any, start: int, end: int) -> pd.DataFrame:
    CALLS.append((sym, venue, start, end))
    return frame(start, end)


def make_disk(root: Path) -> Any:
    @range_cached(key="sym", step=1, store=ParquetStore(root), namespace="adv2.disk")
    def disk(sym: Any, start: int, end: int) -> pd.DataFrame:
        CALLS.append((sym, start, end))
        return frame(start, end)

    return disk


disk = make_disk(DISK)


def audit(function: str, *args: str) -> tuple[Result, list[dict[str, Any]]]:
    where = f"test_maintenance_adversarial2:{function}"
    result = CliRunner().invoke(main, ["audit", where, *args, "--json"])
    return result, json.loads(result.output) if result.exit_code == 0 else []


def test_audit_an_exact_repr_wins_over_another_keys_text() -> None:
    """``1`` is how ``ls`` shows the int key; ``'1'`` the string's."""
    STORE.clear()
    one(1, 0, 5)
    one("1", 0, 3)
    result, reports = audit("one", "1")
    assert result.exit_code == 0, result.output
    assert [r["key"] for r in reports] == ["(1,)"]
    result, reports = audit("one", "'1'")
    assert [r["key"] for r in reports] == ["('1',)"]
    result, reports = audit("one", "(1,)")
    assert [r["key"] for r in reports] == ["(1,)"]


@pytest.mark.parametrize("text", ["{[1]}", "{{}: 1}", "[1"])
def test_audit_a_literal_that_is_no_key_is_a_usage_error(text: str) -> None:
    STORE.clear()
    one("AAPL", 0, 5)
    n = len(CALLS)
    result = CliRunner().invoke(main, ["audit", "test_maintenance_adversarial2:one", text])
    assert result.exit_code == 2, (result.output, result.exception)
    assert "not cached" in result.output
    assert len(CALLS) == n


def test_audit_keys_of_several_parts() -> None:
    STORE.clear()
    two("AAPL", "XNAS", 0, 5)
    two("AAPL", 1, 0, 4)
    n = len(CALLS)
    for text, shown in [
        ("('AAPL', 'XNAS')", "('AAPL', 'XNAS')"),
        ("('AAPL','XNAS')", "('AAPL', 'XNAS')"),
        ("('AAPL', 1)", "('AAPL', 1)"),
    ]:
        result, reports = audit("two", text)
        assert result.exit_code == 0, (text, result.output)
        assert [r["key"] for r in reports] == [shown]
        assert reports[0]["ranges_checked"] == 1
    result, reports = audit("two", "('AAPL', 'XNAS')", "('AAPL', 1)")
    assert [r["key"] for r in reports] == ["('AAPL', 'XNAS')", "('AAPL', 1)"]
    for text in ("('AAPL', '1')", "AAPL", "('AAPL',)", "('AAPL', 'XNAS', 'x')"):
        result, _ = audit("two", text)
        assert result.exit_code == 2, (text, result.output)
        assert "Traceback" not in result.output
    assert len(CALLS) == n + 5, "only the audited keys' ranges were fetched"


def test_audit_timestamp_key_as_ls_shows_it() -> None:
    STORE.clear()
    ts = pd.Timestamp("2024-01-02")
    one(ts, 0, 5)
    for text in (repr((ts,)), repr(ts), str(ts)):
        result, reports = audit("one", text)
        assert result.exit_code == 0, (text, result.output)
        assert [r["ranges_checked"] for r in reports] == [1]


def test_audit_on_disk_refuses_a_key_that_only_compares_equal() -> None:
    """``True == 1`` but the store keeps them apart (joblib hashes differ): auditing
    ``True`` when only ``1`` is cached must not exit 0 having checked nothing."""
    make_disk(DISK)(1, 0, 5)  # another process's write: this one's memory is empty
    result, reports = audit("disk", "True")
    if result.exit_code == 0:
        assert [(r["key"], r["ranges_checked"]) for r in reports] == [("(1,)", 1)]
    else:
        assert result.exit_code == 2 and "not cached" in result.output, result.output


# -- more clear and gc edges ----------------------------------------------------------


def test_cli_clear_of_an_empty_namespace_name_deletes_nothing(tmp_path: Path) -> None:
    """``rangememo clear "$NS"`` with ``NS`` unset must not match every namespace."""
    cached_store(tmp_path)
    result = run(tmp_path, "clear", "")
    assert result.exit_code != 0, result.output
    assert_served_from_cache(tmp_path)


def test_gc_and_compact_keep_a_users_subfolder_in_a_key(tmp_path: Path) -> None:
    cached_store(tmp_path)
    (log,) = tmp_path.glob("*/*/log")
    extra = mine(log.parent / "extras" / "seg-mine.parquet")
    age(tmp_path)
    for command in (["gc", "--grace", "0"], ["compact"], ["repair"]):
        result = run(tmp_path, *command)
        assert result.exit_code == 0, (command, result.output)
    assert extra.read_text() == "mine"
    assert run(tmp_path, "verify").exit_code == 0
    assert_served_from_cache(tmp_path)
