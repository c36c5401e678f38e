"""ParquetStore on ``s3://`` (a loopback SeaweedFS) against a local directory, in one run.

(a) seed      the 62-day seed backtest (engine 1-day + strategy 30-day + chart, 20 ms
              provider latency) cold on each store: wall s3/local, provider calls (63
              each), then a rerun through a new store instance (0 calls)
(b) universe  500 daily symbols over 8 spawned processes, each symbol in two of them,
              a short daily backtest (30-day lookback): total provider calls (= distinct
              gaps, one call per gap across processes), wall s3/local
(c) requests  HTTP requests by method, through a counting proxy, for a one-piece commit,
              a warm hit within ``refresh``, a hit after it (revalidation), a new key's
              first write, and the one-time probe of conditional writes
(d) latency   median and p90 of a one-gap miss (provider excluded) and of a warm hit
              (within ``refresh`` and with ``refresh=0``), s3 vs local

The benchmark starts its own ``weed mini`` (``tests/s3server.py``) and stops it at the
end. Usage: ``python benchmarks/bench_s3.py [--quick] [--json PATH]``.
"""

from __future__ import annotations

# ``readahead=None`` on the cached functions below (but bench_core's seed variant):
# these measure each one-gap commit, a store's layout after many commits, and the
# seed's calls one day at a time, as recorded in docs/benchmarks.md; readahead (the
# default) would turn them into fewer, longer fetches. bench_readahead.py measures it.
import argparse
import asyncio
import collections
import contextlib
import json
import logging
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pandas.testing as pdt

from rangememo import ParquetStore, range_cached
from rangememo.testing import FakeProvider, make_bars

HERE = Path(__file__).parent
# The test servers (s3server, faultproxy) live in tests/; bench_core beside this file.
sys.path[:0] = [str(HERE.parent / "tests"), str(HERE)]

from bench_core import (  # noqa: E402  (the seed workload and provider, as bench_core has them)
    _seed_calls,
    _slicing_provider,
)
from faultproxy import FaultProxy  # noqa: E402
from s3server import SeaweedServer  # noqa: E402

RESULTS = HERE / "results"
BUCKET = "rangememo-bench"
DAY0 = pd.Timestamp("2023-01-02")
DAY = pd.Timedelta(days=1)
LOOKBACK = 29  # a 30-day window: [end - 29 days, end]


# -- the server and its environment ------------------------------------------------------


@contextlib.contextmanager
def aws_env(values: dict[str, str]) -> Iterator[None]:
    """Exactly these AWS_* variables while inside (spawned workers inherit them)."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    for name in saved:
        del os.environ[name]
    os.environ.update(values)
    try:
        yield
    finally:
        for name in [k for k in os.environ if k.startswith("AWS_")]:
            del os.environ[name]
        os.environ.update(saved)


def fresh_url(name: str) -> str:
    """A prefix no earlier run used: every store here starts empty (and is probed)."""
    return f"s3://{BUCKET}/{name}-{uuid.uuid4().hex[:10]}"


@contextlib.contextmanager
def seaweed() -> Iterator[SeaweedServer]:
    with SeaweedServer() as server:
        server.create_bucket(BUCKET)
        yield server


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


# -- (a) the seed backtest --------------------------------------------------------------


def _seed_function(store: ParquetStore, provider: FakeProvider) -> Any:
    @range_cached(
        readahead=None, key=("symbol", "timeframe"), step="1D", store=store, namespace="seed"
    )
    async def get_bars(symbol: str, start: Any, end: Any, timeframe: str) -> pd.DataFrame:
        return await provider.get_bars(symbol, start, end, timeframe)

    return get_bars


def _seed_once(location: str, latency: float, days: int) -> dict[str, Any]:
    """The cold run, then the rerun through a new store instance on the same location."""
    out: dict[str, Any] = {}
    for run in ("cold", "rerun"):
        provider = FakeProvider(latency=latency)
        store = ParquetStore(location)

        get_bars = _seed_function(store, provider)
        t0 = time.perf_counter()
        frames = asyncio.run(_seed_calls(get_bars, days))
        out[f"{run}_wall"] = time.perf_counter() - t0
        out[f"{run}_calls"] = provider.call_count
        out[f"{run}_frames"] = frames
        store.close()
    return out


def bench_seed(
    server: SeaweedServer, latency: float = 0.02, days: int = 62, repeats: int = 3
) -> dict[str, Any]:
    """(a) Cold wall time and calls on s3:// vs a local directory; rerun in a new instance."""
    want = asyncio.run(_seed_calls(FakeProvider().get_bars, days))
    walls: dict[str, list[float]] = collections.defaultdict(list)
    calls: dict[str, int] = {}
    with aws_env(server.env()), tempfile.TemporaryDirectory(prefix="rangememo-bench-") as tmp:
        for r in range(repeats):
            order = ("local", "s3") if r % 2 == 0 else ("s3", "local")  # drift hits both
            for name in order:
                where = str(Path(tmp) / f"seed{r}") if name == "local" else fresh_url("seed")
                got = _seed_once(where, latency, days)
                for run in ("cold", "rerun"):
                    walls[f"{name}_{run}"].append(got[f"{run}_wall"])
                    calls[f"{name}_{run}"] = got[f"{run}_calls"]
                    for a, b in zip(got[f"{run}_frames"], want, strict=True):
                        pdt.assert_frame_equal(a, b)
    wall = {k: statistics.median(v) for k, v in walls.items()}
    return {
        "days": days,
        "latency_s": latency,
        "repeats": repeats,
        "calls": calls,
        "wall_s": wall,
        "ratio": wall["s3_cold"] / wall["local_cold"],
        "rerun_ratio": wall["s3_rerun"] / wall["local_rerun"],
    }


# -- (b) the universe over processes -----------------------------------------------------


def _universe_worker(
    location: str, names: list[str], days: int, barrier: Any, results: Any
) -> None:
    calls = 0
    store = ParquetStore(location)

    @range_cached(
        readahead=None, key="symbol", step="1D", store=store, namespace="universe", settle=None
    )
    def bars(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        nonlocal calls
        calls += 1
        return make_bars(symbol, start, end, skip_weekends=False)

    # Imports and the probe of conditional writes happen before the clock starts.
    store.get(bars.cache.namespace, ("warm-up",))
    barrier.wait()
    t0 = time.time()
    for d in range(days):
        end = DAY0 + d * DAY
        for name in names:
            bars(name, end - LOOKBACK * DAY, end)
    done = time.time()
    store.close()
    results.put((calls, t0, done))


def _slices(symbols: int, processes: int) -> list[list[str]]:
    """Process p takes 2/P of the symbols from p/P on: each symbol is in two processes."""
    names = [f"S{i:04d}" for i in range(symbols)]
    width = 2 * symbols // processes
    return [
        [names[(p * symbols // processes + j) % symbols] for j in range(width)]
        for p in range(processes)
    ]


def _universe_run(location: str, symbols: int, processes: int, days: int) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    slices = _slices(symbols, processes)
    procs = [
        ctx.Process(target=_universe_worker, args=(location, part, days, barrier, results))
        for part in slices
    ]
    for p in procs:
        p.start()
    got = [results.get(timeout=1800) for _ in procs]
    for p in procs:
        p.join(60)
        if p.exitcode != 0:
            raise RuntimeError(f"universe worker exited with {p.exitcode}")
    return {
        "calls": sum(c for c, _, _ in got),
        "wall_s": max(e for _, _, e in got) - min(s for _, s, _ in got),
        "covered": len({n for part in slices for n in part}),
    }


def bench_universe(
    server: SeaweedServer, symbols: int = 500, processes: int = 8, days: int = 10
) -> dict[str, Any]:
    """(b) Provider calls across processes (= distinct gaps) and wall time, s3 vs local."""
    out: dict[str, Any] = {"symbols": symbols, "processes": processes, "days": days}
    with aws_env(server.env()), tempfile.TemporaryDirectory(prefix="rangememo-bench-") as tmp:
        for name, where in (("local", str(Path(tmp) / "u")), ("s3", fresh_url("universe"))):
            run = _universe_run(where, symbols, processes, days)
            out[f"{name}_calls"], out[f"{name}_wall_s"] = run["calls"], run["wall_s"]
            covered = run["covered"]
    # Per symbol: the first 30-day window is one gap, each later day one more.
    out["gaps"] = covered * days
    out["ratio"] = out["s3_wall_s"] / out["local_wall_s"]
    return out


# -- (c) requests per operation ----------------------------------------------------------


def _kinds(seen: list[Any]) -> collections.Counter[str]:
    """Requests by method; LIST is a GET with ``list-type``, DELETE a POST ``?delete``.

    (obstore deletes one object with S3's multi-object delete, a POST.)
    """
    out: collections.Counter[str] = collections.Counter()
    for req in seen:
        query = req.path.partition("?")[2]
        if req.method == "GET" and "list-type=" in query:
            out["LIST"] += 1
        elif req.method == "POST" and query.startswith("delete"):
            out["DELETE"] += 1
        else:
            out[req.method] += 1
    return out


def _sample(seen: list[Any], prefix: str) -> list[str]:
    """``METHOD name [status]`` of each request, the store's prefix cut off (for reading)."""
    out = []
    for req in seen:
        path = req.path.split(prefix, 1)[-1].lstrip("/")
        out.append(f"{req.method} {path} {req.status}")
    return out


def _summary(samples: list[collections.Counter[str]]) -> dict[str, Any]:
    methods = sorted({m for c in samples for m in c})
    totals = [sum(c.values()) for c in samples]
    out: dict[str, Any] = {m: statistics.median(c[m] for c in samples) for m in methods}
    out.update(total=statistics.median(totals), min=min(totals), max=max(totals))
    out["n"] = len(samples)
    return out


def bench_requests(server: SeaweedServer, repeats: int = 20) -> dict[str, Any]:
    """(c) HTTP requests by method per operation, medians over ``repeats``."""
    frame = make_bars("K", DAY0 - 40 * DAY, DAY0 + (repeats + 40) * DAY, skip_weekends=False)
    fetch = _slicing_provider(frame)
    kinds = ("probe", "first write", "new key", "miss", "hit", "revalidate")
    counts: dict[str, list[collections.Counter[str]]] = {k: [] for k in kinds}
    samples: dict[str, list[str]] = {}

    def cached(store: ParquetStore, namespace: str) -> Any:
        @range_cached(
            readahead=None, key="symbol", step="1D", store=store, namespace=namespace, settle=None
        )
        def bars(symbol: str, start: Any, end: Any) -> pd.DataFrame:
            return fetch(start, end)

        return bars

    # Connections the client keeps alive outlive the proxy; at exit, the stores'
    # cleanup through them meets a stopped server, which the proxy would log.
    logging.getLogger("faultproxy").setLevel(logging.ERROR)
    with FaultProxy(server.s3_port) as proxy, aws_env(server.env(proxy.endpoint)):

        def count(kind: str, action: Callable[[], object], prefix: str) -> None:
            proxy.reset()
            action()
            seen = proxy.seen
            assert len(seen) == sum(proxy.counts.values())
            counts[kind].append(_kinds(seen))
            # The requests themselves, of the last repeat and of the costliest one.
            samples[kind] = _sample(seen, prefix)
            if len(seen) >= max(sum(c.values()) for c in counts[kind]):
                samples[f"{kind} (max)"] = samples[kind]

        def first_read(url: str) -> None:
            with contextlib.closing(ParquetStore(url)) as store:
                store.get("ns", ("absent",))

        for _ in range(repeats):
            # The probe: the first read of a fresh location, less the same read on an
            # already probed one (a new instance, so the same first-use work otherwise).
            url = fresh_url("requests")
            prefix = url.split("/", 3)[3]
            count("probe", lambda url=url: first_read(url), prefix)
            probed = counts["probe"].pop()
            count("probe", lambda url=url: first_read(url), prefix)
            counts["probe"][-1] = probed - counts["probe"][-1]
        store = ParquetStore(fresh_url("requests"))
        prefix = store.url.split("/", 3)[3]
        store.get("ns", ("warm-up",))  # probed now
        for i in range(repeats):
            fn = cached(store, f"bench.first{i}")  # a new namespace: its first key
            count("first write", lambda fn=fn: fn("K", DAY0 - LOOKBACK * DAY, DAY0), prefix)
        fn = cached(store, "bench.first0")  # an existing namespace
        for i in range(repeats):
            sym = f"NEW{i}"
            count("new key", lambda s=sym: fn(s, DAY0 - LOOKBACK * DAY, DAY0), prefix)
        for i in range(1, repeats + 1):
            end = DAY0 + i * DAY

            def call(end: pd.Timestamp = end) -> object:
                return fn("K", end - LOOKBACK * DAY, end)

            count("miss", call, prefix)  # one new day on an existing key
            count("hit", call, prefix)  # within refresh (1 s by default on s3)
            time.sleep(store.refresh + 0.05)
            count("revalidate", call, prefix)
        store.close()
    out: dict[str, Any] = {k: _summary(v) for k, v in counts.items()}
    out["refresh_s"] = store.refresh
    out["samples"] = samples
    return out


# -- (d) latency ------------------------------------------------------------------------


def bench_latency(server: SeaweedServer, misses: int = 200, hits: int = 500) -> dict[str, Any]:
    """(d) One-gap miss and warm-hit latencies, s3 (refresh 1 s and 0) vs local."""
    frame = make_bars("K", DAY0 - 40 * DAY, DAY0 + (misses + 40) * DAY, skip_weekends=False)
    fetch = _slicing_provider(frame)
    out: dict[str, Any] = {"misses": misses, "hits": hits}
    with aws_env(server.env()), tempfile.TemporaryDirectory(prefix="rangememo-bench-") as tmp:
        stores = {
            "local": lambda: ParquetStore(Path(tmp) / "durable"),
            "local durable=False": lambda: ParquetStore(Path(tmp) / "fast", durable=False),
            "s3": lambda: ParquetStore(fresh_url("latency")),
        }
        for name, make in stores.items():
            store = make()
            end = DAY0 + misses * DAY
            window = (end - LOOKBACK * DAY, end)
            miss = _misses(store, fetch, misses)
            out[name] = {"miss_ms": _ms(miss)}
            store.close()
            location = store.path if store.local else store.url
            with contextlib.closing(ParquetStore(location)) as again:
                out[name]["hit_us"] = _us(_hits(again, fetch, window, hits))
            if not store.local:
                with contextlib.closing(ParquetStore(location, refresh=0)) as zero:
                    out["s3 refresh=0"] = {"hit_us": _us(_hits(zero, fetch, window, hits))}
    out["miss_ratio"] = out["s3"]["miss_ms"]["median"] / out["local"]["miss_ms"]["median"]
    out["hit_ratio"] = out["s3"]["hit_us"]["median"] / out["local"]["hit_us"]["median"]
    out["hit0_ratio"] = out["s3 refresh=0"]["hit_us"]["median"] / out["local"]["hit_us"]["median"]
    return out


def _cached(store: ParquetStore, fetch: Any, spent: list[float]) -> Any:
    @range_cached(
        readahead=None, key="symbol", step="1D", store=store, namespace="latency", settle=None
    )
    def bars(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        t = time.perf_counter()
        out = fetch(start, end)
        spent[0] += time.perf_counter() - t
        return out

    return bars


def _misses(store: ParquetStore, fetch: Any, n: int) -> list[float]:
    spent = [0.0]
    bars = _cached(store, fetch, spent)
    bars("K", DAY0 - LOOKBACK * DAY, DAY0)
    out = []
    for i in range(1, n + 1):
        end = DAY0 + i * DAY
        before, t = spent[0], time.perf_counter()
        bars("K", end - LOOKBACK * DAY, end)
        out.append(time.perf_counter() - t - (spent[0] - before))
    return out


def _hits(store: ParquetStore, fetch: Any, window: tuple[Any, Any], n: int) -> list[float]:
    """A new instance (what another process sees), warmed by one call, then ``n`` hits."""
    spent = [0.0]
    bars = _cached(store, fetch, spent)
    bars("K", *window)
    out = []
    for _ in range(n):
        t = time.perf_counter()
        bars("K", *window)
        out.append(time.perf_counter() - t)
    assert spent[0] == 0.0, "a warm hit called the provider"
    return out


def _ms(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values) * 1e3, "p90": _pct(values, 0.9) * 1e3}


def _us(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values) * 1e6, "p90": _pct(values, 0.9) * 1e6}


# -- running and reporting ------------------------------------------------------------------


def run_all(quick: bool, server: SeaweedServer | None = None) -> dict[str, Any]:
    """Every measurement, on ``server`` or on a SeaweedFS started (and stopped) here."""
    if server is None:
        with seaweed() as own:
            return run_all(quick, own)
    if quick:
        return {
            "seed": bench_seed(server, days=12, repeats=1),
            "universe": bench_universe(server, symbols=16, processes=4, days=3),
            "requests": bench_requests(server, repeats=3),
            "latency": bench_latency(server, misses=20, hits=50),
        }
    return {
        "seed": bench_seed(server),
        "universe": bench_universe(server),
        "requests": bench_requests(server),
        "latency": bench_latency(server),
    }


def markdown(results: dict[str, Any]) -> str:
    seed, uni, req, lat = (results[k] for k in ("seed", "universe", "requests", "latency"))
    w, c = seed["wall_s"], seed["calls"]
    lines = [
        "| benchmark | s3:// (SeaweedFS, loopback) | local directory | s3 / local |",
        "|---|---:|---:|---:|",
        f"| (a) seed backtest, {seed['days']} days, {seed['latency_s'] * 1e3:.0f} ms latency, "
        f"cold | {w['s3_cold']:.2f} s ({c['s3_cold']} calls) "
        f"| {w['local_cold']:.2f} s ({c['local_cold']} calls) | {seed['ratio']:.2f} |",
        f"| (a') rerun through a new store instance | {w['s3_rerun'] * 1e3:.1f} ms "
        f"({c['s3_rerun']} calls) | {w['local_rerun'] * 1e3:.1f} ms ({c['local_rerun']} calls) "
        f"| {seed['rerun_ratio']:.2f} |",
        f"| (b) universe: {uni['symbols']} symbols x {uni['days']} days over "
        f"{uni['processes']} processes ({uni['gaps']} distinct gaps) "
        f"| {uni['s3_wall_s']:.2f} s ({uni['s3_calls']} calls) "
        f"| {uni['local_wall_s']:.2f} s ({uni['local_calls']} calls) | {uni['ratio']:.2f} |",
    ]
    for label, key in (("one-gap miss, provider excluded", "miss_ms"),):
        s, loc = lat["s3"][key], lat["local"][key]
        fast = lat["local durable=False"][key]
        lines.append(
            f"| (d) {label}: median / p90 | {s['median']:.2f} / {s['p90']:.2f} ms "
            f"| {loc['median']:.2f} / {loc['p90']:.2f} ms "
            f"(durable=False: {fast['median']:.2f} / {fast['p90']:.2f}) | {lat['miss_ratio']:.2f} |"
        )
    loc = lat["local"]["hit_us"]
    for label, name, ratio in (
        ("warm hit, within refresh", "s3", "hit_ratio"),
        ("warm hit, refresh=0 (revalidates)", "s3 refresh=0", "hit0_ratio"),
    ):
        s = lat[name]["hit_us"]
        lines.append(
            f"| (d) {label}: median / p90 | {s['median']:.0f} / {s['p90']:.0f} µs "
            f"| {loc['median']:.0f} / {loc['p90']:.0f} µs | {lat[ratio]:.2f} |"
        )
    methods = ("PUT", "GET", "LIST", "HEAD", "DELETE", "POST")
    lines += [
        "",
        f"(c) HTTP requests per operation (median of {req['miss']['n']}; refresh "
        f"{req['refresh_s']:g} s; LIST = a GET with list-type, "
        "DELETE = obstore's POST ?delete)",
        "",
        "| operation | " + " | ".join(methods) + " | total | min-max |",
        "|---|" + "---:|" * (len(methods) + 2),
    ]
    titles = {
        "miss": "miss: one new piece on an existing key",
        "hit": "warm hit within refresh",
        "revalidate": "hit after refresh expired",
        "new key": "first write of a new key, existing namespace",
        "first write": "first write of a new key in a new namespace",
        "probe": "one-time probe of conditional writes",
    }
    for kind, title in titles.items():
        row = req[kind]
        cells = " | ".join(f"{row.get(m, 0):g}" for m in methods)
        lines.append(f"| {title} | {cells} | {row['total']:g} | {row['min']}-{row['max']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path, default=RESULTS / "s3.json")
    args = parser.parse_args(argv)
    results = run_all(args.quick)
    sys.stdout.write(markdown(results) + "\n")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
