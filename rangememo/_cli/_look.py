"""``ls`` and ``show``: what a store holds, as tables or as JSON."""

from __future__ import annotations

import datetime as dt
import difflib
import itertools

import click
from rich.table import Table

from .._stores.parquet.maintenance import KeyInfo, find
from ._common import (
    JSON_SCHEMA,
    by_name,
    console,
    count,
    covered,
    esc,
    jpos,
    json_option,
    json_out,
    key_json,
    last_write,
    open_root,
    parts,
    size,
    spans,
    when,
)

__all__ = ["ls", "show"]


def _ls_json(ctx: click.Context, infos: list[KeyInfo]) -> None:
    keys = []
    for info in infos:
        keys.append(
            {
                **key_json(info),
                "rows": info.rows,
                "segments": len(info.doc.segments) if info.doc else 0,
                "bytes": info.nbytes,
                "covered": spans(info),
                "updated": when(last_write(info)),
                "problem": info.problem or None,
            }
        )
    json_out({"schema": JSON_SCHEMA, "store": str(ctx.obj), "keys": keys})


@click.command("ls")
@click.argument("namespace", required=False)
@json_option
@click.pass_context
def ls(ctx: click.Context, namespace: str | None, as_json: bool) -> None:
    """List namespaces and keys: rows, covered range, segments, bytes, last write."""
    infos = by_name(find(open_root(ctx), namespace))
    if as_json:
        _ls_json(ctx, infos)
        return
    table = Table(title=f"rangememo store {esc(ctx.obj)}")
    for name, justify in [("namespace", "left"), ("key", "left"), ("rows", "right")]:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for name in ("covered (to exclusive)", "segments", "bytes", "last write"):
        table.add_column(name, justify="right" if name in ("segments", "bytes") else "left")
    for info in infos:
        if info.doc is None:
            table.add_row(esc(info.namespace), esc(info.key), "-", f"[red]{esc(info.problem)}[/]")
            continue
        updated = last_write(info)
        table.add_row(
            esc(info.namespace),
            esc(info.key),
            f"{info.rows:,}",
            covered(info),
            str(len(info.doc.segments)),
            size(info.nbytes),
            f"{dt.datetime.fromtimestamp(updated):%Y-%m-%d %H:%M:%S}" if updated else "-",
        )
    out = console()
    out.print(table)
    namespaces = len({i.namespace for i in infos})
    out.print(f"{count(namespaces, 'namespace')}, {count(len(infos), 'key')}")


def _lookup(ctx: click.Context, namespace: str, key: tuple[str, ...]) -> KeyInfo:
    """One key by its repr, a prefix of its hash, or its parts (``AAPL D``)."""
    root = open_root(ctx)
    matches = find(root, namespace, key[0]) if len(key) == 1 else []
    candidates = by_name(find(root, namespace))
    if not matches:
        matches = [i for i in candidates if parts(i) == list(key)]
    if len(matches) == 1:
        return matches[0]
    wanted = " ".join(key)
    if matches:
        names = ", ".join(f"{i.namespace} {i.key}" for i in matches)
        raise click.ClickException(f"{len(matches)} keys match {wanted!r}: {names}")
    if not candidates:
        known = sorted({i.namespace for i in find(root)})
        near = difflib.get_close_matches(namespace, known, n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        raise click.ClickException(f"no namespace {namespace!r}{hint}")
    # Compared both as the repr and as the parts joined by spaces, whichever the user typed.
    spelled = {i.key: i for i in candidates} | {" ".join(parts(i)): i for i in candidates}
    near = difflib.get_close_matches(wanted, list(spelled), n=3, cutoff=0.4)
    reprs = list(dict.fromkeys(spelled[n].key for n in near))
    hint = f"; did you mean {', '.join(reprs)}?" if reprs else ""
    raise click.ClickException(f"no key {wanted!r} in namespace {namespace!r}{hint}")


def _show_json(info: KeyInfo) -> None:
    assert info.doc is not None
    schema = info.doc.schema or {}
    pieces = info.ledger.intervals()
    json_out(
        {
            "schema": JSON_SCHEMA,
            **key_json(info),
            "where": info.where,
            "kind": schema.get("kind"),
            "axis": schema.get("axis"),
            "rows": info.rows,
            "coverage": [
                {
                    "from": jpos(info, s.lo),
                    "to_exclusive": jpos(info, s.hi),
                    "state": s.state,
                    "fetched": when(s.fetched),
                }
                for s in info.ledger.states()
            ],
            "gaps": [
                {"from": jpos(info, a), "to_exclusive": jpos(info, b)}
                for (_, a), (b, _) in itertools.pairwise(pieces)
            ],
            "segments": [
                {
                    "file": seg.file,
                    "rows": seg.rows,
                    "first": jpos(info, seg.first) if seg.rows else None,
                    "last": jpos(info, seg.last) if seg.rows else None,
                    "bytes": seg.nbytes,
                }
                for seg in info.doc.segments
            ],
        }
    )


@click.command()
@click.argument("namespace")
@click.argument("key", nargs=-1, required=True)
@json_option
@click.pass_context
def show(ctx: click.Context, namespace: str, key: tuple[str, ...], as_json: bool) -> None:
    """One key: its coverage with states and fetch times, the gaps, the segments.

    KEY is the key's repr as ``ls`` shows it, a prefix of its hash, or its parts
    (``rangememo show app.bars AAPL D``).
    """
    info = _lookup(ctx, namespace, key)
    if info.doc is None:
        raise click.ClickException(f"{info.namespace} {info.key}: {info.problem}")
    if as_json:
        _show_json(info)
        return
    out = console()
    out.print(f"[bold]{esc(info.namespace)}[/] {esc(info.key)}\n{esc(info.where)}")
    schema = info.doc.schema or {}
    out.print(f"kind {schema.get('kind')}, axis {esc(schema.get('axis'))}, rows {info.rows:,}")
    coverage = Table(title="coverage")
    for name in ("from", "to (exclusive)", "state", "fetched"):
        coverage.add_column(name)
    for s in info.ledger.states():
        fetched = "-" if not s.fetched else f"{dt.datetime.fromtimestamp(s.fetched):%Y-%m-%d %H:%M}"
        coverage.add_row(info.position(s.lo), info.position(s.hi), s.state, fetched)
    out.print(coverage)
    gaps = Table(title="gaps")
    gaps.add_column("from")
    gaps.add_column("to (exclusive)")
    pieces = info.ledger.intervals()
    for (_, a), (b, _) in itertools.pairwise(pieces):
        gaps.add_row(info.position(a), info.position(b))
    out.print(gaps if len(pieces) > 1 else "gaps: none")
    segments = Table(title="segments (oldest first; newest wins)")
    for name in ("file", "rows", "first row", "last row", "bytes"):
        segments.add_column(name)
    for seg in info.doc.segments:
        first, last = (info.position(seg.first), info.position(seg.last)) if seg.rows else ("", "")
        segments.add_row(seg.file or "(no rows)", f"{seg.rows:,}", first, last, size(seg.nbytes))
    out.print(segments)
