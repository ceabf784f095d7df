"""``--plot``: a histogram of each hop's latency with its bound band, and the windowed P99
with its guaranteed [low, high] band over time (matplotlib, Agg backend, no display)."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .._atomic import atomic_path
from .._errors import InputError

__all__ = ["plot_report"]


def plot_report(hops: pa.Table, windows: pa.Table, path: str | os.PathLike[str]) -> None:
    """Write a PNG: per hop, histogram of midpoints (bars) with the low/high histograms as
    step lines; below, the windowed P99 with its band, per hop (all node pairs)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - depends on the install
        raise InputError("--plot needs matplotlib: pip install 'clocksync[plot]'") from None
    names = sorted(set(hops.column("hop").to_pylist())) if hops.num_rows else []
    fig, axes = plt.subplots(len(names) + 1, 1, figsize=(9, 2.6 * (len(names) + 1)),
                             squeeze=False)
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
        ax.legend(fontsize=7)
    ax = axes[-1, 0]
    if windows.num_rows:
        star = windows.filter(pc.equal(windows.column("src_node"), "*"))
        pairs = windows if not star.num_rows else star
        for name in names:
            sub = pairs.filter(pc.equal(pairs.column("hop"), name))
            if not sub.num_rows:
                sub = windows.filter(pc.equal(windows.column("hop"), name))
            t0 = windows.column("window_start_ns").to_numpy().min()
            t = (sub.column("window_start_ns").to_numpy() - t0) / 1e9
            ax.plot(t, sub.column("p99_ns").to_numpy() / 1e3, label=f"P99 {name}")
            ax.fill_between(t, sub.column("p99_low_ns").to_numpy() / 1e3,
                            sub.column("p99_high_ns").to_numpy() / 1e3, alpha=0.25)
        ax.set_xlabel("window start (s from first window)")
        ax.set_ylabel("P99 (µs)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
