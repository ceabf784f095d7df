"""``--plot``: a histogram of each hop's latency with its bound band, and the windowed P99
with its guaranteed [low, high] band over time (matplotlib's object API, no display and no
global pyplot state).

Axes show plain numbers (no offset or scientific notation such as ``+8e1``); a single
window still draws its P99 as a point with its [low, high] as an error bar.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .._io._atomic import atomic_path
from .._model._errors import InputError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plain_axes", "plot_report"]


def plain_axes(ax: Axes) -> None:
    """Plain tick labels on both axes: no offset (``+8e1``) and no scientific notation."""
    ax.ticklabel_format(axis="both", useOffset=False, style="plain")


def _hop_order(hops: pa.Table, order: Sequence[str] | None) -> list[str]:
    """Hops of the table in ``order`` (chain order), then any others in the table's order
    (the pipeline emits hops in chain order, end-to-end last)."""
    seen = [str(h) for h in pc.unique(hops.column("hop")).to_pylist()] if hops.num_rows else []
    first = [h for h in (order or ()) if h in seen]
    return first + [h for h in seen if h not in first]


def plot_report(hops: pa.Table, windows: pa.Table, path: str | os.PathLike[str],
                order: Sequence[str] | None = None) -> Figure:
    """Write a PNG: per hop (in ``order``, default the table's chain order), histogram of
    midpoints (bars) with the low/high histograms as step lines; below, the windowed P99
    with its band, per hop (all node pairs). Returns the drawn figure."""
    try:
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - depends on the install
        raise InputError("--plot needs matplotlib: pip install 'clocksync[plot]'") from None
    names = _hop_order(hops, order)
    fig = Figure(figsize=(9, 2.6 * (len(names) + 1)))
    axes = fig.subplots(len(names) + 1, 1, squeeze=False)
    for ax, name in zip(axes[:, 0], names, strict=False):
        sub = hops.filter(pc.equal(hops.column("hop"), name))
        mid = sub.column("latency_ns").to_numpy() / 1e3
        low = sub.column("low_ns").to_numpy() / 1e3
        high = sub.column("high_ns").to_numpy() / 1e3
        edges = np.histogram_bin_edges(np.concatenate([low, high]), bins=80)
        ax.hist(mid, bins=edges, color="tab:blue", alpha=0.6, label="midpoint")
        ax.hist(low, bins=edges, histtype="step", color="tab:green", label="low bound")
        ax.hist(high, bins=edges, histtype="step", color="tab:red", label="high bound")
        ax.set_title(f"{name}  (n={len(mid)})", fontsize=9)
        ax.set_xlabel("latency (µs)")
        ax.set_ylabel("requests")
        ax.legend(fontsize=7)
        plain_axes(ax)
    ax = axes[-1, 0]
    ax.set_title("P99 per window, with its guaranteed [low, high]", fontsize=9)
    if windows.num_rows:
        star = windows.filter(pc.equal(windows.column("src_node"), "*"))
        pairs = windows if not star.num_rows else star
        t0 = windows.column("window_start_ns").to_numpy().min()
        for name in names:
            sub = pairs.filter(pc.equal(pairs.column("hop"), name))
            if not sub.num_rows:
                sub = windows.filter(pc.equal(windows.column("hop"), name))
            if not sub.num_rows:
                continue
            t = (sub.column("window_start_ns").to_numpy() - t0) / 1e9
            p99 = sub.column("p99_ns").to_numpy() / 1e3
            lo = sub.column("p99_low_ns").to_numpy() / 1e3
            hi = sub.column("p99_high_ns").to_numpy() / 1e3
            # markers and error bars: one window is a visible point, not an empty line
            yerr = np.maximum(np.stack([p99 - lo, hi - p99]), 0.0)
            ax.errorbar(t, p99, yerr=yerr, fmt="o-", ms=3,
                        capsize=2, lw=1, label=f"P99 {name}")
            if len(t) > 1:
                ax.fill_between(t, lo, hi, alpha=0.2)
        ax.set_xlabel("window start (s from first window)")
        ax.set_ylabel("P99 (µs)")
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no windows", ha="center", va="center", transform=ax.transAxes)
    plain_axes(ax)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    return fig
