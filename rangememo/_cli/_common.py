"""What every ``rangememo`` command shares: the console, the store, how keys and positions read."""

from __future__ import annotations

import ast
import datetime as dt
import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from .._errors import InvalidOption
from .._stores.parquet.local.medium import LocalMedium
from .._stores.parquet.location import open_medium
from .._stores.parquet.maintenance import KeyInfo
from .._stores.parquet.medium import Medium

#: Bumped only when a field of the ``--json`` output changes meaning or goes away.
JSON_SCHEMA = 1

json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print JSON for scripts (schema in docs/cli.md)."
)


def console() -> Console:
    # Not a terminal (a pipe, a test runner): wide enough that keys stay on one line.
    return Console(width=None if sys.stdout.isatty() else 160, highlight=False, soft_wrap=True)


def esc(value: object) -> str:
    """Text from the store (keys, paths, problems) is shown as is, never as markup."""
    return escape(str(value))


def size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def count(n: int, what: str) -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


def covered(info: KeyInfo) -> str:
    """The covered range, first position to the exclusive end of the last piece."""
    pieces = info.ledger.intervals()
    if not pieces:
        return "-"
    text = f"{info.position(pieces[0][0])} → {info.position(pieces[-1][1])}"
    return text + (f" ({len(pieces)} pieces)" if len(pieces) > 1 else "")


def open_root(ctx: click.Context) -> Medium:
    """The store's medium: a directory, or an object store URL (``s3://bucket/prefix``)."""
    where: Path | str = ctx.obj
    try:
        medium = open_medium(where)
    except InvalidOption as exc:
        raise click.ClickException(str(exc)) from None
    if isinstance(medium, LocalMedium) and not medium.root.is_dir():
        raise click.ClickException(f"no store directory at {where}")
    return medium


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rangememo")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


def by_name(infos: list[KeyInfo]) -> list[KeyInfo]:
    """Keys in a stable order (namespace, then key), whatever order the directory lists."""
    return sorted(infos, key=lambda i: (i.namespace, i.key))


def json_out(data: object) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False))


def parts(info: KeyInfo) -> list[str]:
    """A key's parts as text: the items of a tuple key, else the key itself."""
    try:
        value = ast.literal_eval(info.key)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return [info.key]
    items = value if isinstance(value, tuple) else (value,)
    return [str(v) for v in items]


def jpos(info: KeyInfo, pos: int) -> int | str:
    """A position for JSON: an int on an int axis, else the text the tables show."""
    text = info.position(pos)
    return int(text) if text.lstrip("-").isdigit() else text


def spans(info: KeyInfo) -> list[dict[str, int | str]]:
    return [
        {"from": jpos(info, a), "to_exclusive": jpos(info, b)} for a, b in info.ledger.intervals()
    ]


def when(stamp: float | None) -> str | None:
    """A fetch or write time as ISO 8601 UTC (JSON), ``None`` when unknown."""
    return None if not stamp else dt.datetime.fromtimestamp(stamp, dt.UTC).isoformat()


def key_json(info: KeyInfo) -> dict[str, object]:
    return {
        "namespace": info.namespace,
        "key": info.key,
        "parts": parts(info),
        "hash": info.paths.keydir.name,
    }


def last_write(info: KeyInfo) -> float | None:
    """When the key was last written: the log's time, else its newest fetch (logs written
    so far carry time 0, which would read as 1970)."""
    if info.doc is None:
        return None
    fetched = [s.fetched for s in info.ledger.states() if s.fetched]
    return info.doc.updated or max(fetched, default=0.0) or None
