"""Text blocks of the latency report, shared by one-process and ``--scheduler`` runs: the
percentile table (hops in chain order, each column in one unit), skipped records, per-hop
counts."""

from __future__ import annotations

from typing import Any

from .._model._units import format_ns, format_ns_column, text_table
from ..latency import BadRecord, HopCount

__all__ = ["bad_lines", "hop_lines", "summary_lines"]


def _chain_key(order: list[str]) -> Any:
    """Sort key for summary rows: the hop's place in the chain (``order``: consecutive hops
    in stage order, end-to-end last; unknown hops after, by name), all pairs first, then
    the node pairs by name."""
    rank = {hop: i for i, hop in enumerate(order)}

    def key(row: dict[str, Any]) -> tuple[int, str, bool, str, str]:
        hop = str(row["hop"])
        return (rank.get(hop, len(rank)), hop, row["src_node"] != "*", str(row["src_node"]),
                str(row["dst_node"]))

    return key


def summary_lines(rows: list[dict[str, Any]], order: list[str]) -> list[str]:
    """The percentile table: hops in chain order, each column in one unit, right-aligned."""
    rows = sorted(rows, key=_chain_key(order))
    header = ["hop", "nodes", "n", "P50", "P90", "P99", "max"]
    columns = []
    for q in ("p50", "p90", "p99", "max"):
        lows = [float(row[f"{q}_low_ns"]) for row in rows]
        highs = [float(row[f"{q}_high_ns"]) for row in rows]
        columns.append(format_ns_column([(lo + hi) / 2 for lo, hi in zip(lows, highs,
                                                                        strict=True)],
                                        [(hi - lo) / 2 for lo, hi in zip(lows, highs,
                                                                        strict=True)]))
    cells = []
    for i, row in enumerate(rows):
        nodes = "all pairs" if row["src_node"] == "*" else f"{row['src_node']}->{row['dst_node']}"
        cells.append([str(row["hop"]), nodes, f"{row['count']:.0f}",
                      *(col[i] for col in columns)])
    return text_table(header, cells, left=(0, 1))


def bad_lines(bad: tuple[BadRecord, ...]) -> list[str]:
    """The first ten skipped records, and how many more."""
    lines = [f"  skipped {b}" for b in bad[:10]]
    if len(bad) > 10:
        lines.append(f"  ... and {len(bad) - 10} more malformed records")
    return lines


def hop_lines(hops: tuple[HopCount, ...]) -> list[str]:
    """Per hop (chain order): negative raw latencies, order unknown, inconsistent, and the
    median bound beside the tables-only one when causality tightened it."""
    lines = ["per hop: raw < 0 = negative raw latency (local clocks as they are; never "
             "clamped), order unknown = interval straddles 0"]
    width = max((len(h.hop) for h in hops), default=0)
    for h in hops:
        extra = f", {h.inconsistent} INCONSISTENT" if h.inconsistent else ""
        tight = ""
        if h.median_width_ns < h.median_table_width_ns:
            tight = (f", median bound ±{format_ns(h.median_width_ns / 2)} "
                     f"(tables only ±{format_ns(h.median_table_width_ns / 2)})")
        lines.append(f"  {h.hop:<{width}}  raw < 0: {h.negative_raw}/{h.requests}, "
                     f"order unknown: {h.order_unknown}{extra}{tight}")
    return lines
