"""``rangememo``: look into a store directory, check it, tidy it.

::

    rangememo [--dir PATH] ls [NAMESPACE]       namespaces and keys: rows, coverage, bytes
    rangememo [--dir PATH] show NAMESPACE KEY   one key: coverage, gaps, segments, schema
    rangememo [--dir PATH] verify               read everything; exit 1 naming any problem
    rangememo [--dir PATH] gc                   free replaced parts, orphans, temp files
    rangememo [--dir PATH] compact              merge each key's segments
    rangememo [--dir PATH] clear [NAMESPACE [KEY]]

``--dir`` defaults to the default store (``$RANGEMEMO_CACHE_DIR``, else the
user cache directory). NAMESPACE is a namespace name (``pkg.mod.fn@v0``), its
directory, or a prefix of either; KEY is the key's repr as ``ls`` shows it, or
a prefix of its hash.
"""

from __future__ import annotations

import ast
import datetime as dt
import itertools
import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .._errors import InvalidOption
from .._stores.parquet.local.medium import LocalMedium
from .._stores.parquet.location import is_local, local_path, open_medium
from .._stores.parquet.maintenance import (
    KeyInfo,
    clear_keys,
    clear_store,
    collect,
    compact_all,
    find,
    verify,
)
from .._stores.parquet.medium import Medium
from .._stores.parquet.store import default_cache_dir

__all__ = ["main"]


def _console() -> Console:
    # Not a terminal (a pipe, a test runner): wide enough that keys stay on one line.
    return Console(width=None if sys.stdout.isatty() else 160, highlight=False, soft_wrap=True)


def _e(value: object) -> str:
    """Text from the store (keys, paths, problems) is shown as is, never as markup."""
    return escape(str(value))


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _count(n: int, what: str) -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


def _covered(info: KeyInfo) -> str:
    pieces = info.ledger.intervals()
    if not pieces:
        return "-"
    text = f"{info.position(pieces[0][0])} → {info.position(pieces[-1][1])}"
    return text + (f" ({len(pieces)} pieces)" if len(pieces) > 1 else "")


def _root(ctx: click.Context) -> Medium:
    """The store's medium: a directory, or an object store URL (``s3://bucket/prefix``)."""
    where: Path | str = ctx.obj
    try:
        medium = open_medium(where)
    except InvalidOption as exc:
        raise click.ClickException(str(exc)) from None
    if isinstance(medium, LocalMedium) and not medium.root.is_dir():
        raise click.ClickException(f"no store directory at {where}")
    return medium


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rangememo")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


def _sorted(infos: list[KeyInfo]) -> list[KeyInfo]:
    return sorted(infos, key=lambda i: (i.namespace, i.key))


def _json_out(data: object) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False))


def _parts(info: KeyInfo) -> list[str]:
    """A key's parts as text: the items of a tuple key, else the key itself."""
    try:
        value = ast.literal_eval(info.key)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return [info.key]
    items = value if isinstance(value, tuple) else (value,)
    return [str(v) for v in items]


def _spans(info: KeyInfo) -> list[dict[str, str]]:
    return [{"from": info.position(a), "to": info.position(b)} for a, b in info.ledger.intervals()]


@click.group()
@click.version_option(version=_version(), prog_name="rangememo", message="%(prog)s %(version)s")
@click.option(
    "--dir",
    "directory",
    type=str,
    default=None,
    help="The store: a directory or s3://bucket/prefix "
    "(default: $RANGEMEMO_CACHE_DIR or the user cache dir).",
)
@click.pass_context
def main(ctx: click.Context, directory: str | None) -> None:
    """Inspect and maintain a rangememo Parquet store."""
    if directory is None:
        ctx.obj = default_cache_dir()
    else:
        ctx.obj = directory if not is_local(directory) else local_path(directory)


@main.command("ls")
@click.argument("namespace", required=False)
@click.pass_context
def ls(ctx: click.Context, namespace: str | None) -> None:
    """List namespaces and keys: rows, covered range, segments, bytes, last write."""
    infos = find(_root(ctx), namespace)
    table = Table(title=f"rangememo store {_e(ctx.obj)}")
    for name, justify in [("namespace", "left"), ("key", "left"), ("rows", "right")]:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for name in ("covered", "segments", "bytes", "last write"):
        table.add_column(name, justify="right" if name in ("segments", "bytes") else "left")
    for info in infos:
        if info.doc is None:
            table.add_row(_e(info.namespace), _e(info.key), "-", f"[red]{_e(info.problem)}[/]")
            continue
        updated = info.updated
        table.add_row(
            _e(info.namespace),
            _e(info.key),
            f"{info.rows:,}",
            _covered(info),
            str(len(info.doc.segments)),
            _size(info.nbytes),
            updated.strftime("%Y-%m-%d %H:%M:%S") if updated else "-",
        )
    console = _console()
    console.print(table)
    namespaces = len({i.namespace for i in infos})
    console.print(f"{_count(namespaces, 'namespace')}, {_count(len(infos), 'key')}")


@main.command()
@click.argument("namespace")
@click.argument("key")
@click.pass_context
def show(ctx: click.Context, namespace: str, key: str) -> None:
    """One key: its coverage with states and fetch times, the gaps, the segments."""
    infos = find(_root(ctx), namespace, key)
    if not infos:
        raise click.ClickException(f"no key {key!r} in namespace {namespace!r}")
    if len(infos) > 1:
        names = ", ".join(f"{i.namespace} {i.key}" for i in infos)
        raise click.ClickException(f"{len(infos)} keys match: {names}")
    info, console = infos[0], _console()
    console.print(f"[bold]{_e(info.namespace)}[/] {_e(info.key)}\n{_e(info.where)}")
    if info.doc is None:
        raise click.ClickException(info.problem)  # click prints it as is
    schema = info.doc.schema or {}
    console.print(f"kind {schema.get('kind')}, axis {_e(schema.get('axis'))}, rows {info.rows:,}")
    coverage = Table(title="coverage")
    for name in ("from", "to", "state", "fetched"):
        coverage.add_column(name)
    states = info.ledger.states()
    for s in states:
        fetched = "-" if not s.fetched else f"{dt.datetime.fromtimestamp(s.fetched):%Y-%m-%d %H:%M}"
        coverage.add_row(info.position(s.lo), info.position(s.hi), s.state, fetched)
    console.print(coverage)
    gaps = Table(title="gaps")
    gaps.add_column("from")
    gaps.add_column("to")
    pieces = info.ledger.intervals()
    for (_, a), (b, _) in itertools.pairwise(pieces):
        gaps.add_row(info.position(a), info.position(b))
    console.print(gaps if len(pieces) > 1 else "gaps: none")
    segments = Table(title="segments (oldest first; newest wins)")
    for name in ("file", "rows", "first", "last", "bytes"):
        segments.add_column(name)
    for seg in info.doc.segments:
        first, last = (info.position(seg.first), info.position(seg.last)) if seg.rows else ("", "")
        segments.add_row(seg.file or "(no rows)", f"{seg.rows:,}", first, last, _size(seg.nbytes))
    console.print(segments)


@main.command("verify")
@click.pass_context
def verify_command(ctx: click.Context) -> None:
    """Read every ledger and segment; exit 1 naming any problem."""
    report, console = verify(_root(ctx)), _console()
    for where, note in report.notes:
        console.print(f"[yellow]note[/] {_e(where)}: {_e(note)}")
    for where, problem in report.problems:
        console.print(f"[red]PROBLEM[/] {_e(where)}: {_e(problem)}")
    if report.problems:
        problems = _count(len(report.problems), "problem")
        console.print(f"{problems} in {_count(report.checked, 'key')}")
        ctx.exit(1)
    console.print(f"OK: {_count(report.checked, 'key')} verified")


@main.command()
@click.option(
    "--grace",
    default=60.0,
    show_default=True,
    help="Spare orphans and temp files younger than this (s): a writer may be at work.",
)
@click.pass_context
def gc(ctx: click.Context, grace: float) -> None:
    """Free replaced parts no other process reads (now), orphans and temp files."""
    removed, console = collect(_root(ctx), grace), _console()
    for path in removed:
        console.print(f"removed {_e(path)}")
    console.print(f"{_count(len(removed), 'file')} removed")


@main.command()
@click.option("--grace", default=0.0, hidden=True, help="Deprecated, ignored.")
@click.pass_context
def compact(ctx: click.Context, grace: float) -> None:
    """Merge each key's segments into large ones (readers are never blocked)."""
    keys, merged = compact_all(_root(ctx), grace)
    _console().print(f"compacted {_count(keys, 'key')}: {_count(merged, 'segment')} merged away")


@main.command()
@click.argument("namespace", required=False)
@click.argument("key", required=False)
@click.option("--yes", "-y", is_flag=True, help="Do not ask before clearing everything.")
@click.pass_context
def clear(ctx: click.Context, namespace: str | None, key: str | None, yes: bool) -> None:
    """Delete everything, one namespace, or one key."""
    root = _root(ctx)
    if namespace is None:
        if not yes:
            click.confirm(f"Delete every cached entry in {root.url}?", abort=True)
        clear_store(root)
        _console().print(f"cleared {_e(root.url)}")
        return
    infos = find(root, namespace, key)
    names = sorted({i.namespace for i in infos})
    if not infos:
        raise click.ClickException(f"nothing matches {namespace!r}" + (f" {key!r}" if key else ""))
    if key is None and len(names) > 1:
        raise click.ClickException(f"{len(names)} namespaces match: {', '.join(names)}")
    count = clear_keys(root, infos)
    _console().print(f"cleared {_count(count, 'key')}")
