"""Maintenance commands on an S3 store that shares its bucket and prefix with a user's objects.

The local-directory versions live in ``test_maintenance_adversarial*.py``. On an
object store a "folder" is only a name prefix: a store at ``s3://b/cache`` sits
beside ``s3://b/cache2`` and ``s3://b/cache-old``, an object may be named like a
folder that also has children, and a store may live at a bucket's root among
other objects. ``gc``, ``compact``, ``repair`` and ``clear`` must delete only what
rangememo wrote; every command must answer without a traceback; the cache must
keep serving what it cached (against a real SeaweedFS, see ``s3fixtures.py``).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import obstore
import pandas as pd
import pytest
from click.testing import CliRunner, Result
from pandas.testing import assert_frame_equal

import rangememo._stores.parquet.keywrite
from rangememo import ParquetStore, range_cached
from rangememo._cli import main
from rangememo._stores.parquet.s3.options import S3Location
from rangememo.testing import make_bars

NS = "app.bars"
HASHY = "0123456789abcdef0123456789abcdef"  # an md5, as many tools name folders
START, END = pd.Timestamp(2024, 1, 2), pd.Timestamp(2024, 1, 10)
LATER = (pd.Timestamp(2024, 1, 20), pd.Timestamp(2024, 1, 25))
WHOLE = (START, LATER[1])


def run(url: str, *args: str) -> Result:
    result = CliRunner().invoke(main, ["--dir", url, *args])
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        args,
        repr(result.exception),
        result.output,
    )
    return result


def ok(url: str, *args: str) -> Result:
    result = run(url, *args)
    assert result.exit_code == 0, (args, result.output)
    return result


def raw(url: str) -> Any:
    return S3Location.from_url(url).open()


def put(url: str, name: str, data: bytes = b"mine") -> str:
    obstore.put(raw(url), name, data)
    return name


def get(url: str, name: str) -> bytes | None:
    try:
        return bytes(obstore.get(raw(url), name).bytes())
    except FileNotFoundError:
        return None
    except Exception as exc:  # obstore's NotFoundError
        if "not found" in str(exc).lower() or type(exc).__name__ == "NotFoundError":
            return None
        raise


def objects(url: str) -> list[str]:
    return sorted(str(m["path"]) for batch in obstore.list(raw(url)) for m in batch)


def bars_fn(url: str, calls: list[Any] | None = None, namespace: str = NS) -> Any:
    @range_cached(key="symbol", step="1D", store=ParquetStore(url), namespace=namespace)
    def bars(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        if calls is not None:
            calls.append((symbol, start, end))
        return make_bars(symbol, start, end)

    return bars


def cached_store(url: str) -> Any:
    bars = bars_fn(url)
    bars("AAPL", START, END)
    bars("AAPL", *LATER)
    bars("AAPL", *WHOLE)  # fills the gap: the whole span is cached, in three pieces
    return bars


def nsname(url: str, namespace: str = NS) -> str:
    from rangememo._stores.parquet.layout import namespace_dirname

    return namespace_dirname(f"{namespace}@v0")  # the decorator's default version


def key_prefix(url: str, symbol: str = "AAPL", namespace: str = NS) -> str:
    from rangememo._stores.parquet.layout import key_hash

    return f"{nsname(url, namespace)}/{key_hash((symbol,))}"


def assert_served_from_cache(url: str, symbol: str = "AAPL", span: Any = (START, END)) -> None:
    calls: list[Any] = []
    got = bars_fn(url, calls)(symbol, *span)
    assert_frame_equal(got, make_bars(symbol, *span))
    assert calls == [], "a cached range was fetched again"


def assert_kept(url: str, made: dict[str, bytes]) -> None:
    lost = {n: get(url, n) for n, data in made.items() if get(url, n) != data}
    assert lost == {}, f"user objects deleted or changed: {lost}"


def user_objects(url: str) -> dict[str, bytes]:
    """What a user keeps under a prefix: photos, a notes folder shaped like a namespace
    (a dash and 12 hex digits) with a hash-named folder, a folder with a ``log/``, a
    README at the top, an editor's temp files in a folder of theirs."""
    made = {
        "photos/2020/a.jpg": b"jpeg",
        "photos/2021/log/x.txt": b"x",
        f"notes-0123456789ab/{HASHY}/todo.txt": b"todo",
        f"backup-aaaaaaaaaaaa/{'b' * 32}/log/keep.md": b"keep",
        "readme.txt": b"read me",
        "docs/.draft.tmp": b"draft",
        "docs/.tmp-notes": b"notes",
        "docs/.cache.tmp/thumb.png": b"png",
        "k8s/namespace.json": b'{"apiVersion": "v1"}',
    }
    for name, data in made.items():
        put(url, name, data)
    return made


# -- a prefix that holds only a user's objects is not a store ------------------------


def test_maintenance_refuses_a_prefix_that_is_not_a_store(s3_bucket_url: str) -> None:
    made = user_objects(s3_bucket_url)
    for command in (["gc", "--grace", "0"], ["compact"], ["clear", "--yes"], ["repair"]):
        result = run(s3_bucket_url, *command)
        assert result.exit_code == 1, (command, result.output)
        assert "not a rangememo store" in result.output, (command, result.output)
    assert_kept(s3_bucket_url, made)
    assert sorted(made) == objects(s3_bucket_url)


# -- gc, compact, repair and clear keep the user's objects under the prefix ----------


def test_every_command_keeps_the_users_objects_under_the_prefix(s3_bucket_url: str) -> None:
    url = s3_bucket_url
    cached_store(url)
    made = user_objects(url)
    ns, kp = nsname(url), key_prefix(url)
    made |= {
        f"{ns}/readme-0123456789ab.txt": b"stray",  # beside the keys of a namespace
        f"{ns}/{HASHY}/todo.txt": b"todo",  # a hash-named folder that is no key
        f"{kp}/extras/seg-mine.parquet": b"mine",  # a folder of the user's in a key
        f"{kp}/extras/.x.tmp": b"mine",
    }
    for name, data in made.items():
        put(url, name, data)
    for command in (["gc", "--grace", "0"], ["compact"], ["repair"], ["verify"], ["ls"]):
        ok(url, *command)
        assert_kept(url, made)
    assert_served_from_cache(url, span=WHOLE)
    checked = ok(url, "verify")
    assert "OK: 1 key verified" in checked.output, checked.output
    cleared = ok(url, "clear", NS)
    assert "cleared 1 key" in cleared.output, cleared.output
    assert not [n for n in objects(url) if n.startswith(f"{kp}/log/")], "the key is gone"
    made.pop(f"{kp}/extras/seg-mine.parquet")  # inside the cleared key's own folder
    made.pop(f"{kp}/extras/.x.tmp")
    assert_kept(url, made)
    cached_store(url)
    ok(url, "clear", "--yes")
    assert_kept(url, made)


def test_cli_clear_by_pattern_never_treats_a_users_folder_as_a_namespace(
    s3_bucket_url: str,
) -> None:
    url = s3_bucket_url
    cached_store(url)
    made = user_objects(url)
    made[put(url, f"{nsname(url)}/{HASHY}/todo.txt", b"todo")] = b"todo"  # no key of ours
    for pattern in ("photos", "notes", "notes-0123456789ab", "backup"):
        result = run(url, "clear", pattern)
        assert result.exit_code == 1 and "nothing matches" in result.output, result.output
    result = run(url, "clear", NS, HASHY[:8])
    assert result.exit_code == 1 and "nothing matches" in result.output, result.output
    assert_kept(url, made)
    assert_served_from_cache(url)


def test_gc_keeps_a_key_holding_an_object_it_did_not_write(s3_bucket_url: str) -> None:
    url = s3_bucket_url
    cached_store(url)
    kp = key_prefix(url)
    raw_store = raw(url)
    for name in [n for n in objects(url) if n.startswith(f"{kp}/log/")]:
        obstore.delete(raw_store, name)
    put(url, f"{kp}/notes.txt")
    ok(url, "gc", "--grace", "0")
    assert get(url, f"{kp}/notes.txt") == b"mine"
    assert [n for n in objects(url) if n.startswith(f"{kp}/seg-")], "its segments stay too"
    obstore.delete(raw_store, f"{kp}/notes.txt")
    ok(url, "gc", "--grace", "0")
    assert not [n for n in objects(url) if n.startswith(f"{kp}/")], "a first write is gone"


def test_objects_named_like_a_folder_that_has_children(s3_bucket_url: str) -> None:
    """On S3 ``ns/<key>`` can be an object while ``ns/<key>/log/...`` exist too."""
    url = s3_bucket_url
    cached_store(url)
    ns, kp = nsname(url), key_prefix(url)
    made = {
        ns: b"an object named as the namespace folder",
        kp: b"an object named as the key folder",
        f"{ns}/{HASHY}": b"an object named like a key, no folder",
        "photos": b"an object named as a user folder",
        "photos/a.jpg": b"jpeg",
    }
    for name, data in made.items():
        put(url, name, data)
    listed = ok(url, "ls")
    assert "1 namespace, 1 key" in listed.output, listed.output
    for command in (["verify"], ["gc", "--grace", "0"], ["compact"], ["repair"]):
        ok(url, *command)
        assert_kept(url, made)
    assert_served_from_cache(url, span=WHOLE)
    ok(url, "clear", NS, "('AAPL',)")
    assert_kept(url, made)
    cached_store(url)
    ok(url, "clear", "--yes")
    assert_kept(url, made)


def test_gc_deletes_temp_objects_only_in_namespace_folders(s3_bucket_url: str) -> None:
    url = s3_bucket_url
    cached_store(url)
    ns, kp = nsname(url), key_prefix(url)
    crashed = [f"{ns}/.namespace.json.tmp", f"{kp}/.seg-x.parquet.tmp", f"{kp}/log/.r.tmp"]
    for name in crashed:
        put(url, name, b"half")
    kept = {
        "ns/.x.tmp": b"mine",
        "docs/.draft.tmp": b"mine",
        ".x.tmp": b"mine",
        f"{ns}/.cache.tmp/thumb.png": b"png",  # a folder named like a temp file
    }
    for name, data in kept.items():
        put(url, name, data)
    result = ok(url, "gc", "--grace", "0")
    assert [get(url, n) for n in crashed] == [None] * 3, result.output
    assert_kept(url, kept)
    assert_served_from_cache(url)


# -- nothing outside the prefix ------------------------------------------------------


def test_nothing_outside_the_prefix_is_touched(s3_bucket_url: str) -> None:
    """``s3://b/cache`` must not reach ``s3://b/cache2``, ``s3://b/cache-old`` (a copy
    of a store, shaped exactly like one) or ``s3://b/other``."""
    url = s3_bucket_url
    bucket = url.rsplit("/", 1)[0]
    cached_store(url)
    old = url + "-old"
    cached_store(old)  # a real store next door
    old_objects = {n: get(old, n) for n in objects(old)}
    beside = {
        f"{url.rsplit('/', 1)[1]}2/{nsname(url)}/{HASHY}/log/0000000001.json": b"{}",
        f"{url.rsplit('/', 1)[1]}2/{nsname(url)}/.x.tmp": b"mine",
        f"{url.rsplit('/', 1)[1]}2/readme.txt": b"mine",
        f"{url.rsplit('/', 1)[1]}.txt": b"mine",
        f"otherprefix-{uuid.uuid4().hex[:6]}/{nsname(url)}/namespace.json": b"{}",
    }
    for name, data in beside.items():
        put(bucket, name, data)
    for command in (["gc", "--grace", "0"], ["compact"], ["repair"], ["verify"]):
        ok(url, *command)
    assert_served_from_cache(url, span=WHOLE)
    ok(url, "clear", NS)
    ok(url, "clear", "--yes")
    ok(url, "gc", "--grace", "0")
    assert_kept(bucket, beside)
    assert_kept(old, old_objects)  # type: ignore[arg-type]
    assert_served_from_cache(old, span=WHOLE)
    listed = ok(old, "ls")
    assert "1 namespace, 1 key" in listed.output, listed.output


# -- a cleared store is still a store ------------------------------------------------


def test_a_cleared_store_is_still_a_store(s3_bucket_url: str) -> None:
    url = s3_bucket_url
    cached_store(url)
    ok(url, "clear", "--yes")
    # Only this live process's reader lease is left (it goes when the process exits).
    assert [n for n in objects(url) if not n.startswith(".leases/")] == []
    for command in (["verify"], ["gc", "--grace", "0"], ["compact"], ["repair"], ["ls"]):
        ok(url, *command)
    calls: list[Any] = []
    assert_frame_equal(bars_fn(url, calls)("AAPL", START, END), make_bars("AAPL", START, END))
    assert len(calls) == 1


def test_a_cleared_store_beside_user_objects_is_still_a_store(s3_bucket_url: str) -> None:
    """Locally ``.locks/`` outlives ``clear``; on S3 only a live process's reader lease
    is left, and ``gc`` and ``verify`` right after ``clear --yes`` are still no typo."""
    url = s3_bucket_url
    cached_store(url)
    made = user_objects(url)
    ok(url, "clear", "--yes")
    assert_kept(url, made)
    for command in (["verify"], ["gc", "--grace", "0"], ["compact"], ["repair"]):
        result = run(url, *command)
        assert result.exit_code == 0, (command, result.output)
    assert_kept(url, made)
    # Once no process of the store is left, the prefix holds only the user's objects:
    # it is refused as no store (a typo in --dir), and nothing is touched.
    for name in [n for n in objects(url) if n.startswith(".leases/")]:
        obstore.delete(raw(url), name)
    for command in (["gc", "--grace", "0"], ["clear", "--yes"]):
        result = run(url, *command)
        assert result.exit_code == 1 and "not a rangememo store" in result.output, result.output
    assert sorted(made) == objects(url)


# -- clearing one key by the CLI refetches it, and only it ---------------------------


def test_a_key_cleared_by_the_cli_is_refetched_and_only_it(s3_bucket_url: str) -> None:
    url = s3_bucket_url
    bars = bars_fn(url)
    for symbol in ("AAPL", "MSFT"):
        bars(symbol, START, END)
    bars_fn(url, namespace="app.other")("AAPL", START, END)
    result = ok(url, "clear", NS, "('AAPL',)")
    assert "cleared 1 key" in result.output, result.output
    calls: list[Any] = []
    fresh = bars_fn(url, calls)
    for symbol in ("AAPL", "MSFT"):
        assert_frame_equal(fresh(symbol, START, END), make_bars(symbol, START, END))
    assert calls == [("AAPL", START, END)]
    other: list[Any] = []
    got = bars_fn(url, other, namespace="app.other")("AAPL", START, END)
    assert_frame_equal(got, make_bars("AAPL", START, END))
    assert other == []


# -- cached data survives maintenance ------------------------------------------------


def test_cached_data_survives_every_maintenance_command(
    s3_bucket_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = s3_bucket_url
    calls: list[Any] = []
    bars = bars_fn(url, calls)
    with monkeypatch.context() as m:  # several segments per key: compact has work
        m.setattr(rangememo._stores.parquet.keywrite, "plan_tail", lambda segs, *_: len(segs))
        bars("AAPL", START, END)
        bars("AAPL", *LATER)
        bars("AAPL", END, LATER[0])
        bars("MSFT", START, END)
    user_objects(url)
    calls.clear()
    compacted = ok(url, "compact")
    assert "compacted 1 key" in compacted.output, compacted.output
    for command in (["gc", "--grace", "0"], ["verify"], ["repair"], ["ls"]):
        ok(url, *command)
        assert_frame_equal(bars("AAPL", *WHOLE), make_bars("AAPL", *WHOLE))
        assert calls == [], command
    again: list[Any] = []
    fresh = bars_fn(url, again)
    assert_frame_equal(fresh("AAPL", *WHOLE), make_bars("AAPL", *WHOLE))
    assert_frame_equal(fresh("MSFT", START, END), make_bars("MSFT", START, END))
    assert again == []


# -- what ls, show and verify --json say -----------------------------------------------


def test_ls_show_and_verify_json_beside_user_objects(s3_bucket_url: str) -> None:
    url = s3_bucket_url
    bars = bars_fn(url)
    bars("AAPL", START, END)
    bars("AAPL", *LATER)
    bars("MSFT", START, END)
    user_objects(url)
    kp = key_prefix(url)
    put(url, f"{kp}/notes.txt")
    listed = ok(url, "ls")
    assert "1 namespace, 2 keys" in listed.output, listed.output
    for word in ("photos", "notes-0123456789ab", "backup", "k8s", "docs"):
        assert word not in listed.output, listed.output
    as_json = json.loads(ok(url, "ls", "--json").output)
    assert sorted(k["key"] for k in as_json["keys"]) == ["('AAPL',)", "('MSFT',)"]
    assert all(k["problem"] is None for k in as_json["keys"]), as_json
    shown = json.loads(ok(url, "show", NS, "('AAPL',)", "--json").output)
    assert shown["where"] == f"{url}/{kp}"
    assert len(shown["gaps"]) == 1 and shown["rows"] > 0, shown
    report = json.loads(ok(url, "verify", "--json").output)
    assert report["ok"] is True and report["checked"] == 2, report
    assert report["problems"] == []
    notes = [n["note"] for n in report["notes"]]
    assert notes == [f"{url}/{kp}/notes.txt: not rangememo's file (left alone)"], notes
    missing = run(url, "show", NS, "('ZZZ',)")
    assert missing.exit_code == 1 and "no key" in missing.output, missing.output


# -- a store at the root of a bucket ---------------------------------------------------


@pytest.fixture
def root_bucket(seaweed: Any, s3_bucket_url: str) -> str:
    """A bucket of its own (``s3_bucket_url`` sets the AWS variables)."""
    name = f"root-{uuid.uuid4().hex[:12]}"
    seaweed.create_bucket(name)
    return f"s3://{name}"


def test_a_store_at_a_buckets_root_beside_user_objects(root_bucket: str) -> None:
    url = root_bucket
    made = user_objects(url)
    made |= {"team/cache/data.csv": b"a,b", "2024/report.pdf": b"pdf"}
    for name, data in made.items():
        put(url, name, data)
    nested = f"{url}/team-store"
    cached_store(nested)  # another store under the same bucket
    nested_objects = {n: get(nested, n) for n in objects(nested)}
    cached_store(url)
    listed = ok(url, "ls")
    assert "1 namespace, 1 key" in listed.output, listed.output
    for command in (["gc", "--grace", "0"], ["compact"], ["repair"], ["verify"]):
        ok(url, *command)
        assert_kept(url, made)
    assert_served_from_cache(url, span=WHOLE)
    ok(url, "clear", NS)
    assert_kept(url, made)
    cached_store(url)
    ok(url, "clear", "--yes")
    assert_kept(url, made)
    assert_kept(nested, nested_objects)  # type: ignore[arg-type]
    assert_served_from_cache(nested, span=WHOLE)
    assert not [n for n in objects(url) if n.startswith(nsname(url))]
