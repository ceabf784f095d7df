"""Exact order statistics of one large array, faster than :meth:`numpy.ndarray.partition`
at several ranks: a sample of the values brackets each rank, one pass counts the values
below the bracket and keeps those inside it, and only those few are partitioned
(Floyd & Rivest's selection). Exact whatever the sample says: when a bracket misses its
rank the full partition answers instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["BINS_MAX", "SAMPLE_MIN_SIZE", "GroupedSelect", "median", "select_ranks"]

F64 = npt.NDArray[np.float64]

#: below this size :func:`select_ranks` is a plain partition (in cache, already fast)
SAMPLE_MIN_SIZE = 65_536
_SAMPLE = 4_096  # sample size
_MARGIN = 2.0  # bracket half-width in standard deviations of the sample rank


def select_ranks(values: F64, ranks: Sequence[int]) -> F64:
    """The ``ranks``-th smallest values (0-based, each in ``[0, n)``) of ``values``, as
    ``np.sort(values)[ranks]`` would give them (NaN sorts last). ``values`` may be reordered
    in place."""
    n = len(values)
    want = [int(r) for r in ranks]
    if any(not 0 <= r < n for r in want):
        raise IndexError(f"rank out of range for {n} values: {want}")
    if n < SAMPLE_MIN_SIZE:
        if want:
            values.partition(sorted(set(want)))
        return np.asarray(values[want], dtype=np.float64)
    sample = np.sort(values[:: max(n // _SAMPLE, 1)])
    m = len(sample)
    half = _MARGIN * math.sqrt(m) / 2 + 2
    out = np.empty(len(want))
    missed: list[int] = []
    for j, r in enumerate(want):
        if r == n - 1 and not np.isnan(sample[-1]):
            top = values.max()  # NaN if any value is NaN: sorts last, as np.sort
            out[j] = top
            continue
        p = (r + 0.5) * m / n
        i0, i1 = math.floor(p - half), math.ceil(p + half)
        lo = sample[i0] if i0 >= 0 else -np.inf
        hi = sample[i1] if i1 < m else np.inf
        below = int(np.count_nonzero(values < lo))
        inside = values >= lo
        inside &= values <= hi
        cand = values[inside]
        k = r - below
        if 0 <= k < len(cand):
            cand.partition(k)
            out[j] = cand[k]
        else:
            missed.append(j)
    if missed:  # the sample misled (or NaN at the rank): partition everything
        values.partition(sorted({want[j] for j in missed}))
        out[missed] = values[[want[j] for j in missed]]
    return out


def median(values: F64) -> float:
    """``np.median(values)`` (mean of the two middle values for an even count; NaN when
    any value is NaN or there is none) through :func:`select_ranks`; ``values`` may be
    reordered in place."""
    n = len(values)
    if n == 0 or np.isnan(values).any():
        return math.nan
    mid = select_ranks(values, [(n - 1) // 2, n // 2])
    return float((mid[0] + mid[1]) / 2)


I64 = npt.NDArray[np.int64]
#: bins per fine group of :class:`GroupedSelect` (at most; fewer for many small groups)
BINS_MAX = 4_096
_RANGE_TAIL = 0.001  # the bins span the sample's [0.1%, 99.9%]; the rest share the end bins


@dataclass(frozen=True, slots=True)
class GroupedSelect:
    """Exact order statistics of many groups of rows at once, and of unions of those groups,
    in a few passes over the rows whatever the number of groups or ranks (radix selection,
    one level).

    Rows belong to *fine* groups; a *level* maps every fine group to one of its groups (a
    union of fine groups: e.g. fine = (pair, window), levels = pair, window, everything).
    :meth:`select` bins every value by a monotone map (``clip((v - a)·scale)``, so a value
    in a lower bin is smaller than any value in a higher one; NaN in a last bin of its own,
    as :func:`numpy.sort` puts it last), counts rows per ``(fine group, bin)`` in one
    :func:`numpy.bincount`, sums those counts into each level's groups, finds the bin of
    every wanted rank from the cumulative counts, and sorts only the rows of those bins.
    Exact whatever the values: ``a`` and ``scale`` (from a sample) only decide how many
    rows the last step sorts.
    """

    cell: npt.NDArray[np.int32] | I64  # per row: its fine group times ``stride``
    stride: int  # bins per fine group, NaN's included
    keys: I64  # the fine groups' keys (ascending): fine group ``k`` has key ``keys[k]``
    sizes: I64  # rows per fine group

    @classmethod
    def of(cls, key: npt.NDArray[np.integer[Any]], n_keys: int) -> GroupedSelect:
        """Fine groups = the distinct values of ``key`` (in ``[0, n_keys)``), in key order."""
        n = len(key)
        if n_keys <= 4 * n + 65_536:  # a count per possible key
            counts = np.bincount(key, minlength=n_keys)
            keys = np.flatnonzero(counts)
            sizes = counts[keys]
            dense: npt.NDArray[Any] | None = None
        else:  # sparse keys: hashed
            keys, dense, sizes = np.unique(key, return_inverse=True, return_counts=True)
        n_fine = len(keys)
        bins = int(min(BINS_MAX, max(4, 2 * n // max(n_fine, 1))))
        stride = bins + 1
        dtype = np.int32 if n_fine * stride < 2**31 else np.int64
        if dense is None:
            lookup = np.zeros(n_keys, dtype=dtype)
            lookup[keys] = np.arange(0, n_fine * stride, stride, dtype=dtype)
            cell = lookup[key]
        else:
            cell = dense.reshape(-1).astype(dtype)
            cell *= stride
        return cls(cell, stride, keys.astype(np.int64), sizes.astype(np.int64))

    def level_sizes(self, level: I64 | None) -> I64:
        """Rows per group of a level (``None``: the fine groups themselves)."""
        if level is None:
            return self.sizes
        return np.bincount(level, weights=self.sizes).astype(np.int64)

    def _bins(self, values: F64) -> npt.NDArray[np.int32] | I64:
        """Each row's ``fine group · stride + bin``."""
        bins = self.stride - 1
        n = len(values)
        sample = np.sort(values[:: max(n // _SAMPLE, 1)])
        sample = sample[np.isfinite(sample)]
        a, scale = 0.0, 1.0
        if len(sample):
            tail = int(len(sample) * _RANGE_TAIL)
            a = float(sample[tail])
            width = float(sample[len(sample) - 1 - tail]) - a
            if width > 0 and math.isfinite(bins / width):
                scale = bins / width
        with np.errstate(over="ignore", invalid="ignore"):
            x = values - a
            x *= scale
        np.clip(x, 0, bins - 1, out=x)  # NaN stays NaN
        if n and math.isnan(values.min()):
            x[np.isnan(x)] = bins
        cell = np.empty(n, dtype=self.cell.dtype)
        np.add(x, self.cell, out=cell, casting="unsafe")  # truncation: floor of x >= 0
        return cell

    def select(self, values: F64, levels: Sequence[tuple[I64 | None, I64]]) -> list[F64]:
        """Per level ``(groups, ranks)``: ``out[g, j]`` = the ``ranks[g, j]``-th smallest
        (0-based, NaN last as :func:`numpy.sort`) of the values of level group ``g``; NaN
        where the rank is -1. A level is ``(level, ranks)``: ``level[k]`` is the group of
        fine group ``k`` (codes ``0..m-1``, each used), or ``None`` for the fine groups."""
        stride = self.stride
        n_fine = len(self.sizes)
        cell = self._bins(values)
        hist = np.bincount(cell, minlength=n_fine * stride).reshape(n_fine, stride)
        wanted = np.zeros((n_fine, stride), dtype=bool)  # the (fine group, bin) cells to sort
        plans = []
        for level, ranks in levels:
            if level is None:
                lh = hist
            else:
                by = np.argsort(level, kind="stable")
                first = np.flatnonzero(np.diff(level[by], prepend=-1))
                lh = np.add.reduceat(hist[by], first, axis=0)
            m = len(lh)
            flat = lh.reshape(-1)
            cum = np.cumsum(flat)
            before = cum[stride - 1 :: stride] - flat.reshape(m, stride).sum(axis=1)
            g, j = np.nonzero(ranks >= 0)
            r = ranks[g, j]
            at = np.searchsorted(cum, before[g] + r, side="right")  # the rank's cell
            k = r - (cum[at] - flat[at] - before[g])  # its rank inside the cell
            hit = np.zeros(m * stride, dtype=bool)
            hit[at] = True
            wanted |= hit.reshape(m, stride) if level is None else hit.reshape(m, stride)[level]
            plans.append((level, ranks.shape, g, j, at, k))
        rows = np.flatnonzero(wanted.reshape(-1).take(cell))
        cand = values[rows]
        by_value = np.argsort(cand)  # NaN last
        cand = cand[by_value]
        c_cell = cell[rows][by_value]
        c_fine = c_cell // stride
        c_bin = c_cell - c_fine * stride
        out = []
        for level, shape, g, j, at, k in plans:
            res = np.full(shape, np.nan)
            out.append(res)
            if not len(at):
                continue
            cells = np.unique(at)
            mine = c_cell if level is None else level[c_fine] * stride + c_bin
            pos = np.minimum(np.searchsorted(cells, mine), len(cells) - 1)
            keep = np.flatnonzero(cells[pos] == mine)
            pos = pos[keep]
            regroup = np.argsort(pos.astype(np.uint16) if len(cells) <= 65_536 else pos,
                                 kind="stable")  # by cell, by value inside each
            start = np.concatenate([[0], np.cumsum(np.bincount(pos, minlength=len(cells)))])
            res[g, j] = cand[keep[regroup]][start[np.searchsorted(cells, at)] + k]
        return out
