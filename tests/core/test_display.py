"""``clocksync skew report`` as people read it: each column in one unit, right-aligned under
its header; skew in ppm down to 1 ppb; plots without offset notation; ``--watch`` stamps
each refresh with the UTC time and ends quietly on Ctrl-C."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from clocksync import Corrector, DirectoryStore, SimClock, SkewRow, fit_table, write_samples
from clocksync.cli import main
from clocksync.cli._skew import (  # tests the private module clocksync.cli._skew
    load_sample_history,
    plot_skew,
    render_skew_table,
)
from clocksync.testing import LinkModel, simulate_samples

T0 = 1_767_225_600 * 10**9

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\b", re.M)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """Two nodes: one 12.345 s off with a flat offset (a plot axis in µs would read
    ``+1.234e7`` with offset notation), one 40 µs off (s beside µs if each cell chose its
    own unit)."""
    base = tmp_path_factory.mktemp("display")
    tables = DirectoryStore(base / "tables")
    rng = np.random.default_rng(5)
    last = 0
    for node, offset, skew in (("far-node", 12.345e9, 0.01), ("b", 40e3, -0.5)):
        clock = SimClock(t0_ns=T0, offset0_ns=offset, skew_ppm=skew, seed=3)
        samples = simulate_samples(clock, node, T0, 600, 4, LinkModel(), rng)
        write_samples(samples, base / f"{node}.parquet")
        tables.write(fit_table(samples))
        last = max(last, int(samples.t_local_ns.max()))
    return base, last


def _column_end(header: str, label: str) -> int:
    start = header.index(label)
    return start + len(label)


def test_columns_one_unit_right_aligned(store: tuple[Path, int]) -> None:
    base, last = store
    res = CliRunner().invoke(main, ["skew", "report", "--store", str(base / "tables"),
                                    "--at-ns", str(last + 10**9)])
    assert res.exit_code == 0, res.output
    header, rule, *rows = res.output.rstrip("\n").split("\n")
    assert set(rule) == {"-"} and len(rows) == 2
    for label in ("offset now ± bound", "skew (1σ)", "resid rms", "samples", "age"):
        end = _column_end(header, label)
        for row in rows:  # right-aligned: every cell ends where its header ends
            assert row[end - 1] != " " and (len(row) == end or row[end] == " "), (label, row)
    offsets = [re.search(r"(-?\d+\.\d+) ± (\d+\.\d+) (\S+)", row) for row in rows]
    assert all(offsets)
    units = {m.group(3) for m in offsets if m}
    assert len(units) == 1, units  # 12 s and 40 µs: the column's one unit
    decimals = {len(m.group(1).split(".")[1]) for m in offsets if m}
    assert len(decimals) == 1  # one number of decimals: decimal points line up
    skews = [re.search(r"([+-]\d+\.\d{4}) ± (\d+\.\d{4}) ppm", row) for row in rows]
    assert all(skews)
    rms = [re.search(r"\b\d+\.\d (ns|µs|ms)\b", row[_column_end(header, "skew (1σ)"):])
           for row in rows]
    assert len({m.group(1) for m in rms if m}) == 1


def test_skew_digits_show_one_ppb() -> None:
    row = SkewRow(node="n", reference="r", status="synchronised", offset_now_ns=1500.0,
                  bound_now_ns=300.0, skew_ppm=-0.0012, sigma_skew_ppm=0.0003,
                  residual_rms_ns=12.0, samples=10, outliers=0, segments=1,
                  last_sample_age_s=3.0, generated_at_ns=0)
    text = render_skew_table([row])
    assert "-0.0012 ± 0.0003 ppm" in text
    one_ppb = render_skew_table([SkewRow(**{**row.to_dict(), "skew_ppm": 0.001,
                                            "sigma_skew_ppm": math.inf})])
    assert "+0.0010 ppm" in one_ppb


def test_watch_stamps_each_refresh_and_ctrl_c_exits_quietly(
        store: tuple[Path, int], monkeypatch: pytest.MonkeyPatch) -> None:
    base, last = store
    calls = []

    def sleep(seconds: float) -> None:
        calls.append(seconds)
        if len(calls) % 2 == 0:
            raise KeyboardInterrupt  # Ctrl-C during every second wait
        if len(calls) > 4:
            raise AssertionError("--watch kept going after Ctrl-C")

    import clocksync.cli._skew as skew_cli  # the module under test: its clock is faked

    monkeypatch.setattr(skew_cli.time, "sleep", sleep)
    res = CliRunner().invoke(main, ["skew", "report", "--store", str(base / "tables"),
                                    "--at-ns", str(last + 10**9), "--watch", "2"])
    assert res.exit_code == 0, res.output
    assert "Aborted" not in res.output
    assert calls == [2.0, 2.0]
    stamps = STAMP.findall(res.output)
    assert len(stamps) == 2  # one per refresh
    assert res.output.count("offset now ± bound") == 2
    res = CliRunner().invoke(main, ["skew", "report", "--store", str(base / "tables"),
                                    "--at-ns", str(last + 10**9), "--watch", "2", "--json"])
    assert res.exit_code == 0 and "Aborted" not in res.output
    docs = [json.loads(line) for line in res.output.splitlines()]
    assert len(docs) == 2 and all(STAMP.match(d["refreshed_at"]) for d in docs)


def test_skew_plot_has_no_offset_notation(store: tuple[Path, int], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="needs matplotlib: pip install 'clocksync[plot]'")
    base, last = store
    corrector = Corrector.from_store(str(base / "tables"))
    history = load_sample_history((str(base / "far-node.parquet"), str(base / "b.parquet")))
    fig = plot_skew(corrector, last + 10**9, tmp_path / "skew.png", history, span_s=600)
    assert (tmp_path / "skew.png").read_bytes()[:4] == b"\x89PNG"
    assert len(fig.axes) == 4
    for ax in fig.axes:
        assert ax.yaxis.get_offset_text().get_text() == "", ax.get_title()
        assert ax.xaxis.get_offset_text().get_text() == "", ax.get_title()


@pytest.mark.slow
def test_watch_real_sigint_exits_zero(store: tuple[Path, int]) -> None:
    """A real Ctrl-C (SIGINT) to the process once a refresh is out: exit 0, stderr empty."""
    import signal
    import subprocess
    import sys

    base, last = store
    exe = Path(sys.executable).parent / "clocksync"
    if not exe.exists():
        pytest.skip(f"no clocksync script beside {sys.executable} (pip install -e .)")
    # A background job inherits SIGINT ignored, and exec keeps it so; a handled signal
    # becomes the default in the new program. No preexec_fn: Python code run between fork
    # and exec also runs the fork handlers of libraries earlier tests loaded (gRPC's wrote
    # "epoll_wait error: Bad file descriptor" to this stderr).
    before = signal.getsignal(signal.SIGINT)
    if before == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(
            [str(exe), "skew", "report", "--store", str(base / "tables"), "--at-ns",
             str(last + 10**9), "--watch", "0.5"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, before)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # blocks until the first refresh is printed
        assert STAMP.match(first), first
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert err == "" and "Aborted" not in out


def test_column_helpers() -> None:
    from clocksync._model._units import (  # tests the private module clocksync._model._units
        format_duration_column,
        format_ns_column,
        text_table,
    )

    cells = format_ns_column([412_300.0, 2_200_000.0, float("nan"), 5.0],
                             [18_000.0, 1_300.0, 1.0, math.inf])
    assert cells == ["412.3 ± 18.0 µs", "2200.0 ± 1.3 µs", "n/a", "0.0 µs ± unbounded"]
    assert format_ns_column([1.5e9, 2.5e9]) == ["1.5 s", "2.5 s"]
    assert format_duration_column([30.0, 7200.0, 90_000.0, math.inf]) == [
        "0.0 h", "2.0 h", "25.0 h", "n/a"]
    lines = text_table(["name", "value"], [["a", "1.0 µs"], ["long-name", "22.5 µs"]])
    assert lines == ["name" + " " * 9 + "value", "-" * 18,
                     "a" + " " * 11 + "1.0 µs", "long-name  22.5 µs"]
