"""``verify``, ``repair``, ``gc``, ``compact``, ``clear``: checking and tidying a store."""

from __future__ import annotations

import warnings

import click

from .._errors import CacheWarning
from .._stores.parquet.maintenance import find
from .._stores.parquet.maintenance import verify as verify_store
from .._stores.parquet.medium import Medium
from .._stores.parquet.repair import is_store, repair
from .._stores.parquet.tidy import clear_keys, clear_store, collect, compact_all
from ._common import JSON_SCHEMA, console, count, esc, json_option, json_out, open_root

__all__ = ["clear", "compact", "gc", "repair_command", "verify_command"]


def _store_root(ctx: click.Context) -> Medium:
    """The store, refusing a directory that holds something else (a typo in ``--dir``)."""
    root = open_root(ctx)
    if not is_store(root):
        raise click.ClickException(f"{ctx.obj} is not a rangememo store (no namespace directory)")
    return root


@click.command("verify")
@json_option
@click.pass_context
def verify_command(ctx: click.Context, as_json: bool) -> None:
    """Read every ledger and segment; exit 1 naming any problem."""
    report = verify_store(_store_root(ctx))
    if as_json:
        json_out(
            {
                "schema": JSON_SCHEMA,
                "store": str(ctx.obj),
                "ok": not report.problems,
                "checked": report.checked,
                "problems": [{"where": w, "problem": p} for w, p in report.problems],
                "notes": [{"where": w, "note": n} for w, n in report.notes],
            }
        )
        ctx.exit(1 if report.problems else 0)
    out = console()
    for where, note in report.notes:
        out.print(f"[yellow]note[/] {esc(where)}: {esc(note)}")
    for where, problem in report.problems:
        out.print(f"[red]PROBLEM[/] {esc(where)}: {esc(problem)}")
    if report.problems:
        problems = count(len(report.problems), "problem")
        out.print(f"{problems} in {count(report.checked, 'key')}; `rangememo repair` fixes them")
        ctx.exit(1)
    out.print(f"OK: {count(report.checked, 'key')} verified")


@click.command("repair")
@json_option
@click.pass_context
def repair_command(ctx: click.Context, as_json: bool) -> None:
    """Quarantine damaged files (into the store's .quarantine/) and forget their ranges,
    so the next call fetches exactly those ranges again."""
    root = _store_root(ctx)
    with warnings.catch_warnings():  # each file is reported below; a warning would repeat it
        warnings.simplefilter("ignore", CacheWarning)
        done = repair(root)
    if as_json:
        json_out(
            {
                "schema": JSON_SCHEMA,
                "store": str(ctx.obj),
                "quarantined": [{"file": f, "problem": p} for f, p in done],
            }
        )
        return
    out = console()
    for file, problem in done:
        out.print(f"quarantined {esc(file)}: {esc(problem)}")
    out.print(f"{count(len(done), 'damaged file')} quarantined")


@click.command()
@click.option(
    "--grace",
    default=60.0,
    show_default=True,
    help="Spare orphans and temp files younger than this (s): a writer may be at work.",
)
@click.pass_context
def gc(ctx: click.Context, grace: float) -> None:
    """Free replaced parts no other process reads (now), orphans and temp files."""
    removed, out = collect(_store_root(ctx), grace), console()
    for path in removed:
        out.print(f"removed {esc(path)}")
    out.print(f"{count(len(removed), 'file')} removed")


@click.command()
@click.option("--grace", default=0.0, hidden=True, help="Deprecated, ignored.")
@click.pass_context
def compact(ctx: click.Context, grace: float) -> None:
    """Merge each key's segments into large ones (readers are never blocked)."""
    keys, merged = compact_all(_store_root(ctx), grace)
    console().print(f"compacted {count(keys, 'key')}: {count(merged, 'segment')} merged away")


@click.command()
@click.argument("namespace", required=False)
@click.argument("key", required=False)
@click.option("--yes", "-y", is_flag=True, help="Do not ask before clearing everything.")
@click.pass_context
def clear(ctx: click.Context, namespace: str | None, key: str | None, yes: bool) -> None:
    """Delete everything, one namespace, or one key."""
    root = _store_root(ctx)
    if namespace is None:
        if not yes:
            click.confirm(f"Delete every cached entry in {root.url}?", abort=True)
        clear_store(root)
        console().print(f"cleared {esc(root.url)}")
        return
    infos = find(root, namespace, key)
    names = sorted({i.namespace for i in infos})
    if not infos:
        raise click.ClickException(f"nothing matches {namespace!r}" + (f" {key!r}" if key else ""))
    if key is None and len(names) > 1:
        raise click.ClickException(f"{len(names)} namespaces match: {', '.join(names)}")
    count_ = clear_keys(root, infos)
    console().print(f"cleared {count(count_, 'key')}")
