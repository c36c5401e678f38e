"""``rangememo``: look into a store directory, check it, tidy it, draw it.

::

    rangememo [--dir PATH] ls [NAMESPACE] [--json]      namespaces and keys: rows, coverage, bytes
    rangememo [--dir PATH] show NAMESPACE KEY... [--json]  one key: coverage, gaps, segments
    rangememo [--dir PATH] verify [--json]              read everything; exit 1 naming any problem
    rangememo [--dir PATH] repair [--json]              quarantine damaged files, forget ranges
    rangememo [--dir PATH] plot [NAMESPACE] -o FILE     coverage timeline as PNG or SVG
    rangememo [--dir PATH] gc                           free replaced parts, orphans, temp files
    rangememo [--dir PATH] compact                      merge each key's segments
    rangememo [--dir PATH] clear [NAMESPACE [KEY]]

``--dir`` defaults to the default store (``$RANGEMEMO_CACHE_DIR``, else the
user cache directory). NAMESPACE is a namespace name (``pkg.mod.fn@v0``), its
directory, or a prefix of either; KEY is the key's repr as ``ls`` shows it, a
prefix of its hash, or its parts (``AAPL D``).
"""

from __future__ import annotations

import click

from .._stores.parquet.location import is_local, local_path
from .._stores.parquet.store import default_cache_dir
from ._common import package_version
from ._look import ls, show
from ._plot import plot
from ._tidy import clear, compact, gc, repair_command, verify_command

__all__ = ["main"]


class _Group(click.Group):
    """Reports a store it cannot read or write (permissions, a file where a folder
    belongs, a full disk) as one line naming the path, exit 1, not a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except OSError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=_Group)
@click.version_option(
    version=package_version(), prog_name="rangememo", message="%(prog)s %(version)s"
)
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


for _command in (ls, show, verify_command, repair_command, plot, gc, compact, clear):
    main.add_command(_command)
