"""Exact order statistics without sorting whole arrays.

:func:`select_ranks`: several ranks of one large array, faster than
:meth:`numpy.ndarray.partition`: a sample of the values brackets each rank, one pass counts
the values below the bracket and keeps those inside it, and only those few are partitioned
(Floyd & Rivest's selection). Exact whatever the sample says: when a bracket misses its
rank the full partition answers instead.

:class:`GroupedSelect`: ranks of many groups of one array and of unions of those groups
at once (radix selection on one level of bins), a fixed number of passes over the rows
however many groups and ranks there are. Exact whatever the values.
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
Codes = npt.NDArray[np.signedinteger[Any]]  # int32 when the cells fit, else int64
#: bins per fine group of :class:`GroupedSelect` (at most; fewer for many small groups)
BINS_MAX = 1_024
_RANGE_TAIL = 0.001  # the bins span the sample's [0.1%, 99.9%]; the rest share the end bins
_SORT_ALL = 32_768  # up to this many rows in the wanted cells, sort them all


def _bins(values: F64, bins: int, x: F64) -> None:
    """``x`` = each value's bin in ``[0, bins)`` as a float to truncate (a monotone map,
    ``clip((v - a)·scale)``, with ``a`` and ``scale`` from a sample: the bins span the
    sample's [0.1%, 99.9%], the rest share the end bins), NaN in bin ``bins``."""
    sample = values[:: max(len(values) // _SAMPLE, 1)]
    sample = sample[np.isfinite(sample)]
    a, scale = 0.0, 1.0
    if len(sample):
        tail = int(len(sample) * _RANGE_TAIL)
        sample.partition([tail, len(sample) - 1 - tail])
        a = float(sample[tail])
        width = float(sample[len(sample) - 1 - tail]) - a
        if width > 0 and math.isfinite(bins / width):
            scale = bins / width
    with np.errstate(over="ignore", invalid="ignore"):
        np.subtract(values, a, out=x)
        x *= scale
    np.clip(x, 0, bins - 1, out=x)  # NaN stays NaN
    if len(values) and math.isnan(values.min()):
        x[np.isnan(x)] = bins


@dataclass(frozen=True, slots=True)
class GroupedSelect:
    """Exact order statistics of many groups of rows at once, and of unions of those groups,
    for a few value columns, in a fixed number of passes over the rows whatever the number
    of groups or ranks (radix selection, one level).

    Rows belong to *fine* groups (the distinct values of a key); a *level* maps every fine
    group to one of its groups (a union of fine groups: e.g. fine = (pair, window),
    levels = pair, window, everything). :meth:`of` bins every value by a monotone map (so a
    value in a lower bin is smaller than any value in a higher one; NaN in a last bin of
    its own, as :func:`numpy.sort` puts it last) and counts rows per ``(fine group, bin)``
    in one :func:`numpy.bincount` per column; :meth:`select` sums those counts into each
    level's groups, finds the bin of every wanted rank from the cumulative counts, and
    sorts only the rows of those bins (or, when they are many, only those of bins holding
    more than one distinct value: ties need no sort). Exact whatever the values: the bins
    (from a sample) only decide how many rows that last step sees.
    """

    columns: tuple[F64, ...]  # the value columns
    cells: tuple[Codes, ...]  # per column and row: slot · stride + bin
    counts: tuple[I64, ...]  # per column: rows per (fine group, bin)
    stride: int  # cells per slot: the bins, then NaN's (odd: the counters of one bin in
    # different slots fall in different cache sets)
    keys: I64  # the fine groups' keys (ascending): fine group ``k`` has key ``keys[k]``
    sizes: I64  # rows per fine group
    fine_of_slot: I64 | None  # fine group of each slot (-1: none); None: the same numbers
    mask: npt.NDArray[np.bool_]  # scratch of :meth:`select`

    @classmethod
    def of(cls, key: Codes, n_keys: int, columns: Sequence[F64]) -> GroupedSelect:
        """Fine groups = the distinct values of ``key`` (in ``[0, n_keys)``, any order of
        rows), in key order; ``columns``: the value columns (as long as ``key``)."""
        n = len(key)
        direct = n_keys <= n // 8 + 1_024  # a slot per possible key: no gather
        dense: npt.NDArray[Any] | None = None
        counts: I64 | None = None
        if direct:
            n_slots = n_keys
        elif n_keys <= 4 * n + 65_536:  # a count per possible key
            counts = np.bincount(key, minlength=n_keys)
            n_slots = int(np.count_nonzero(counts))
        else:  # sparse keys: hashed
            uniq, dense, sizes = np.unique(key, return_inverse=True, return_counts=True)
            n_slots = len(uniq)
        stride = int(min(BINS_MAX, max(4, 2 * n // max(n_slots, 1)))) + 1
        stride += 1 - stride % 2
        dtype: np.dtype[np.signedinteger[Any]] = np.dtype(
            np.int32 if n_slots * stride < 2**31 else np.int64)
        slot: Codes  # per row: its slot times the stride
        if direct:
            slot = key.astype(dtype, copy=False) * stride
        elif counts is not None:
            keys = np.flatnonzero(counts)
            sizes = counts[keys]
            lookup: Codes = np.zeros(n_keys, dtype=dtype)
            lookup[keys] = np.arange(0, n_slots * stride, stride)
            slot = lookup[key]
        else:
            assert dense is not None
            keys = uniq.astype(np.int64)
            slot = dense.reshape(-1).astype(dtype) * stride
        x = np.empty(n)
        cells: list[Codes] = []
        hists: list[I64] = []
        for values in columns:
            _bins(values, stride - 1, x)
            cell: Codes = x.astype(dtype)  # truncation: the floor of x >= 0
            cell += slot
            cells.append(cell)
            hists.append(np.bincount(cell, minlength=n_slots * stride).reshape(n_slots, stride))
        fine_of_slot = None
        if direct:
            per_slot = hists[0].sum(axis=1) if hists else np.bincount(key, minlength=n_keys)
            keys = np.flatnonzero(per_slot)
            sizes = per_slot[keys]
            if len(keys) < n_keys:  # empty slots: the fine groups are the others
                fine_of_slot = np.full(n_keys, -1, dtype=np.int64)
                fine_of_slot[keys] = np.arange(len(keys))
                hists = [h[keys] for h in hists]
        return cls(tuple(columns), tuple(cells), tuple(hists), stride, keys.astype(np.int64),
                   np.asarray(sizes, dtype=np.int64), fine_of_slot, np.empty(n, dtype=bool))

    def level_sizes(self, level: I64 | None) -> I64:
        """Rows per group of a level (``None``: the fine groups themselves)."""
        if level is None:
            return self.sizes
        return np.bincount(level, weights=self.sizes).astype(np.int64)

    def _level_counts(self, fine: I64, level: I64 | None) -> I64:
        """Rows per ``(level group, bin)`` from the fine groups' counts."""
        if level is None:
            return fine
        if not len(level) or not level.any():  # one group
            one: I64 = fine.sum(axis=0, keepdims=True)
            return one
        if not np.all(level[1:] >= level[:-1]):  # the level's fine groups made consecutive
            by = np.argsort(level, kind="stable")
            fine, level = fine[by], level[by]
        out: I64 = np.add.reduceat(fine, np.flatnonzero(np.diff(level, prepend=-1)), axis=0)
        return out

    def select(self, column: int, levels: Sequence[tuple[I64 | None, I64]]) -> list[F64]:
        """Per level ``(groups, ranks)``: ``out[g, j]`` = the ``ranks[g, j]``-th smallest
        (0-based, NaN last as :func:`numpy.sort`) of the values in ``columns[column]`` of
        level group ``g``; NaN where the rank is -1. A level is ``(level, ranks)``:
        ``level[k]`` is the group of fine group ``k`` (codes ``0..m-1``, each used), or
        ``None`` for the fine groups."""
        stride = self.stride
        values, cell, fine = self.columns[column], self.cells[column], self.counts[column]
        wanted: npt.NDArray[np.bool_] = np.zeros(fine.shape, dtype=bool)  # cells to sort
        plans = []
        for level, ranks in levels:
            counts = self._level_counts(fine, level)
            m = len(counts)
            flat = counts.reshape(-1)
            cum = np.cumsum(flat)
            before = cum[stride - 1 :: stride] - counts.sum(axis=1)
            g, j = np.nonzero(ranks >= 0)
            r = ranks[g, j]
            at = np.searchsorted(cum, before[g] + r, side="right")  # the rank's cell
            k = r - (cum[at] - flat[at] - before[g])  # its rank inside the cell
            target = np.full(m * stride, -1, dtype=np.int64)  # cell -> target number
            cells = np.unique(at)
            target[cells] = np.arange(len(cells))
            hit = (target >= 0).reshape(m, stride)
            wanted |= hit if level is None else hit[level]
            plans.append((level, ranks.shape, g, j, target, target[at], len(cells), k))
        if self.fine_of_slot is not None:  # the cells count every slot
            by_slot = np.zeros((len(self.fine_of_slot), stride), dtype=bool)
            by_slot[self.keys] = wanted
            wanted = by_slot
        rows = np.flatnonzero(wanted.reshape(-1).take(cell, out=self.mask))
        cand = values[rows]
        c_slot, c_bin = np.divmod(cell[rows], stride)
        c_fine = (c_slot.astype(np.int64) if self.fine_of_slot is None
                  else self.fine_of_slot[c_slot])
        # many rows to sort: a cell whose rows all hold one value (ties: clamped or quantized
        # values) answers with that value, only the other cells' rows are sorted
        ties = len(cand) > _SORT_ALL
        need = np.zeros(len(cand), dtype=bool)
        found = []
        for level, _, _, _, target, _, n_cells, _ in plans:
            mine = target[(c_fine if level is None else level[c_fine]) * stride + c_bin]
            some: F64 | None = None
            if ties:
                keep = np.flatnonzero(mine >= 0)
                tid = mine[keep]
                some = np.empty(n_cells)  # one value of each cell
                some[tid] = cand[keep]
                other = cand[keep].view(np.int64) != some.view(np.int64)[tid]  # bit patterns
                mixed = np.bincount(tid[other], minlength=n_cells) > 0
                need[keep[mixed[tid]]] = True
            found.append((mine, some, mixed if ties else None))
        if ties:
            sub = np.flatnonzero(need)
            by_value = sub[np.argsort(cand[sub])]  # NaN last
        else:
            by_value = np.argsort(cand)
        out = []
        for (_, shape, g, j, _, t_at, n_cells, k), (mine, some, mix) in zip(plans, found,
                                                                             strict=True):
            res = np.full(shape, np.nan)
            out.append(res)
            t_sorted = mine[by_value]
            keep = np.flatnonzero(t_sorted >= 0)
            if some is not None and mix is not None:
                res[g, j] = some[t_at]
                keep = keep[mix[t_sorted[keep]]]
                g, j, t_at, k = (a[mix[t_at]] for a in (g, j, t_at, k))
            tid = t_sorted[keep]
            regroup = np.argsort(tid.astype(np.uint16) if n_cells <= 65_536 else tid,
                                 kind="stable")  # by cell, by value inside each
            start = np.concatenate([[0], np.cumsum(np.bincount(tid, minlength=n_cells))])
            res[g, j] = cand[by_value[keep[regroup]]][start[t_at] + k]
        return out
