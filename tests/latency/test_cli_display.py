"""The readable latency report and its plot: hops in chain order (end-to-end last), each
percentile column in one unit with one number of decimals, right-aligned under its header;
the plot without offset notation and with a P99 panel that shows a single window."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from clocksync.cli import main
from clocksync.latency import (
    DEFAULT_STAGES,
    analyze,
    hop_name,
    hops_of,
    plot_report,
)

from .conftest import World, store_world

CHAIN = [hop_name(a, b) for a, b in hops_of(DEFAULT_STAGES)]
CELL = re.compile(r"^(-?\d+\.(\d+)) ± (\d+\.\d+) (ns|µs|ms|s)$")


@pytest.fixture(scope="module")
def setup(world: World, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return store_world(world, tmp_path_factory.mktemp("display"), 1500, 4)


def summary_table(output: str) -> tuple[str, list[str]]:
    lines = output.split("\n")
    at = next(i for i, line in enumerate(lines) if line.startswith("hop ") and "P99" in line)
    rows = []
    for line in lines[at + 2:]:
        if not line.strip():
            break
        rows.append(line)
    return lines[at], rows


def test_hops_in_chain_order_columns_one_unit_aligned(setup: tuple[Path, Path]) -> None:
    tables, events = setup
    res = CliRunner().invoke(main, ["latency", str(events), "--tables", str(tables)])
    assert res.exit_code == 0, res.output
    header, rows = summary_table(res.output)
    hops = list(dict.fromkeys(row.split()[0] for row in rows))
    assert hops == CHAIN  # not alphabetical: pp_enqueue->pp_exit first, end-to-end last
    assert sorted(CHAIN) != CHAIN
    # all pairs first within a hop
    firsts = [next(r for r in rows if r.startswith(h + " ")) for h in CHAIN]
    assert all("all pairs" in r for r in firsts)
    starts = [header.index(label) for label in ("P50", "P90", "P99", "max")]
    ends = [header.index(label) + len(label) for label in ("P50", "P90", "P99", "max")]
    n_end = header.index(" n ") + 2
    for row in rows:
        assert row[n_end - 1].isdigit() and row[n_end] == " "  # counts right-aligned
    for j, end in enumerate(ends):
        cells = []
        for row in rows:
            # right-aligned: the cell ends where its header label ends
            assert row[end - 1] != " " and (len(row) == end or row[end] == " "), row
            begin = (ends[j - 1] if j else n_end)
            cells.append(row[begin:end].strip())
        matches = [CELL.match(c) for c in cells]
        assert all(matches), cells
        units = {m.group(4) for m in matches if m}
        decimals = {len(m.group(2)) for m in matches if m}
        assert len(units) == 1, (j, units)  # one unit for the whole column
        assert len(decimals) == 1, (j, decimals)  # decimal points line up
        assert starts[j] < end


def test_given_chain_order_is_followed(setup: tuple[Path, Path]) -> None:
    """With a chain given in another order, the report follows it (not the alphabet)."""
    tables, events = setup
    res = CliRunner().invoke(main, ["latency", str(events), "--tables", str(tables),
                                    "--stages", "pp_exit,bifrost_arrive,bifrost_done"])
    assert res.exit_code == 0, res.output
    _, rows = summary_table(res.output)
    hops = list(dict.fromkeys(row.split()[0] for row in rows))
    assert hops == ["pp_exit->bifrost_arrive", "bifrost_arrive->bifrost_done",
                    "pp_exit->bifrost_done"]


def test_plot_one_window_no_offset_text(world: World, setup: tuple[Path, Path],
                                        tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="needs matplotlib: pip install 'clocksync[plot]'")
    from clocksync.latency import read_events_file

    _, events = setup
    report = analyze(read_events_file(events), world.corrector, window_s=600.0)
    starts = set(report.windows.column("window_start_ns").to_pylist())
    assert len(starts) == 1  # the whole input in one window
    png = tmp_path / "latency.png"
    fig = plot_report(report.result.table, report.windows, png,
                      order=[h.hop for h in report.result.hops])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    titles = [ax.get_title() for ax in fig.axes]
    assert [t.split()[0] for t in titles[:-1]] == CHAIN
    for ax in fig.axes:
        assert ax.yaxis.get_offset_text().get_text() == "", ax.get_title()
        assert ax.xaxis.get_offset_text().get_text() == "", ax.get_title()
    p99 = fig.axes[-1]
    points = [line for line in p99.lines
              if len(line.get_ydata()) == 1 and line.get_marker() == "o"]
    assert len(points) == len(CHAIN)  # one visible point per hop, not an empty line
    low, high = p99.get_ylim()
    for line in points:
        assert low < float(np.asarray(line.get_ydata())[0]) < high


def test_plot_through_cli_single_window(setup: tuple[Path, Path], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="needs matplotlib: pip install 'clocksync[plot]'")
    tables, events = setup
    png = tmp_path / "p.png"
    res = CliRunner().invoke(main, ["latency", str(events), "--tables", str(tables),
                                    "--window", "10min", "--plot", str(png)])
    assert res.exit_code == 0, res.output
    assert png.stat().st_size > 1000
