"""Exact order statistics of one large array, faster than :meth:`numpy.ndarray.partition`
at several ranks: a sample of the values brackets each rank, one pass counts the values
below the bracket and keeps those inside it, and only those few are partitioned
(Floyd & Rivest's selection). Exact whatever the sample says: when a bracket misses its
rank the full partition answers instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["SAMPLE_MIN_SIZE", "median", "select_ranks"]

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
