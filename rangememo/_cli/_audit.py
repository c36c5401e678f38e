"""``rangememo audit``: refetch a sample of cached ranges and compare with what is stored.

::

    rangememo audit MODULE:FUNCTION [KEY...] [--sample all|N|F] [--seed N] [--heal] [--json]

Unlike the other commands this one calls the provider, so it needs the
decorated function itself: ``MODULE:FUNCTION`` is its import path
(``mypkg.data:get_bars``), which also names the namespace and the store
(``--dir`` is not used). KEY is a key as ``ls`` shows it (``('AAPL',)``) or,
for a function keyed by one argument, that argument's value (``AAPL``);
without KEY every key of the function is audited. Exit status 1 when some
range was revised and ``--heal`` was not given (a cron job notices), else 0.
"""

from __future__ import annotations

import ast
import asyncio
import importlib
import inspect
import json
import math
from collections.abc import Hashable
from typing import Any

import click

__all__ = ["audit"]


def _target(path: str) -> Any:
    module, sep, attr = path.partition(":")
    if not sep or not module or not attr:
        raise click.BadParameter(
            f"{path!r}: give the decorated function as MODULE:FUNCTION (e.g. mypkg.data:get_bars)"
        )
    try:
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise click.BadParameter(f"{path!r}: {exc}") from None
    if not hasattr(obj, "audit") or not hasattr(obj, "cache"):
        raise click.BadParameter(f"{path!r} is {obj!r}, not a function decorated by range_cached")
    return obj


def _key(text: str, names: tuple[str, ...], cached: list[Any]) -> tuple[Any, ...]:
    """The cached key ``text`` names: its repr as ``ls`` shows it, or for a function keyed
    by one argument that argument's value (``AAPL``); a key not cached is an error, not
    an audit of nothing that exits 0. Always a cached key itself: ``True`` equals ``1``
    but is another key on disk."""
    for key in cached:  # an exact repr first: ``1`` names (1,), not ('1',)
        if text == repr(key):
            return tuple(key)
    if len(names) == 1:
        for key in cached:
            if isinstance(key, tuple) and len(key) == 1 and text == repr(key[0]):
                return tuple(key)
    try:
        value = ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        value = text  # a bare word: the value of the one key argument
    if not (isinstance(value, tuple) and len(value) == len(names)):
        if len(names) != 1:
            raise click.BadParameter(
                f"key {text!r}: give a tuple of {len(names)} values for {names}"
            )
        value = (value,)
    for key in cached:
        if _same_key(key, value):
            return tuple(key)
    if len(names) == 1:  # a value as str() shows it: 2024-01-02 00:00:00
        for key in cached:
            if isinstance(key, tuple) and len(key) == 1 and text == str(key[0]):
                return tuple(key)
    shown = ", ".join(repr(k) for k in cached[:5]) + (", ..." if len(cached) > 5 else "")
    raise click.BadParameter(f"key {text!r} is not cached (cached keys: {shown or 'none'})")


def _same_key(a: Any, b: Any) -> bool:
    """Equal, part by part of the same type (``1 == True == 1.0`` are three keys)."""
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(map(_same_key, a, b))
    try:
        return type(a) is type(b) and bool(a == b)
    except (TypeError, ValueError):
        return False


def _sample(text: str) -> float | int | str:
    if text == "all":
        return text
    try:
        count = int(text)
    except ValueError:
        pass
    else:
        if count < 1:
            raise click.BadParameter(f"--sample {text!r}: a count must be at least 1")
        return count
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= 1:
        raise click.BadParameter(
            f"--sample {text!r}: 'all', a count of at least 1, or a fraction in (0, 1]"
        )
    return value


def _run(fn: Any, key: Hashable, sample: Any, seed: int, heal: bool) -> Any:
    names = fn.cache.binder.key_names
    arguments = dict(zip(names, key, strict=True))  # type: ignore[call-overload]
    result = fn.audit(**arguments, sample=sample, seed=seed, heal=heal)
    return asyncio.run(result) if inspect.iscoroutine(result) else result


def _text(report: Any) -> str:
    head = (
        f"{report.key!r}: {report.ranges_checked} of {report.ranges_covered} ranges checked, "
        f"{len(report.revised)} revised"
    )
    if report.clean:
        return head
    lines = [
        head,
        f"  rows: {report.rows_added} added, {report.rows_removed} removed, "
        f"{report.rows_changed} changed (of {report.rows_checked})",
    ]
    for col in report.columns_changed:
        big = report.largest_change.get(col)
        lines.append(f"  {col}" + (f": largest change {big:g}" if big is not None else ""))
    lines += [f"  revised: {a} → {b}" for a, b in report.revised]
    if report.advice:
        lines.append(f"  {report.advice}")
    if report.healed:
        lines.append("  healed: the fresh rows replaced the stored ones")
    return "\n".join(lines)


@click.command("audit")
@click.argument("function")
@click.argument("keys", nargs=-1)
@click.option("--sample", default="all", show_default=True, help="'all', a count, or a fraction.")
@click.option("--seed", default=0, show_default=True, help="Which ranges a sample picks.")
@click.option("--heal", is_flag=True, help="Replace the stored rows of revised ranges.")
@click.option("--json", "as_json", is_flag=True, help="One JSON report per key.")
def audit(
    function: str, keys: tuple[str, ...], sample: str, seed: int, heal: bool, as_json: bool
) -> None:
    """Refetch cached ranges of FUNCTION (MODULE:FUNCTION) and report what the provider revised."""
    fn = _target(function)
    binder = fn.cache.binder
    if binder.key_fn is not None:
        raise click.ClickException(
            f"{function} computes its key with a callable: audit it from Python, fn.audit(...)"
        )
    names = binder.key_names
    how = _sample(sample)  # checked before any provider call
    cached = sorted(fn.cache.store.keys(fn.cache.namespace), key=repr)
    wanted = [_key(k, names, cached) for k in keys] if keys else cached
    reports = [_run(fn, key, how, seed, heal) for key in wanted]
    if as_json:
        click.echo(json.dumps([r.to_json() for r in reports], indent=2))
    else:
        for r in reports:
            click.echo(_text(r))
    if any(not r.clean for r in reports) and not heal:
        raise SystemExit(1)
