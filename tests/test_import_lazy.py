"""``import rangememo`` loads only what decorating and calling need (issue 8, import time)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import rangememo

#: Loaded on first use only: the Parquet store's and the CLI's dependencies.
LAZY = ["click", "rich", "joblib", "platformdirs", "filelock", "pyarrow.parquet"]


def _run(code: str, tmp_path: Path) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter; it prints one JSON value as its last line."""
    env = {**os.environ, "RANGEMEMO_CACHE_DIR": str(tmp_path / "cache")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_import_loads_no_store_or_cli_dependency(tmp_path: Path) -> None:
    """A bare import leaves the CLI's and the Parquet store's dependencies unloaded."""
    code = (
        f"import sys, json, rangememo\nprint(json.dumps({{m: m in sys.modules for m in {LAZY!r}}}))"
    )
    assert _run(code, tmp_path) == dict.fromkeys(LAZY, False)


def test_memory_store_call_loads_none_of_them(tmp_path: Path) -> None:
    """Decorating and calling with a MemoryStore (sync and async) needs none of them."""
    code = (
        "import sys, json, asyncio\n"
        "import pandas as pd\n"
        "from rangememo import MemoryStore, range_cached\n"
        "from rangememo.testing import make_bars\n"
        "@range_cached(key='s', step='1D', store=MemoryStore())\n"
        "def f(s, start, end): return make_bars(s, start, end)\n"
        "@range_cached(key='s', step='1D', store=MemoryStore())\n"
        "async def g(s, start, end): return make_bars(s, start, end)\n"
        "a, b = pd.Timestamp('2024-01-01'), pd.Timestamp('2024-01-10')\n"
        "assert len(f('X', a, b)) == len(asyncio.run(g('X', a, b))) > 0\n"
        f"print(json.dumps({{m: m in sys.modules for m in {LAZY!r}}}))"
    )
    assert _run(code, tmp_path) == dict.fromkeys(LAZY, False)


def test_a_sync_program_never_loads_asyncio(tmp_path: Path) -> None:
    """Decorating and calling a plain function with a MemoryStore leaves asyncio unloaded."""
    code = (
        "import sys, json\n"
        "import pandas as pd\n"
        "from rangememo import MemoryStore, range_cached\n"
        "@range_cached(key='s', step='1D', store=MemoryStore())\n"
        "def f(s, start, end):\n"
        "    idx = pd.date_range(start, end, freq='D')\n"
        "    return pd.DataFrame({'v': range(len(idx))}, index=idx)\n"
        "a, b = pd.Timestamp('2024-01-01'), pd.Timestamp('2024-01-10')\n"
        "f('X', a, a + pd.Timedelta('3D')); f('X', a, b); f('X', a, b)\n"
        "print(json.dumps({m: m in sys.modules for m in ['asyncio', 'ssl']}))"
    )
    assert _run(code, tmp_path) == {"asyncio": False, "ssl": False}


def test_async_wrappers_still_look_async() -> None:
    """asyncio and inspect both see an async cached function as a coroutine function."""
    import asyncio
    import inspect

    from rangememo import MemoryStore, range_cached

    @range_cached(store=MemoryStore())
    async def f(start: int, end: int) -> None:
        return None

    assert asyncio.iscoroutinefunction(f) and inspect.iscoroutinefunction(f)


def test_every_public_name_imports(tmp_path: Path) -> None:
    """``from rangememo import X`` works for every name of ``__all__``, lazy ones too."""
    names = ", ".join(rangememo.__all__)
    code = f"import json\nfrom rangememo import {names}\nprint(json.dumps(ParquetStore.__name__))"
    assert _run(code, tmp_path) == "ParquetStore"
    for name in rangememo.__all__:
        assert getattr(rangememo, name) is not None
    assert set(rangememo.__all__) <= set(dir(rangememo))


def test_lazy_name_is_the_real_class() -> None:
    """The lazily loaded ``ParquetStore`` is the store class itself."""
    from rangememo._stores.parquet.store import ParquetStore

    assert rangememo.ParquetStore is ParquetStore


def test_unknown_attribute_still_raises() -> None:
    """A name that does not exist is an AttributeError naming it."""
    with pytest.raises(AttributeError, match="NoSuchThing"):
        rangememo.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018


def test_default_store_works_and_loads_parquet_on_use(tmp_path: Path) -> None:
    """The default store (a ParquetStore) opens on first call and caches on disk."""
    code = (
        "import sys, json\n"
        "import pandas as pd\n"
        "from rangememo import range_cached\n"
        "from rangememo.testing import make_bars\n"
        "calls = []\n"
        "@range_cached(key='s', step='1D', namespace='lazy.test')\n"
        "def f(s, start, end):\n"
        "    calls.append(1)\n"
        "    return make_bars(s, start, end)\n"
        "a, b = pd.Timestamp('2024-01-01'), pd.Timestamp('2024-01-10')\n"
        "before = 'platformdirs' in sys.modules or 'joblib' in sys.modules\n"
        "x, y = f('X', a, b), f('X', a, b)\n"
        "pd.testing.assert_frame_equal(x, make_bars('X', a, b))\n"
        "pd.testing.assert_frame_equal(y, x)\n"
        "import rangememo\n"
        "print(json.dumps({'before': before, 'calls': len(calls),\n"
        "    'store': type(rangememo.default_store()).__name__}))"
    )
    out = _run(code, tmp_path)
    assert out == {"before": False, "calls": 1, "store": "ParquetStore"}
    assert any((tmp_path / "cache").iterdir())


def test_cli_still_runs(tmp_path: Path) -> None:
    """The ``rangememo`` command (click + rich) still loads and lists its commands."""
    code = "from rangememo._cli import main\nmain(['--help'])"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "RANGEMEMO_CACHE_DIR": str(tmp_path / "cache")},
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "Usage" in out.stdout and " ls " in out.stdout


def test_testing_helpers_load_pytest_only_for_the_store_contract(tmp_path: Path) -> None:
    """``rangememo.testing`` serves FakeProvider without pytest; StoreContract brings it."""
    out = _run(
        "import json, sys\n"
        "import rangememo.testing as t\n"
        "before = 'pytest' in sys.modules\n"
        "contract = t.StoreContract\n"
        "print(json.dumps({'before': before, 'after': 'pytest' in sys.modules,\n"
        "    'name': contract.__name__, 'fake': t.FakeProvider.__name__}))",
        tmp_path,
    )
    assert out == {"before": False, "after": True, "name": "StoreContract", "fake": "FakeProvider"}


def test_import_leaves_portion_and_audit_for_first_use(tmp_path: Path) -> None:
    """portion (~20 ms: it reads its own package metadata) and the audit load on first use."""
    later = ["portion", "importlib.metadata", "rangememo._core.audit", "rangememo._engine.audit"]
    code = (
        "import sys, json, rangememo\n"
        f"print(json.dumps({{m: m in sys.modules for m in {later!r}}}))"
    )
    assert _run(code, tmp_path) == dict.fromkeys(later, False)
    code = (
        "import sys, json, rangememo\n"
        "from rangememo import AuditReport\n"
        "from rangememo._core.audit import AuditReport as Real\n"
        "print(json.dumps({'same': AuditReport is Real, 'portion': 'portion' in sys.modules}))"
    )
    assert _run(code, tmp_path) == {"same": True, "portion": False}
