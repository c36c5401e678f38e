"""``rangememo plot``: each key's coverage as a timeline, drawn to a PNG or SVG file.

matplotlib is imported inside the command only (the optional ``plot`` extra),
with the Agg backend, so neither ``import rangememo`` nor the other commands load it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from .._stores.parquet.maintenance import KeyInfo, find
from ._common import by_name, console, count, esc, open_root

__all__ = ["plot"]

#: Colours of the states (colour-blind safe: Okabe-Ito).
COLOURS = {"final": "#009E73", "empty": "#999999", "provisional": "#E69F00"}
_INF = 2**62


def _axis(infos: list[KeyInfo]) -> tuple[str, bool] | None:
    """The one axis all keys share (``None``: positions are plain ints)."""
    axes = {tuple((i.doc.schema or {}).get("axis") or ("int", False)) for i in infos if i.doc}
    if len(axes) > 1:
        kinds = ", ".join(sorted(str(a[0]) for a in axes))
        raise click.ClickException(f"keys on different axes ({kinds}); plot one namespace")
    axis = axes.pop() if axes else ("int", False)
    return None if axis[0] == "int" else (str(axis[0]), bool(axis[1]))


def _extent(infos: list[KeyInfo]) -> tuple[int, int]:
    """The finite span drawn: an unbounded piece is cut at the others' ends."""
    ends = [p for i in infos for s in i.ledger.states() for p in (s.lo, s.hi) if abs(p) < _INF]
    if not ends:
        return 0, 1
    lo, hi = min(ends), max(ends)
    return (lo, hi) if hi > lo else (lo, lo + 1)


def _draw(infos: list[KeyInfo], colour_by: str, output: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display; the file is the product
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    axis = _axis(infos)
    lo, hi = _extent(infos)

    def x(pos: int) -> float:
        pos = min(max(pos, lo), hi)
        # matplotlib's date numbers are days since 1970-01-01 (its default epoch).
        return pos / 86_400e9 if axis else float(pos)

    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.4 * len(infos)))
    now = time.time()
    ages = [now - s.fetched for i in infos for s in i.ledger.states() if s.fetched]
    oldest = max(ages, default=1.0) or 1.0
    cmap = matplotlib.colormaps["viridis"]
    for row, info in enumerate(infos):
        states = info.ledger.states()
        bars = [(x(s.lo), max(x(s.hi) - x(s.lo), 0.0)) for s in states]
        if colour_by == "state":
            colours: list[Any] = [COLOURS.get(s.state, "#CC79A7") for s in states]
        else:  # by fetch time: dark = long ago, light = just now
            colours = [
                cmap(1 - (now - s.fetched) / oldest) if s.fetched else "#999999" for s in states
            ]
        coll = ax.broken_barh(bars, (row - 0.4, 0.8), facecolors=colours, edgecolor="black", lw=0.3)
        coll.set_gid(f"rangememo-key-{info.paths.keydir.name}")  # one SVG group per key
    ax.set_yticks(range(len(infos)), [f"{i.namespace} {i.key}" for i in infos], fontsize=8)
    ax.set_ylim(-0.6, len(infos) - 0.4)
    ax.invert_yaxis()
    ax.set_xlim(x(lo), x(hi))
    if axis:
        locator = mdates.AutoDateLocator()  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
        ax.set_xlabel("UTC" if axis[1] else "")
    if colour_by == "state":
        ax.legend(handles=[Patch(color=c, label=s) for s, c in COLOURS.items()], fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(output, format=output.suffix.lstrip(".").lower())
    plt.close(fig)


@click.command()
@click.argument("namespace", required=False)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The file to write: .png or .svg.",
)
@click.option(
    "--colour-by",
    "--color-by",
    "colour_by",
    type=click.Choice(["state", "fetched"]),
    default="state",
    show_default=True,
    help="Colour pieces by state (final, empty, provisional) or by when they were fetched.",
)
@click.pass_context
def plot(ctx: click.Context, namespace: str | None, output: Path, colour_by: str) -> None:
    """Draw the coverage of every key (or one namespace's) as a timeline."""
    if output.suffix.lower() not in (".png", ".svg"):
        raise click.ClickException(f"--output {output}: the name must end in .png or .svg")
    infos = by_name([i for i in find(open_root(ctx), namespace) if i.doc is not None])
    if not infos:
        raise click.ClickException(
            "no readable keys to plot" + (f" in {namespace!r}" if namespace else "")
        )
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise click.ClickException("plot needs matplotlib: pip install 'rangememo[plot]'") from None
    _draw(infos, colour_by, output, f"rangememo store {ctx.obj}")
    console().print(f"wrote {esc(output)}: {count(len(infos), 'key')}")
