"""``fit_table``: a node's samples -> segments -> guaranteed envelope + statistical line.

Pipeline (each step a pure function in its own module):

1. order samples by estimated reference time ``t_local + offset`` (acquisition order, even
   when the local clock stepped backwards) and drop exact duplicates;
2. :mod:`._segment` — steps (hard, from contradicting intervals; statistical, from level
   shifts) split the history into segments; lone wild samples are dropped and counted;
3. :mod:`._filter` — forward and backward set-membership filtering of each segment's
   (offset, slope) state, intersected: the set of states consistent with every sample;
4. :mod:`._envelope` — guaranteed cells between samples, holdover past the last sample,
   extrapolation into step gaps; overlapping segments become ambiguous hulls;
5. :mod:`._robust` — the statistical estimate (robust weighted line, runs-test aging).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .._model._assumptions import Assumptions
from .._model._cells import Cells
from .._model._errors import InputError, SchemaError
from .._model._sample import Sample
from .._model._samples import SampleArrays, as_arrays
from .._model._table import CorrectionTable, LineEstimate, SegmentInfo
from . import _polygon as pg
from ._envelope import compose, extrapolation_cells, interpolation_cells
from ._filter import Dynamics, filter_states, smooth
from ._robust import fit_line
from ._segment import SegmentSpan, bidirectional_segments, level_shifts

__all__ = ["fit_table"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


def _split_level_shifts(
    spans: list[SegmentSpan], arr: SampleArrays, t_s: F64, dyn: Dynamics, asm: Assumptions
) -> list[SegmentSpan]:
    out: list[SegmentSpan] = []
    for span in spans:
        idx = span.indices
        if span.started_by == "unconfirmed":
            out.append(span)
            continue
        order = idx[np.argsort(arr.t_local_ns[idx], kind="stable")]
        cuts = level_shifts(t_s[order], arr.offset_ns[order], arr.bound_ns[order], dyn,
                            asm.step_sigma, asm.step_min_ns)
        start = 0
        started = span.started_by
        for cut in [*cuts, len(order)]:
            out.append(SegmentSpan(np.sort(order[start:cut]), started))
            start, started = cut, "level_shift"
    return out


@dataclass(frozen=True)
class _Knots:
    """Unique sample times of a segment with guaranteed offset and slope ranges."""

    t_ns: I64
    lo: F64
    hi: F64
    slo: F64
    shi: F64
    first_poly: pg.Poly
    last_poly: pg.Poly


def _knots(t_ns: I64, polys: list[pg.Poly]) -> _Knots:
    """Unique knot times with their guaranteed intervals; first and last knot polygons."""
    uniq, first_idx = np.unique(t_ns, return_index=True)
    lo, hi = np.empty(len(uniq)), np.empty(len(uniq))
    slo, shi = np.empty(len(uniq)), np.empty(len(uniq))
    bounds = np.append(first_idx, len(t_ns))
    first_poly = last_poly = pg.EMPTY
    for k in range(len(uniq)):
        poly = polys[bounds[k]]
        for extra in polys[bounds[k] + 1 : bounds[k + 1]]:
            both = pg.intersect(poly, extra)
            poly = both if len(both) else poly
        lo[k], hi[k] = pg.a_range(poly)
        slo[k], shi[k] = float(poly[:, 1].min()), float(poly[:, 1].max())
        if k == 0:
            first_poly = poly
        last_poly = poly
    return _Knots(uniq, lo, hi, slo, shi, first_poly, last_poly)


def fit_table(
    samples: Iterable[Sample] | SampleArrays | Any,
    *,
    reference: str = "",
    generated_at_ns: int | None = None,
    **assumptions: float,
) -> CorrectionTable:
    """Fit one node's samples into a :class:`CorrectionTable`.

    ``samples``: :class:`Sample` objects, :class:`SampleArrays`, or a pyarrow table / mapping
    of columns (``node, t_local_ns, offset_ns, delay_ns`` and optional ``bound_ns``...), all of
    one node. ``assumptions``: see ``ASSUMPTION_SPECS`` (``max_skew_ppm``,
    ``max_wander_ppb_per_s``, ``step_confirm``, ...); unknown names raise :class:`InputError`.
    """
    asm = Assumptions.from_mapping(dict(assumptions), where="fit_table")
    arr = as_arrays(samples)
    if len(arr) == 0:
        raise InputError("fit_table: no samples")
    nodes = arr.nodes()
    if len(nodes) != 1:
        raise InputError(f"fit_table: samples of several nodes ({', '.join(nodes)}); "
                         "fit each node separately")
    node = nodes[0]
    # acquisition order: estimated reference time is continuous across steps
    ref_est = arr.t_local_ns + np.rint(arr.offset_ns).astype(np.int64)
    order = np.lexsort((arr.t_local_ns, ref_est))
    arr = arr.take(order)
    ref_est = ref_est[order]
    t0 = int(arr.t_local_ns.min())
    t_s = (arr.t_local_ns - t0).astype(np.float64) / 1e9
    lo = arr.offset_ns - arr.bound_ns
    hi = arr.offset_ns + arr.bound_ns
    dyn = Dynamics(asm.max_skew_ns_per_s, asm.wander_ns_per_s2)
    spans, outliers, ambiguous = bidirectional_segments(t_s, lo, hi, dyn,
                                                        int(asm.step_confirm))
    spans = _split_level_shifts(spans, arr, t_s, dyn, asm)

    skew_frac = asm.max_skew_ppm * 1e-6
    horizon_ns = int(asm.holdover_horizon_s * 1e9)
    seg_cells: list[Cells] = []
    infos: list[SegmentInfo] = []
    ref_first: list[tuple[int, float]] = []
    ref_last: list[tuple[int, float]] = []
    knot_data: list[_Knots] = []
    for g, span in enumerate(spans):
        idx = span.indices[np.argsort(arr.t_local_ns[span.indices], kind="stable")]
        ts, tt = arr.t_local_ns[idx], t_s[idx]
        fwd, _ = filter_states(tt, lo[idx], hi[idx], dyn)
        bwd, _ = filter_states(tt, lo[idx], hi[idx], dyn, reverse=True)
        states, _ = smooth(fwd, bwd)
        knots = _knots(ts, states)
        knot_data.append(knots)
        first_i, last_i = int(idx[0]), int(idx[-1])
        ref_first.append((int(ref_est[first_i]), float(arr.bound_ns[first_i])))
        ref_last.append((int(ref_est[last_i]), float(arr.bound_ns[last_i])))
        line = fit_line(tt, arr.offset_ns[idx], arr.bound_ns[idx])
        anchor_ns = t0 + round(line.anchor_s * 1e9)
        infos.append(SegmentInfo(
            index=g,
            started_by=span.started_by,
            first_sample_local_ns=int(ts[0]),
            last_sample_local_ns=int(ts[-1]),
            sample_count=len(idx),
            fit=LineEstimate(
                anchor_local_ns=anchor_ns,
                offset_ns=line.offset_ns,
                skew_ppm=-line.slope_ns_per_s / 1e3,
                sigma_offset_ns=line.sigma_offset_ns,
                sigma_skew_ppm=line.sigma_slope_ns_per_s / 1e3,
                residual_rms_ns=line.residual_rms_ns,
                samples_used=line.used,
                window_start_local_ns=int(ts[line.first_index]),
            ),
        ))
    unconfirmed_tail = bool(spans) and spans[-1].started_by == "unconfirmed"
    for g, kn in enumerate(knot_data):
        tol = max(1.0, 0.02 * float(np.min(kn.hi - kn.lo)) / 2)
        parts = []
        if g > 0:
            gap_ns = ref_first[g][0] - ref_last[g - 1][0] + ref_first[g][1] + ref_last[g - 1][1]
            back = int(max(gap_ns, 0) * (1 + skew_frac)) + 1
            parts.append(extrapolation_cells(kn.first_poly, int(kn.t_ns[0]), -1, back,
                                             dyn.wander_ns_per_s2, g))
        parts.append(interpolation_cells(kn.t_ns, kn.lo, kn.hi, kn.slo, kn.shi,
                                         dyn.wander_ns_per_s2, g, tol))
        last_confirmed = g == len(knot_data) - 1 or (unconfirmed_tail and g == len(knot_data) - 2)
        if last_confirmed:
            fwd_len = horizon_ns
        else:
            gap_ns = ref_first[g + 1][0] - ref_last[g][0] + ref_first[g + 1][1] + ref_last[g][1]
            fwd_len = int(max(gap_ns, 0) * (1 + skew_frac)) + 1
        parts.append(extrapolation_cells(kn.last_poly, int(kn.t_ns[-1]), 1, fwd_len,
                                         dyn.wander_ns_per_s2, g))
        seg_cells.append(Cells.concat(parts))
    cells = compose(seg_cells, dyn.max_slope_ns_per_s)
    last_t = np.sort(arr.t_local_ns[spans[-1].indices])
    poll_s = float(np.median(np.diff(last_t))) / 1e9 if len(last_t) > 1 else 0.0
    status = "disrupted" if unconfirmed_tail else "synchronised"
    table = CorrectionTable(
        node=node,
        reference=reference or arr.common_source(),
        generated_at_ns=time.time_ns() if generated_at_ns is None else generated_at_ns,
        status=status,
        assumptions=asm.to_dict(),
        sample_count=len(arr),
        outlier_count=len(outliers),
        segments=tuple(infos),
        cells=cells,
        extra={"poll_interval_s": poll_s, "ambiguous_samples": len(ambiguous)},
    )
    _check_readable(table)
    return table


def _check_readable(table: CorrectionTable) -> None:
    """A table is only returned if its JSON form loads back: whatever fit_table writes, every
    reader accepts."""
    try:
        CorrectionTable.from_json(table.to_json(), source=f"table of {table.node!r}")
    except SchemaError as exc:
        raise InputError(f"fit_table: the samples of node {table.node!r} give a table that "
                         f"could not be read back ({exc}); check their units and "
                         "magnitudes") from None
