"""Mergeable percentile sketches that keep the guarantee.

Per ``(hop, src_node, dst_node)``, three log-bucket histograms (DDSketch-style, relative
accuracy ``α``): of the lows, the midpoints and the highs. Buckets are order-preserving
intervals of the value axis (negative values have their own buckets, ``|v| < 1 ns`` one
bucket), so the exact q-quantile of the lows lies in the bucket where the cumulative weight
reaches ``q``: that bucket's *lower* edge is a guaranteed lower bound of the true quantile;
symmetrically the *upper* edge of the highs' bucket is a guaranteed upper bound. Merging two
sketches adds their counts, so partitions (Dask, several processes, several days) combine
exactly; the price: each end of an interval moves out by at most one bucket, a factor
``γ = (1 + α)/(1 - α) ≈ 1 + 2α``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from ._arrow import dictionary_codes, shared_codes
from ._percentiles import QUANTILES

__all__ = ["QuantileSketch"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Group = tuple[str, str, str]
Counts = dict[int, float]
_EDGE_SLACK = 1e-12


def _keys(values: F64, log_gamma: float) -> I64:
    """Bucket key of each value (order-preserving; 0 = ``(-1, 1)`` ns)."""
    mag = np.abs(values)
    big = mag >= 1.0
    idx = np.zeros(len(values), dtype=np.int64)
    idx[big] = 1 + np.floor(np.log(mag[big]) / log_gamma).astype(np.int64)
    return np.where(values < 0, -idx, idx)


@dataclass
class QuantileSketch:
    """Mergeable sketch of hop latencies with guaranteed quantile intervals."""

    accuracy: float = 0.01
    groups: dict[Group, tuple[Counts, Counts, Counts]] = field(default_factory=dict)

    @property
    def gamma(self) -> float:
        return (1 + self.accuracy) / (1 - self.accuracy)

    def _lower_edge(self, key: int) -> float:
        if key > 0:
            edge = float(self.gamma ** (key - 1))
        else:
            edge = -float(self.gamma ** (-key)) if key < 0 else -1.0
        return edge - _EDGE_SLACK * abs(edge)  # floating-point rounding of the bucketing

    def _upper_edge(self, key: int) -> float:
        if key > 0:
            edge = float(self.gamma ** key)
        else:
            edge = -float(self.gamma ** (-key - 1)) if key < 0 else 1.0
        return edge + _EDGE_SLACK * abs(edge)

    @classmethod
    def from_hops(cls, hops: pa.Table, accuracy: float = 0.01) -> QuantileSketch:
        """Sketch a per-request hop table (uses ``weight`` when present)."""
        sketch = cls(accuracy)
        if not hops.num_rows:
            return sketch
        log_gamma = math.log(sketch.gamma)
        hop_c, hop_d = dictionary_codes(hops.column("hop"))
        src_c, dst_c, nodes = shared_codes(hops.column("src_node"), hops.column("dst_node"))
        n_nodes = len(nodes)
        group = (hop_c * n_nodes + src_c) * n_nodes + dst_c
        weight = (hops.column("weight").to_numpy().astype(np.float64)
                  if "weight" in hops.column_names else np.ones(hops.num_rows))
        names_h, names_n = hop_d.to_pylist(), nodes.to_pylist()
        cols = [hops.column(c).to_numpy().astype(np.float64)
                for c in ("low_ns", "latency_ns", "high_ns")]
        per_group: dict[Group, list[Counts]] = {}
        for j, values in enumerate(cols):
            keys = _keys(values, log_gamma)
            pairs, inverse = np.unique(np.stack([group, keys], axis=1), axis=0,
                                       return_inverse=True)
            sums = np.bincount(inverse.reshape(-1), weights=weight, minlength=len(pairs))
            for (g, k), w in zip(pairs.tolist(), sums.tolist(), strict=True):
                h, rest = divmod(g, n_nodes * n_nodes)
                name = (names_h[h], names_n[rest // n_nodes], names_n[rest % n_nodes])
                per_group.setdefault(name, [{}, {}, {}])[j][k] = w
        sketch.groups = {g: (c[0], c[1], c[2]) for g, c in per_group.items()}
        return sketch

    def merge(self, other: QuantileSketch) -> QuantileSketch:
        """A new sketch holding both (same accuracy required)."""
        if other.accuracy != self.accuracy:
            raise ValueError("QuantileSketch.merge: sketches of different accuracy")
        out = QuantileSketch(self.accuracy, {g: (dict(a), dict(b), dict(c))
                                             for g, (a, b, c) in self.groups.items()})
        for g, parts in other.groups.items():
            mine = out.groups.setdefault(g, ({}, {}, {}))
            for dst, src in zip(mine, parts, strict=True):
                for k, w in src.items():
                    dst[k] = dst.get(k, 0.0) + w
        return out

    def _bucket(self, counts: Counts, q: float) -> int:
        keys = sorted(counts)
        cum = np.cumsum([counts[k] for k in keys])
        i = int(np.searchsorted(cum, q * cum[-1] * (1 - 1e-12), side="left"))
        return keys[min(i, len(keys) - 1)]

    def percentiles(self) -> pa.Table:
        """Rows like :func:`percentile_table` (``count`` = weight sum): ``pXX_low_ns`` and
        ``pXX_high_ns`` are guaranteed; ``pXX_ns`` is the midpoints' bucket centre."""
        rows = []
        for (hop, src, dst), (lows, mids, highs) in sorted(self.groups.items()):
            row: dict[str, object] = {"hop": hop, "src_node": src, "dst_node": dst,
                                      "count": float(sum(mids.values()))}
            for name, q in QUANTILES:
                m = self._bucket(mids, q)
                row[f"{name}_ns"] = (self._lower_edge(m) + self._upper_edge(m)) / 2
                row[f"{name}_low_ns"] = self._lower_edge(self._bucket(lows, q))
                row[f"{name}_high_ns"] = self._upper_edge(self._bucket(highs, q))
            rows.append(row)
        return pa.Table.from_pylist(rows)
