"""Pickling for workers: by reference where importable, by value (cloudpickle) from __main__."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import io
import multiprocessing
import os
import pickle
import subprocess
import sys
import textwrap
import threading
import uuid
from pathlib import Path
from typing import Any

import cloudpickle
import pandas as pd
import pickle_workers as pw
import pytest
from pandas.testing import assert_frame_equal

from rangememo import MemoryStore, ParquetStore, range_cached
from rangememo.testing import make_bars

SPAWN = multiprocessing.get_context("spawn")


def symbol() -> str:
    return f"S{uuid.uuid4().hex[:8]}"  # the default store is shared by the whole run


def starts(calls: Path, sym: str) -> list[tuple[str, str]]:
    return [(e["start"], e["end"]) for e in pw.recorded(calls) if e["symbol"] == sym]


# -- by reference -------------------------------------------------------------------


def test_module_level_function_pickles_by_reference():
    """pickle and cloudpickle both hand back the very same wrapper, as a short reference."""
    for dumps, loads in ((pickle.dumps, pickle.loads), (cloudpickle.dumps, cloudpickle.loads)):
        data = dumps(pw.bars)
        assert loads(data) is pw.bars
        assert len(data) < 100 and b"pickle_workers" in data


def test_module_registered_by_value_ships_by_value():
    """cloudpickle.register_pickle_by_value(module): the wrapper follows, carrying its code."""
    cloudpickle.register_pickle_by_value(pw)
    try:
        data = cloudpickle.dumps(pw.bars)
    finally:
        cloudpickle.unregister_pickle_by_value(pw)
    assert len(data) > 1000 and b"calls" in data  # the wrapped function's code
    assert cloudpickle.loads(data) is pw.bars  # and in this process, the same wrapper
    assert pickle.dumps(pw.bars) == pickle.dumps(pw.bars) and len(pickle.dumps(pw.bars)) < 100


def test_method_and_bound_method_pickle_by_reference(tmp_path):
    """The class attribute pickles as Client.bars; a bound method as getattr(instance, name)."""
    assert pickle.loads(pickle.dumps(pw.Client.bars)) is pw.Client.bars
    client = pw.Client(str(tmp_path))
    bound = pickle.loads(pickle.dumps(client.bars))
    assert bound.__func__ is pw.Client.bars
    assert bound.__self__.calls == str(tmp_path)


def test_process_pool_workers_reopen_the_store(tmp_path):
    """A spawned worker finds the function by reference and sees the parent's rows."""
    sym, calls = symbol(), str(tmp_path)
    pw.bars.prefetch(sym, pw.day(0), pw.day(9), calls=calls)
    client = pw.Client(calls)
    with cf.ProcessPoolExecutor(2, mp_context=SPAWN) as pool:
        hit = pool.submit(pw.bars, sym, pw.day(0), pw.day(9), calls).result()
        assert starts(tmp_path, sym) == [(str(pw.day(0)), str(pw.day(9)))]
        wider = pool.submit(pw.bars, sym, pw.day(5), pw.day(14), calls).result()
        via_method = pool.submit(client.bars, sym, pw.day(0), pw.day(3)).result()
        again = pool.submit(client.bars, sym, pw.day(2), pw.day(3)).result()
    assert starts(tmp_path, sym) == [
        (str(pw.day(0)), str(pw.day(3))),  # the method: its own namespace
        (str(pw.day(0)), str(pw.day(9))),  # the parent's prefetch
        (str(pw.day(10)), str(pw.day(14))),  # only the gap
    ]
    assert_frame_equal(hit, make_bars(sym, pw.day(0), pw.day(9)), check_freq=False)
    assert_frame_equal(wider, make_bars(sym, pw.day(5), pw.day(14)), check_freq=False)
    assert_frame_equal(via_method, make_bars(sym, pw.day(0), pw.day(3)), check_freq=False)
    assert_frame_equal(again, make_bars(sym, pw.day(2), pw.day(3)), check_freq=False)


def test_multiprocessing_pool_maps_a_decorated_function(tmp_path):
    """multiprocessing.Pool.starmap with the wrapper itself."""
    sym, calls = symbol(), str(tmp_path)
    jobs = [(sym, pw.day(0), pw.day(4), calls), (sym, pw.day(0), pw.day(4), calls)]
    with SPAWN.Pool(1) as pool:  # one worker: the second job is a hit there
        frames = pool.starmap(pw.bars, jobs)
    for frame in frames:
        assert_frame_equal(frame, make_bars(sym, pw.day(0), pw.day(4)), check_freq=False)
    assert len(starts(tmp_path, sym)) == 1


# -- by value ---------------------------------------------------------------------

_FORBIDDEN = (
    type(threading.Lock()),
    type(threading.RLock()),
    threading.Condition,
    asyncio.AbstractEventLoop,
    asyncio.Semaphore,
    cf.Executor,
    io.IOBase,
)


class _Recorder(cloudpickle.Pickler):  # type: ignore[misc]
    """A cloudpickle pickler that lists the type of every object it saves."""

    def __init__(self, file: Any) -> None:
        super().__init__(file)
        self.seen: set[type] = set()

    def reducer_override(self, obj: Any) -> Any:
        self.seen.add(type(obj))
        return super().reducer_override(obj)


@pytest.fixture(params=["memory", "parquet", "default"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    return {
        "memory": lambda: MemoryStore(maxbytes=10**7),
        "parquet": lambda: ParquetStore(tmp_path / "store", durable=False),
        "default": lambda: None,
    }[request.param]()


async def test_by_value_state_holds_no_lock_loop_pool_or_file(any_store):
    """A local function (not importable) pickles by value, after calls of both kinds."""
    day = pw.day

    @range_cached(key="symbol", step="1D", store=any_store, max_concurrency=4)
    async def abars(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        return make_bars(symbol, start, end)

    @range_cached(key="symbol", step="1D", store=any_store, max_concurrency=4)
    def sbars(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        return make_bars(symbol, start, end)

    sym = symbol()
    await abars(sym, day(0), day(3))
    await abars(sym, day(6), day(9))
    await abars(sym, day(0), day(20))  # several gaps at once: a semaphore, tasks
    sbars(sym, day(0), day(3))
    sbars(sym, day(6), day(9))
    sbars(sym, day(0), day(20))  # several gaps at once: a thread pool
    for fn in (abars, sbars):
        buffer = io.BytesIO()
        recorder = _Recorder(buffer)
        recorder.dump(fn)
        bad = {t for t in recorder.seen if issubclass(t, _FORBIDDEN)}
        assert not bad, bad
        assert cloudpickle.loads(buffer.getvalue()) is fn  # same process: the same wrapper


def test_plain_pickle_of_a_local_function_fails_clearly():
    """As for any local function: plain pickle cannot ship code."""

    @range_cached(key="symbol", step="1D", store=MemoryStore())
    def local(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        return make_bars(symbol, start, end)

    with pytest.raises((pickle.PicklingError, AttributeError), match="local"):
        pickle.dumps(local)


MAIN = """
import asyncio, datetime as dt, json, multiprocessing, os, pickle, sys, uuid
import concurrent.futures as cf
from pathlib import Path

import cloudpickle
import pandas as pd

from rangememo import MemoryStore, ParquetStore, range_cached
from rangememo.testing import make_bars

kind, root, calls, out = sys.argv[1:5]
STORE = {
    "parquet": lambda: ParquetStore(root, durable=False),
    "memory": lambda: MemoryStore(maxbytes=10**7),
    "default": lambda: None,
}[kind]()
DAY0 = dt.datetime(2024, 1, 1)


def record(symbol, start, end):
    entry = {"pid": os.getpid(), "symbol": symbol, "start": str(start), "end": str(end)}
    (Path(calls) / f"{uuid.uuid4().hex}.json").write_text(json.dumps(entry))


@range_cached(key="symbol", step="1D", store=STORE)
def bars(symbol: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
    record(symbol, start, end)
    return make_bars(symbol, start, end)


@range_cached(key="symbol", step="1D", store=STORE)
async def abars(symbol: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
    record(symbol, start, end)
    return make_bars(symbol, start, end)


if __name__ == "__main__":
    bars("AAPL", DAY0, DAY0 + dt.timedelta(days=9))
    asyncio.run(abars("MSFT", DAY0, DAY0 + dt.timedelta(days=9)))
    # Plain pickle: a reference to __main__.bars (a spawned worker re-runs this
    # file as __mp_main__ and finds it there).
    plain = pickle.dumps(bars)
    assert b"__main__" in plain and len(plain) < 100, plain
    if kind == "parquet":
        with cf.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            got = pool.submit(bars, "IBM", DAY0, DAY0 + dt.timedelta(days=4)).result()
        pd.testing.assert_frame_equal(got, make_bars("IBM", DAY0, DAY0 + dt.timedelta(days=4)))
    # Dask's rule: a pickle naming __main__ is made again with cloudpickle.
    shipped = (bars, abars, bars.cache.namespace, abars.cache.namespace)
    Path(out).write_bytes(cloudpickle.dumps(shipped))
"""

WORKER = """
import asyncio, datetime as dt, pickle, sys
from pathlib import Path

import cloudpickle

shipped, result = sys.argv[1:3]
bars, abars, namespace, anamespace = cloudpickle.loads(Path(shipped).read_bytes())
again = cloudpickle.loads(Path(shipped).read_bytes())
DAY0 = dt.datetime(2024, 1, 1)
answer = {
    "same": again[0] is bars and again[1] is abars,
    "namespaces": (bars.cache.namespace == namespace, abars.cache.namespace == anamespace),
    "store": repr(bars.cache.store),
    "bound": getattr(getattr(bars.cache.store, "_map", None), "maxsize", None),
    "bars": bars("AAPL", DAY0, DAY0 + dt.timedelta(days=14)),
    "abars": asyncio.run(abars("MSFT", DAY0, DAY0 + dt.timedelta(days=14))),
    "main": "script" not in sys.modules,  # the code came in the pickle
}
Path(result).write_bytes(pickle.dumps(answer))
"""


def _run(script: Path, *args: str, env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        cwd=script.parent,
        env=env,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("kind", ["parquet", "memory", "default"])
def test_main_function_ships_by_value_to_another_process(tmp_path, kind):
    """cloudpickle a __main__ function; a second process runs it against the same store."""
    work = tmp_path / "work"
    calls = tmp_path / "calls"
    work.mkdir()
    calls.mkdir()
    env = {**os.environ, "RANGEMEMO_CACHE_DIR": str(tmp_path / "default")}
    main, worker = work / "script.py", work / "worker.py"
    main.write_text(textwrap.dedent(MAIN))
    worker.write_text(textwrap.dedent(WORKER))
    shipped, result = tmp_path / "shipped.pkl", tmp_path / "result.pkl"
    _run(main, kind, str(tmp_path / "store"), str(calls), str(shipped), env=env)
    # IBM: the spawned worker's own call (under __mp_main__, another namespace).
    first = {
        (e["symbol"], e["start"], e["end"]) for e in pw.recorded(calls) if e["symbol"] != "IBM"
    }
    assert first == {("AAPL", "2024-01-01 00:00:00", "2024-01-10 00:00:00")} | {
        ("MSFT", "2024-01-01 00:00:00", "2024-01-10 00:00:00")
    }
    _run(worker, str(shipped), str(result), env=env)
    answer = pickle.loads(result.read_bytes())
    assert answer["same"] and answer["namespaces"] == (True, True) and answer["main"]
    for name, sym in (("bars", "AAPL"), ("abars", "MSFT")):
        want = make_bars(sym, pw.day(0), pw.day(14))
        assert_frame_equal(answer[name], want, check_freq=False)
    later = [(e["symbol"], e["start"], e["end"]) for e in pw.recorded(calls)]
    later = sorted({c for c in later if c[0] != "IBM"} - first)
    if kind == "memory":  # rows in memory stay behind: the worker's store starts empty
        assert answer["store"].startswith("MemoryStore(maxsize=None, maxbytes=10000000, ")
        assert answer["bound"] == 10**7
        gap = ("2024-01-01 00:00:00", "2024-01-15 00:00:00")
    else:  # the worker reopened the same directory and saw the first process' rows
        where = tmp_path / ("store" if kind == "parquet" else "default")
        assert str(where) in answer["store"]
        gap = ("2024-01-11 00:00:00", "2024-01-15 00:00:00")
    assert later == [("AAPL", *gap), ("MSFT", *gap)]
