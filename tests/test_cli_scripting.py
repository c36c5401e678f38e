"""The ``rangememo`` command for scripts: --version, python -m, --json, key lookup by parts,
sorted keys, non-store directories, ``repair`` and ``plot``; against real store directories."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import warnings
import xml.etree.ElementTree as ET
from typing import Any

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal
from test_cli import bars_fn, day, keydir, run, seg_files
from test_cli import store as store  # the fixture: AAPL (two pieces), MSFT, eth

from rangememo import CacheWarning, ParquetStore, range_cached
from rangememo.testing import make_bars


def test_version_names_the_installed_package():
    out = run(None, "--version")
    assert out.exit_code == 0
    assert out.output.strip() == f"rangememo {importlib.metadata.version('rangememo')}"


def test_python_dash_m_runs_the_command(store):
    """``python -m rangememo`` is the same command, in a real subprocess."""
    cmd = [sys.executable, "-m", "rangememo", "--dir", str(store), "ls", "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert [k["parts"] for k in json.loads(done.stdout)["keys"]] == [["AAPL"], ["MSFT"], ["eth"]]
    version = subprocess.run(
        [sys.executable, "-m", "rangememo", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert version.returncode == 0 and version.stdout.startswith("rangememo ")


def test_importing_the_cli_never_loads_matplotlib():
    code = "import sys, rangememo, rangememo._cli; print('matplotlib' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


# -- --json --------------------------------------------------------------------------------


def test_ls_json_has_sorted_keys_rows_and_exclusive_ends(store):
    data = json.loads(run(store, "ls", "--json").output)
    assert data["schema"] == 1
    keys = {k["key"]: k for k in data["keys"]}
    assert [k["key"] for k in data["keys"]] == ["('AAPL',)", "('MSFT',)", "('eth',)"]
    aapl = keys["('AAPL',)"]
    rows = len(make_bars("AAPL", day(2), day(10))) + len(make_bars("AAPL", day(20), day(31)))
    assert aapl["namespace"] == "app.bars@v0" and aapl["rows"] == rows and aapl["segments"] == 2
    # Called closed="both" (the default) for 2..10 and 20..31: the ends shown are exclusive.
    assert aapl["covered"] == [
        {"from": "2024-01-02", "to_exclusive": "2024-01-11"},
        {"from": "2024-01-20", "to_exclusive": "2024-02-01"},
    ]
    assert aapl["hash"] == keydir(store, "AAPL").name and aapl["problem"] is None
    assert keys["('eth',)"]["covered"] == [{"from": 100, "to_exclusive": 200}]
    assert pd.Timestamp(aapl["updated"]).tzinfo is not None


def test_keys_are_listed_sorted_whatever_the_order_they_were_made(tmp_path):
    bars = bars_fn(tmp_path)
    for symbol in ("ZZZ", "AAA", "MMM"):
        bars(symbol, day(2), day(3))
    data = json.loads(run(tmp_path, "ls", "--json").output)
    assert [k["parts"] for k in data["keys"]] == [["AAA"], ["MMM"], ["ZZZ"]]
    table = run(tmp_path, "ls").output
    assert table.index("AAA") < table.index("MMM") < table.index("ZZZ")
    assert "to exclusive" in table


def test_show_json_coverage_gaps_and_segments(store):
    data = json.loads(run(store, "show", "app.bars", "AAPL", "--json").output)
    assert data["key"] == "('AAPL',)" and data["parts"] == ["AAPL"]
    assert [(c["from"], c["to_exclusive"], c["state"]) for c in data["coverage"]] == [
        ("2024-01-02", "2024-01-11", "final"),
        ("2024-01-20", "2024-02-01", "final"),
    ]
    assert all(pd.Timestamp(c["fetched"]).tzinfo is not None for c in data["coverage"])
    assert data["gaps"] == [{"from": "2024-01-11", "to_exclusive": "2024-01-20"}]
    rows = len(make_bars("AAPL", day(2), day(10))) + len(make_bars("AAPL", day(20), day(31)))
    assert sum(s["rows"] for s in data["segments"]) == data["rows"] == rows
    # Segments name their first and last row (inclusive): the last bar of the first call.
    last_bar = make_bars("AAPL", day(2), day(10)).index[-1]
    assert data["segments"][0]["last"] == str(last_bar.date())


def test_verify_json_ok_and_damaged(store):
    healthy = run(store, "verify", "--json")
    assert healthy.exit_code == 0 and json.loads(healthy.output)["ok"] is True
    assert json.loads(healthy.output)["checked"] == 3
    seg = seg_files(keydir(store, "MSFT"))[0]
    seg.write_bytes(seg.read_bytes()[:100])
    damaged = run(store, "verify", "--json")
    data = json.loads(damaged.output)
    assert damaged.exit_code == 1 and data["ok"] is False
    (problem,) = data["problems"]
    assert "('MSFT',)" in problem["where"] and seg.name in problem["problem"]


# -- show by parts, suggestions ---------------------------------------------------------


def test_show_finds_a_key_by_its_parts(tmp_path):
    @range_cached(
        key=("symbol", "freq"), step="1D", store=ParquetStore(tmp_path), namespace="app.m"
    )
    def bars(symbol: str, freq: str, start: Any, end: Any) -> pd.DataFrame:
        return make_bars(symbol, start, end)

    bars("AAPL", "D", day(2), day(5))
    bars("AAPL", "W", day(2), day(5))
    by_parts = run(tmp_path, "show", "app.m", "AAPL", "D")
    assert by_parts.exit_code == 0, by_parts.output
    assert "('AAPL', 'D')" in by_parts.output and "'W'" not in by_parts.output
    assert run(tmp_path, "show", "app.m", "('AAPL', 'D')").output == by_parts.output
    ambiguous = run(tmp_path, "show", "app.m", "AAPL")
    assert ambiguous.exit_code == 1 and "did you mean" in ambiguous.output


def test_show_suggests_near_keys_and_namespaces(store):
    typo = run(store, "show", "app.bars", "AAPLL")
    assert typo.exit_code == 1
    assert "no key 'AAPLL'" in typo.output and "did you mean ('AAPL',)" in typo.output
    nothing = run(store, "show", "app.bars", "QQQQQQQQQQ")
    assert nothing.exit_code == 1 and "did you mean" not in nothing.output
    ns = run(store, "show", "app.bras", "AAPL")
    assert ns.exit_code == 1 and "app.bars@v0" in ns.output


# -- not a store ----------------------------------------------------------------------------


def test_verify_and_repair_refuse_a_directory_that_is_not_a_store(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"\xff\xd8")
    (tmp_path / "notes.txt").write_text("hello")
    for command in ("verify", "repair"):
        out = run(tmp_path, command)
        assert out.exit_code == 1 and "not a rangememo store" in out.output
    assert (tmp_path / "photos" / "cat.jpg").exists()


# -- repair ---------------------------------------------------------------------------------


def test_repair_quarantines_and_the_next_call_refetches_exactly_that_range(store):
    kdir = keydir(store, "AAPL")
    first, second = seg_files(kdir)
    first.write_bytes(first.read_bytes()[:100])
    out = run(store, "repair")
    assert out.exit_code == 0, out.output
    assert first.name in out.output and "1 damaged file quarantined" in out.output
    assert not first.exists() and second.exists()
    moved = [p for p in store.rglob(f"{first.name}*") if ".quarantine" in p.parts]
    assert len(moved) == 1 and moved[0].is_relative_to(store)
    assert run(store, "verify").exit_code == 0
    calls: list[Any] = []
    bars = bars_fn(store, calls)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)  # repaired: nothing left to warn about
        got = bars("AAPL", day(2), day(10))
        again = bars("AAPL", day(20), day(31))
    assert calls == [("AAPL", day(2), day(10))]
    assert_frame_equal(got, make_bars("AAPL", day(2), day(10)))
    assert_frame_equal(again, make_bars("AAPL", day(20), day(31)))
    assert "0 damaged files quarantined" in run(store, "repair").output


def test_repair_of_a_damaged_log_starts_the_key_afresh(store):
    kdir = keydir(store, "MSFT")
    for record in (kdir / "log").iterdir():
        record.write_bytes(record.read_bytes()[:-10])
    data = json.loads(run(store, "repair", "--json").output)
    assert len(data["quarantined"]) == 1 and "log" in data["quarantined"][0]["file"]
    calls: list[Any] = []
    got = bars_fn(store, calls)("MSFT", day(2), day(5))
    assert calls == [("MSFT", day(2), day(5))]
    assert_frame_equal(got, make_bars("MSFT", day(2), day(5)))


# -- plot -----------------------------------------------------------------------------------


def test_plot_png_and_svg_one_group_per_key(store, tmp_path):
    png = tmp_path / "cov.png"
    out = run(store, "plot", "app.bars", "-o", str(png))
    assert out.exit_code == 0, out.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = tmp_path / "cov.svg"
    assert run(store, "plot", "app.bars", "-o", str(svg), "--colour-by", "fetched").exit_code == 0
    ids = [el.get("id", "") for el in ET.parse(svg).iter()]
    keys = sorted(i for i in ids if i.startswith("rangememo-key-"))
    want = sorted(f"rangememo-key-{keydir(store, s).name}" for s in ("AAPL", "MSFT"))
    assert keys == want
    blocks = tmp_path / "blocks.svg"
    assert run(store, "plot", "app.blocks", "-o", str(blocks)).exit_code == 0


def test_plot_refuses_mixed_axes_and_other_formats(store, tmp_path):
    mixed = run(store, "plot", "-o", str(tmp_path / "all.png"))
    assert mixed.exit_code == 1 and "different axes" in mixed.output
    bad = run(store, "plot", "app.bars", "-o", str(tmp_path / "x.jpg"))
    assert bad.exit_code == 1 and ".png or .svg" in bad.output
    assert not (tmp_path / "all.png").exists()


@pytest.mark.parametrize("colour_by", ["state", "fetched"])
def test_plot_of_a_single_day_key(tmp_path, colour_by):
    bars_fn(tmp_path)("AAPL", day(2), day(2))
    out = tmp_path / "one.png"
    assert run(tmp_path, "plot", "-o", str(out), "--colour-by", colour_by).exit_code == 0
    assert out.stat().st_size > 0


def test_plot_colours_final_and_empty_pieces_by_state(tmp_path):
    """A weekend (no bars: an empty piece) and two weekdays (final): each drawn in its colour."""
    bars = bars_fn(tmp_path)
    assert bars("WKND", day(6), day(7)).empty
    bars("WKND", day(2), day(3))
    states = [
        c["state"]
        for c in json.loads(run(tmp_path, "show", "app.bars", "WKND", "--json").output)["coverage"]
    ]
    assert sorted(states) == ["empty", "final"]
    svg = tmp_path / "states.svg"
    assert run(tmp_path, "plot", "-o", str(svg)).exit_code == 0
    (group,) = [el for el in ET.parse(svg).iter() if el.get("id", "").startswith("rangememo-key-")]
    styles = " ".join(el.get("style", "") for el in group.iter()).lower()
    assert "#999999" in styles and "#009e73" in styles  # empty grey, final green


def test_the_live_edge_is_provisional_in_json_and_in_the_plot(tmp_path):
    """Today's bar is provisional (``settle``): ``show`` says so, ``plot`` draws it orange."""
    today = pd.Timestamp.now().normalize()
    bars_fn(tmp_path)("LIVE", today - pd.Timedelta(days=5), today)
    data = json.loads(run(tmp_path, "show", "app.bars", "LIVE", "--json").output)
    assert data["coverage"][-1]["state"] == "provisional"
    assert data["coverage"][-1]["to_exclusive"] == str((today + pd.Timedelta(days=1)).date())
    svg = tmp_path / "live.svg"
    assert run(tmp_path, "plot", "-o", str(svg), "--color-by", "state").exit_code == 0
    # Looked for in the key's own group: the legend shows every state's colour anyway.
    (group,) = [el for el in ET.parse(svg).iter() if el.get("id", "").startswith("rangememo-key-")]
    assert "#e69f00" in " ".join(el.get("style", "") for el in group.iter()).lower()
