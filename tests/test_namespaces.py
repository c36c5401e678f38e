"""Distinct functions never share entries; changed code is never served silently."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import sys
import types
import warnings
from typing import Any

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from rangememo import CacheWarning, InvalidOption, MemoryStore, ParquetStore, range_cached
from rangememo.testing import make_bars

D = dt.datetime
A, B = D(2024, 10, 1), D(2024, 10, 10)


class Source:
    """A provider client: its answers depend on state rangememo cannot see."""

    def __init__(self, offset: float) -> None:
        self.offset, self.calls = offset, 0

    def bars(self, symbol: str, start: D, end: D) -> pd.DataFrame:
        self.calls += 1
        frame = make_bars(symbol, start, end)
        frame["close"] += self.offset
        return frame


def make_getter(source: Source, **options: Any) -> Any:
    """One factory, many closures: the issue's case (a)."""

    @range_cached(key="symbol", step="1D", **options)
    def get_bars(symbol: str, start: D, end: D) -> pd.DataFrame:
        return source.bars(symbol, start, end)

    return get_bars


@pytest.fixture(params=["memory", "parquet"])
def store(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    return MemoryStore() if request.param == "memory" else ParquetStore(tmp_path)


def reopen(store: Any) -> Any:
    """The same store as a new process would see it (a MemoryStore is per process)."""
    return ParquetStore(store.path) if isinstance(store, ParquetStore) else store


# -- closures ------------------------------------------------------------------------


def test_closures_over_different_clients_do_not_share_in_memory():
    """Two closures of one factory over two clients: each gets its own client's rows."""
    store = MemoryStore()
    one, two = Source(0.0), Source(1000.0)
    get_one, get_two = make_getter(one, store=store), make_getter(two, store=store)
    assert_frame_equal(get_one("AAPL", A, B), one.bars("AAPL", A, B))
    assert_frame_equal(get_two("AAPL", A, B), two.bars("AAPL", A, B))
    assert two.calls == 2  # the cached call reached its own client


def test_closures_over_one_client_share_in_memory():
    """Two closures over the same client are the same function: the second is a hit."""
    store, source = MemoryStore(), Source(0.0)
    make_getter(source, store=store)("AAPL", A, B)
    assert_frame_equal(make_getter(source, store=store)("AAPL", A, B), source.bars("AAPL", A, B))
    assert source.calls == 2  # one cached call, one uncached


def test_closure_over_a_client_in_a_persistent_store_asks_for_a_namespace(tmp_path):
    """A persistent store cannot tell two clients apart: an error at decoration says what to do."""
    with pytest.raises(InvalidOption, match=r"get_bars.*source=.*namespace="):
        make_getter(Source(0.0), store=ParquetStore(tmp_path))
    with pytest.raises(InvalidOption, match="namespace="):
        make_getter(Source(0.0))  # the default store is persistent too


def test_closure_with_a_namespace_in_a_persistent_store(tmp_path):
    """With namespace=, closures over clients work and persist."""
    one, two = Source(0.0), Source(1000.0)
    make_getter(one, store=ParquetStore(tmp_path), namespace="one")("AAPL", A, B)
    got = make_getter(two, store=ParquetStore(tmp_path), namespace="two")("AAPL", A, B)
    assert_frame_equal(got, two.bars("AAPL", A, B))
    again = make_getter(Source(5.0), store=ParquetStore(tmp_path), namespace="one")
    assert_frame_equal(again("AAPL", A, B), one.bars("AAPL", A, B))  # found by its namespace


def make_plain_getter(offset: float, **options: Any) -> Any:
    """A factory over plain values: those tell closures apart, in any store."""
    calls: list[int] = []

    @range_cached(key="symbol", step="1D", **options)
    def get_bars(symbol: str, start: D, end: D) -> pd.DataFrame:
        frame = make_bars(symbol, start, end)
        frame["close"] += offset
        return frame

    get_bars.calls = calls  # type: ignore[attr-defined]
    return get_bars


def test_closures_over_plain_values_are_distinct_and_stable(store):
    """Different plain cells: distinct entries; the same cell in a new process: found."""
    make_plain_getter(0.0, store=store)("AAPL", A, B)
    second = make_plain_getter(1000.0, store=store)
    want = make_bars("AAPL", A, B)
    want["close"] += 1000.0
    assert_frame_equal(second("AAPL", A, B), want)
    assert second.cache_info().provider_calls == 1
    first_again = make_plain_getter(0.0, store=reopen(store))
    first_again("AAPL", A, B)
    assert first_again.cache_info().provider_calls == 0


def test_a_test_function_decorating_a_closure_with_a_fresh_memory_store_just_works():
    """The common test pattern stays free of ceremony."""
    source = Source(0.0)

    @range_cached(key="symbol", step="1D", store=MemoryStore())
    def get_bars(symbol: str, start: D, end: D) -> pd.DataFrame:
        return source.bars(symbol, start, end)

    assert_frame_equal(get_bars("AAPL", A, B), make_bars("AAPL", A, B))


# -- partials and callable objects -----------------------------------------------------------


def fetch(symbol: str, start: D, end: D, offset: float = 0.0) -> pd.DataFrame:
    frame = make_bars(symbol, start, end)
    frame["close"] += offset
    return frame


def test_partials_over_different_plain_arguments_do_not_share(store):
    """functools.partial works, and its arguments tell partials apart."""
    plain = range_cached(key="symbol", step="1D", store=store)(functools.partial(fetch))
    shifted = range_cached(key="symbol", step="1D", store=store)(
        functools.partial(fetch, offset=1000.0)
    )
    assert_frame_equal(plain("AAPL", A, B), fetch("AAPL", A, B))
    assert_frame_equal(shifted("AAPL", A, B), fetch("AAPL", A, B, offset=1000.0))


def test_partial_over_a_client(tmp_path):
    """A partial over a client object: fine in memory, asks for namespace= on disk."""
    source = Source(7.0)
    part = functools.partial(Source.bars, source)
    got = range_cached(key="symbol", step="1D", store=MemoryStore())(part)("AAPL", A, B)
    assert_frame_equal(got, source.bars("AAPL", A, B))
    with pytest.raises(InvalidOption, match="namespace="):
        range_cached(key="symbol", step="1D", store=ParquetStore(tmp_path))(part)


class Client:
    def __init__(self, offset: float) -> None:
        self.offset = offset

    def __call__(self, symbol: str, start: D, end: D) -> pd.DataFrame:
        return fetch(symbol, start, end, self.offset)


def test_callable_objects(tmp_path):
    """Callable objects: distinct per instance in memory; namespace= on disk."""
    store = MemoryStore()
    one = range_cached(key="symbol", step="1D", store=store)(Client(0.0))
    two = range_cached(key="symbol", step="1D", store=store)(Client(1000.0))
    one("AAPL", A, B)
    assert_frame_equal(two("AAPL", A, B), fetch("AAPL", A, B, 1000.0))
    with pytest.raises(InvalidOption, match="namespace="):
        range_cached(key="symbol", step="1D", store=ParquetStore(tmp_path))(Client(0.0))
    named = range_cached(key="symbol", step="1D", store=ParquetStore(tmp_path), namespace="c")(
        Client(5.0)
    )
    assert_frame_equal(named("AAPL", A, B), fetch("AAPL", A, B, 5.0))


def test_async_callable_object_is_awaitable():
    """A partial of an ``async def`` function is wrapped as one."""

    async def afetch(symbol: str, start: D, end: D, offset: float = 0.0) -> pd.DataFrame:
        return fetch(symbol, start, end, offset)

    cached = range_cached(key="symbol", step="1D", store=MemoryStore())(
        functools.partial(afetch, offset=3.0)
    )
    assert_frame_equal(asyncio.run(cached("AAPL", A, B)), fetch("AAPL", A, B, 3.0))


# -- module-level functions, lambdas, __main__ --------------------------------------------------


def get_bars(symbol: str, start: D, end: D) -> pd.DataFrame:
    return fetch(symbol, start, end)


def test_module_level_functions_keep_their_namespace():
    """``module.qualname@v<version>`` as before, so caches on disk are still found."""
    cached = range_cached(key="symbol", step="1D", store=MemoryStore())(get_bars)
    assert cached.cache.namespace == f"{__name__}.get_bars@v0"
    versioned = range_cached(key="symbol", step="1D", store=MemoryStore(), version=3)(get_bars)
    assert versioned.cache.namespace == f"{__name__}.get_bars@v3"


LAMBDAS = (
    lambda symbol, start, end: fetch(symbol, start, end),
    lambda symbol, start, end: fetch(symbol, start, end, 9.0),
)


def test_two_module_level_lambdas_do_not_share(store):
    """Lambdas share a qualname (``<lambda>``); their code tells them apart."""
    one, two = (range_cached(key="symbol", step="1D", store=store)(f) for f in LAMBDAS)
    one("AAPL", A, B)
    assert_frame_equal(two("AAPL", A, B), fetch("AAPL", A, B, 9.0))


def define(source: str, module: str = "__main__") -> Any:
    """``get_bars`` defined by ``source`` as if in module ``module`` (a script, a cell)."""
    scope: dict[str, Any] = {"__name__": module, "fetch": fetch}
    exec(compile(source, f"<{module}>", "exec"), scope)
    return scope["get_bars"]


V1 = "def get_bars(symbol, start, end):\n    return fetch(symbol, start, end)\n"
V2 = "def get_bars(symbol, start, end):\n    return fetch(symbol, start, end, 1000.0)\n"
V1_RESTYLED = (
    "\n\n# a comment\ndef get_bars(symbol, start, end):\n"
    '    """Now with a docstring."""\n\n    return fetch(symbol, start, end)  # same code\n'
)


@pytest.fixture
def main_module(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType("__main__")
    monkeypatch.setitem(sys.modules, "__main__", module)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    return module


def test_two_scripts_defining_get_bars_do_not_share(store, main_module):
    """Case (b): the script's path is part of a ``__main__`` function's namespace."""
    main_module.__file__ = "/home/me/one/bars.py"
    range_cached(key="symbol", step="1D", store=store)(define(V1))("AAPL", A, B)
    main_module.__file__ = "/home/me/two/bars.py"
    other = range_cached(key="symbol", step="1D", store=reopen(store))(define(V2))
    assert_frame_equal(other("AAPL", A, B), fetch("AAPL", A, B, 1000.0))


def test_a_notebook_function_edited_and_rerun_starts_afresh(store, main_module):
    """No file: the code is the name, so an edited cell never gets the old rows."""
    range_cached(key="symbol", step="1D", store=store)(define(V1))("AAPL", A, B)
    edited = range_cached(key="symbol", step="1D", store=store)(define(V2))
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        assert_frame_equal(edited("AAPL", A, B), fetch("AAPL", A, B, 1000.0))
    restyled = range_cached(key="symbol", step="1D", store=reopen(store))(define(V1_RESTYLED))
    restyled("AAPL", A, B)  # comments, blank lines, a docstring: the same code
    assert restyled.cache_info().provider_calls == 0


def test_a_notebook_path_tells_notebooks_apart(monkeypatch, store, main_module):
    """Jupyter names the notebook: identical cells in two notebooks do not share."""
    monkeypatch.setenv("JPY_SESSION_NAME", "/work/a.ipynb")
    one = range_cached(key="symbol", step="1D", store=store)(define(V1))
    monkeypatch.setenv("JPY_SESSION_NAME", "/work/b.ipynb")
    two = range_cached(key="symbol", step="1D", store=store)(define(V1))
    assert one.cache.namespace != two.cache.namespace


# -- changed code -----------------------------------------------------------------------------


def test_changed_code_warns_naming_version(store):
    """A module function whose code changed: its old rows come with a CacheWarning."""
    range_cached(key="symbol", step="1D", store=store)(define(V1, "app.bars"))("AAPL", A, B)
    changed = range_cached(key="symbol", step="1D", store=reopen(store))(define(V2, "app.bars"))
    with pytest.warns(CacheWarning, match=r"app\.bars\.get_bars.*version=1.*version=\"auto\""):
        changed("AAPL", A, B)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        changed("AAPL", A, B)  # once per function and process


def test_unchanged_or_restyled_code_does_not_warn(store):
    """Comments, blank lines and the docstring are no change."""
    range_cached(key="symbol", step="1D", store=store)(define(V1, "app.bars"))("AAPL", A, B)
    same = range_cached(key="symbol", step="1D", store=reopen(store))(
        define(V1_RESTYLED, "app.bars")
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        same("AAPL", A, B)
    assert same.cache_info().provider_calls == 0


def test_version_auto_starts_afresh_when_the_code_changes(store):
    """version="auto": changed code gets a namespace of its own, and no warning."""
    options = dict(key="symbol", step="1D", version="auto")
    range_cached(store=store, **options)(define(V1, "app.bars"))("AAPL", A, B)
    changed = range_cached(store=reopen(store), **options)(define(V2, "app.bars"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        assert_frame_equal(changed("AAPL", A, B), fetch("AAPL", A, B, 1000.0))
    same = range_cached(store=reopen(store), **options)(define(V1_RESTYLED, "app.bars"))
    same("AAPL", A, B)
    assert same.cache_info().provider_calls == 0


def test_two_functions_sharing_a_namespace_on_purpose_do_not_warn(store):
    """namespace= shared by two differently named functions is a choice, not a change."""
    range_cached(key="symbol", step="1D", store=store, namespace="bars")(get_bars)("AAPL", A, B)
    other = range_cached(key="symbol", step="1D", store=reopen(store), namespace="bars")(fetch)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        other("AAPL", A, B)
    assert other.cache_info().provider_calls == 0


def test_a_change_after_cache_clear_is_still_noticed(tmp_path):
    """cache_clear removes the namespace directory; the code record comes back with the data."""
    first = range_cached(key="symbol", step="1D", store=ParquetStore(tmp_path))(
        define(V1, "app.bars")
    )
    first("AAPL", A, B)
    first.cache_clear()
    first("AAPL", A, B)
    changed = range_cached(key="symbol", step="1D", store=ParquetStore(tmp_path))(
        define(V2, "app.bars")
    )
    with pytest.warns(CacheWarning, match="version="):
        changed("AAPL", A, B)
