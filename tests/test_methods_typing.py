"""Methods: the wrapper binds like a function, and type checkers see the wrapped signature."""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from rangememo import AsyncRangeCached, MemoryStore, ParquetStore, RangeCached, range_cached
from rangememo.testing import FakeProvider

D = dt.datetime
ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def day(d: int) -> dt.datetime:
    return D(2024, 10, d)


@pytest.fixture(params=["memory", "parquet"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "memory":
        return MemoryStore()
    return ParquetStore(tmp_path / "store", durable=False)


def client_class(store: Any) -> type[Any]:
    """A data client with one async and one blocking cached method."""

    class Client:
        def __init__(self, provider: FakeProvider, venue: str = "X") -> None:
            self.provider, self.venue = provider, venue

        @range_cached(key="symbol", step="1D", store=store)
        async def bars(self, symbol: str, start: D, end: D) -> pd.DataFrame:
            return await self.provider.get_bars(symbol, start, end)

        @range_cached(key="symbol", step="1D", store=store)
        def bars_sync(self, symbol: str, start: D, end: D) -> pd.DataFrame:
            return self.provider.get_bars_sync(symbol, start, end)

    return Client


def uncached(symbol: str, start: D, end: D) -> pd.DataFrame:
    return FakeProvider()._bars(symbol, start, end, "D")


# -- prefetch / coverage / invalidate through an instance -------------------------


async def test_bound_async_prefetch_binds_after_self(store):
    """client.bars.prefetch("AAPL", s, e) fetches once; the call then hits (was a TypeError)."""
    provider = FakeProvider()
    client = client_class(store)(provider)
    await client.bars.prefetch("AAPL", day(1), day(10))
    assert provider.ranges() == [(pd.Timestamp(day(1)), pd.Timestamp(day(10)))]
    got = await client.bars("AAPL", day(2), day(9))
    assert provider.call_count == 1
    assert_frame_equal(got, uncached("AAPL", day(2), day(9)), check_freq=False)


def test_bound_sync_prefetch_binds_after_self(store):
    """The blocking method's prefetch passes the instance along as well."""
    provider = FakeProvider()
    client = client_class(store)(provider)
    client.bars_sync.prefetch("MSFT", day(1), day(10), progress=False)
    got = client.bars_sync("MSFT", day(1), day(10))
    assert provider.call_count == 1
    assert_frame_equal(got, uncached("MSFT", day(1), day(10)), check_freq=False)


async def test_bound_coverage_and_invalidate(store):
    """coverage and invalidate through an instance name the key without self."""
    provider = FakeProvider()
    cls = client_class(store)
    client = cls(provider)
    await client.bars("AAPL", day(1), day(10))
    covered = await client.bars.coverage("AAPL")
    assert covered == await cls.bars.coverage("AAPL")
    assert covered == [(pd.Timestamp(day(1)), pd.Timestamp(day(10)))]
    await client.bars.invalidate("AAPL", start=day(6))
    assert await client.bars.coverage("AAPL") == [(pd.Timestamp(day(1)), pd.Timestamp(day(5)))]
    await client.bars.invalidate("AAPL")
    assert await client.bars.coverage("AAPL") == []
    await client.bars("AAPL", day(1), day(10))
    assert provider.call_count == 2


def test_bound_sync_coverage_and_invalidate(store):
    """The blocking method: the same, without await."""
    provider = FakeProvider()
    client = client_class(store)(provider)
    client.bars_sync("AAPL", day(1), day(10))
    assert client.bars_sync.coverage("AAPL") == [(pd.Timestamp(day(1)), pd.Timestamp(day(10)))]
    detail = client.bars_sync.coverage("AAPL", detail=True)
    assert [(c.start, c.end) for c in detail] == [(pd.Timestamp(day(1)), pd.Timestamp(day(10)))]
    client.bars_sync.invalidate("AAPL", end=day(3))
    assert client.bars_sync.coverage("AAPL") == [(pd.Timestamp(day(4)), pd.Timestamp(day(10)))]
    client.bars_sync("AAPL", day(1), day(10))
    assert provider.ranges()[-1] == (pd.Timestamp(day(1)), pd.Timestamp(day(3)))


async def test_key_callable_reading_self_works_in_coverage(store):
    """A key built from an attribute of self: calls and introspection agree on it."""
    provider = FakeProvider()

    class Venue:
        def __init__(self, venue: str) -> None:
            self.venue = venue

        @range_cached(
            key=lambda self, symbol, **_: (self.venue, symbol),
            step="1D",
            store=store,
            namespace="venue-bars",
        )
        async def bars(self, symbol: str, start: D, end: D) -> pd.DataFrame:
            return await provider.get_bars(symbol, start, end)

    a, b = Venue("A"), Venue("B")
    await a.bars("AAPL", day(1), day(3))
    assert await a.bars.coverage("AAPL") == [(pd.Timestamp(day(1)), pd.Timestamp(day(3)))]
    assert await b.bars.coverage("AAPL") == []
    await b.bars.prefetch("AAPL", day(1), day(3))
    assert provider.call_count == 2  # another venue, another key
    await a.bars.invalidate("AAPL")
    assert await a.bars.coverage("AAPL") == []
    assert await b.bars.coverage("AAPL") != []


async def test_other_instances_share_the_method_cache(store):
    """self is never part of the key: a second instance is served from the first's fetch."""
    provider = FakeProvider()
    cls = client_class(store)
    await cls(provider).bars("AAPL", day(1), day(10))
    await cls(provider).bars("AAPL", day(3), day(4))
    await cls.bars(cls(provider), "AAPL", day(3), day(5))  # through the class, self first
    assert provider.call_count == 1
    assert cls(provider).bars.cache_info() == cls.bars.cache_info()
    assert cls.bars.cache_info().hits == 2


def test_first_parameter_not_named_self_is_an_ordinary_argument():
    """A function whose first parameter is not self/cls binds it like any other."""
    provider = FakeProvider()

    class Odd:
        @range_cached(key=("this", "symbol"), step="1D", store=MemoryStore())
        def bars(this, symbol: str, start: D, end: D) -> pd.DataFrame:
            return provider.get_bars_sync(symbol, start, end)

        def __hash__(self) -> int:
            return 7

    odd = Odd()
    odd.bars.prefetch("AAPL", day(1), day(2))
    assert odd.bars.coverage("AAPL") == [(pd.Timestamp(day(1)), pd.Timestamp(day(2)))]
    assert Odd.bars.coverage(odd, "AAPL") == odd.bars.coverage("AAPL")


# -- the bound object looks like a bound method -----------------------------------


def test_bound_wrapper_introspects_like_a_bound_method():
    """Signature without self, name, doc, __self__/__func__, iscoroutinefunction."""
    cls = client_class(MemoryStore())
    client = cls(FakeProvider())
    assert isinstance(cls.bars, AsyncRangeCached)
    assert isinstance(cls.bars_sync, RangeCached)
    assert list(inspect.signature(client.bars).parameters) == ["symbol", "start", "end"]
    assert list(inspect.signature(cls.bars).parameters) == ["self", "symbol", "start", "end"]
    assert client.bars.__name__ == "bars"
    assert client.bars.__self__ is client
    assert client.bars.__func__ is cls.bars
    assert client.bars == client.bars
    assert client.bars != cls(FakeProvider()).bars
    assert len({client.bars, client.bars}) == 1
    assert inspect.iscoroutinefunction(client.bars)
    assert inspect.iscoroutinefunction(cls.bars)
    assert asyncio.iscoroutinefunction(cls.bars)
    assert not inspect.iscoroutinefunction(client.bars_sync)
    assert not inspect.iscoroutinefunction(cls.bars_sync)
    assert client.bars.cache is cls.bars.cache


async def test_sync_method_never_touches_the_event_loop():
    """A blocking method called from inside a running loop works (no asyncio.run inside)."""
    provider = FakeProvider()
    client = client_class(MemoryStore())(provider)
    got = client.bars_sync("AAPL", day(1), day(5))
    client.bars_sync.prefetch("AAPL", day(1), day(8))
    assert_frame_equal(got, uncached("AAPL", day(1), day(5)), check_freq=False)
    assert provider.call_count == 2


def test_cache_clear_through_an_instance(tmp_path):
    """cache_clear on instance.method forgets the method's entries."""
    provider = FakeProvider()
    client = client_class(ParquetStore(tmp_path, durable=False))(provider)
    client.bars_sync("AAPL", day(1), day(5))
    client.bars_sync.cache_clear()
    assert client.bars_sync.coverage("AAPL") == []
    assert client.bars_sync.cache_info().provider_calls == 0


# -- type checkers ------------------------------------------------------------------

SNIPPET = """
from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Coroutine
from typing import Any, assert_type, reveal_type

import pandas as pd

from rangememo import AsyncRangeCached, MemoryStore, RangeCached, range_cached

D = dt.datetime


@range_cached(key="symbol", step="1D", store=MemoryStore())
async def abars(symbol: str, start: D, end: D, timeframe: str = "D") -> pd.DataFrame:
    return pd.DataFrame()


@range_cached(key="symbol", step="1D")
def sbars(symbol: str, start: D, end: D) -> pd.DataFrame:
    return pd.DataFrame()


class Client:
    @range_cached(key="symbol", step="1D")
    async def bars(self, symbol: str, start: D, end: D) -> pd.DataFrame:
        return pd.DataFrame()

    @range_cached(key="symbol", step="1D")
    def bars_sync(self, symbol: str, start: D, end: D, limit: int = 0) -> pd.DataFrame:
        return pd.DataFrame()


async def main(c: Client, s: D, e: D) -> None:
    a: AsyncRangeCached[..., pd.DataFrame] = abars
    b: RangeCached[..., pd.DataFrame] = sbars
    f: Callable[[str, D, D], pd.DataFrame] = sbars
    g: Callable[[str, D, D, str], Coroutine[Any, Any, pd.DataFrame]] = abars
    h: Callable[[str, D, D], pd.DataFrame] = c.bars_sync
    coro: Coroutine[Any, Any, pd.DataFrame] = abars("AAPL", s, e)
    coro.close()
    reveal_type(c.bars)
    assert_type(await abars("AAPL", s, e, timeframe="1h"), pd.DataFrame)
    assert_type(sbars("AAPL", s, e), pd.DataFrame)
    assert_type(await c.bars("AAPL", s, e), pd.DataFrame)
    assert_type(c.bars_sync("AAPL", s, e, limit=3), pd.DataFrame)
    assert_type(await Client.bars(c, "AAPL", s, e), pd.DataFrame)
    assert_type(Client.bars_sync(c, "AAPL", s, e), pd.DataFrame)
    await abars.prefetch("AAPL", s, e)
    await abars.prefetch("AAPL", s, e, progress=True)
    await c.bars.prefetch("AAPL", start=s, end=e)
    c.bars_sync.prefetch("AAPL", s, e)
    c.bars_sync.prefetch("AAPL", s, e, progress=False)
    sbars.prefetch("AAPL", s, e)
    assert_type(await c.bars.coverage("AAPL"), list[Any])
    assert_type(c.bars_sync.coverage("AAPL", detail=True), list[Any])
    await c.bars.invalidate("AAPL", start=s)
    c.bars_sync.invalidate("AAPL")
    sbars.cache_clear()
    c.bars.cache_clear()
    assert_type(c.bars.cache_info().hits, int)
"""

# Each line must be an error: the checker sees the wrapped signature.
BAD = {
    "await abars(1, s, e)": "arg-type",
    'sbars("AAPL", s)': "call-arg",
    'await c.bars("AAPL", s, e, 4)': "call-arg",
    "c.bars_sync(s, s, e)": "arg-type",
    'c.bars_sync.prefetch("AAPL", s, e, limit="x")': "call-overload",
    'sbars.prefetch("AAPL", e)': "call-overload",
    'x: int = sbars("AAPL", s, e)': "assignment",
}


def _mypy(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "snippet.py"
    path.write_text(source)
    mypy = VENV_BIN / "mypy"
    return subprocess.run(
        [
            str(mypy),
            "--strict",
            "--no-incremental",
            "--cache-dir",
            str(tmp_path / ".mypy"),
            str(path),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )


def test_mypy_strict_sees_the_wrapped_signature(tmp_path):
    """mypy --strict: functions, methods and their introspection type-check, with no ignores."""
    result = _mypy(tmp_path, SNIPPET)
    assert result.returncode == 0, result.stdout + result.stderr
    # instance.method: bound, self dropped, the rest of the signature kept.
    assert (
        'Revealed type is "rangememo._bound.BoundAsyncRangeCached[[symbol: '
        "str, start: datetime.datetime, end: datetime.datetime], "
        'pandas.core.frame.DataFrame]"'
    ) in result.stdout, result.stdout


def test_mypy_strict_rejects_wrong_calls(tmp_path):
    """Each wrong call is an error of the expected code: the check can fail."""
    body = "".join(f"    {line}\n" for line in BAD)
    result = _mypy(tmp_path, SNIPPET + "\n\nasync def bad(c: Client, s: D, e: D) -> None:\n" + body)
    lines = [ln for ln in result.stdout.splitlines() if ": error:" in ln]
    assert len(lines) == len(BAD), result.stdout
    start = SNIPPET.count("\n") + 4  # first line of bad()'s body
    for n, code in enumerate(BAD.values()):
        assert any(f"snippet.py:{start + n}:" in ln and f"[{code}]" in ln for ln in lines), (
            start + n,
            code,
            result.stdout,
        )


@pytest.mark.skipif(shutil.which("pyright", path=str(VENV_BIN)) is None, reason="no pyright")
def test_pyright_sees_the_wrapped_signature(tmp_path):
    """pyright (strict) agrees: the snippet is clean, each wrong call an error."""
    good = tmp_path / "good.py"
    good.write_text(SNIPPET)
    bad = tmp_path / "bad.py"
    body = "".join(f"    {line}\n" for line in BAD)
    bad.write_text(SNIPPET + "\n\nasync def bad(c: Client, s: D, e: D) -> None:\n" + body)
    config = tmp_path / "pyrightconfig.json"
    settings = {
        "typeCheckingMode": "strict",
        "pythonVersion": "3.11",
        "venvPath": str(ROOT),
        "venv": ".venv",
        "extraPaths": [str(ROOT)],  # the editable install's import hook is invisible to it
        "reportUnusedVariable": False,
    }
    config.write_text(json.dumps(settings))
    pyright = str(VENV_BIN / "pyright")
    found = {}
    for path in (good, bad):
        result = subprocess.run(
            [pyright, "-p", str(config), str(path)],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            check=False,
        )
        found[path.name] = {
            int(m.group(1)) for m in re.finditer(rf"{path.name}:(\d+):\d+ - error", result.stdout)
        }
        assert "error" not in result.stderr, result.stderr
    assert found["good.py"] == set(), found
    start = SNIPPET.count("\n") + 4
    assert found["bad.py"] == set(range(start, start + len(BAD))), found
