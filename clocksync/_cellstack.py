"""``CellStack``: the cells of several nodes' tables in one index space, for the latency
pipeline: one locate per event serves its correction, flags and cell, and same-node hop
latencies come from the cells and the corrections already made (see
:meth:`~._corrector.Corrector.cell_stack`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ._cells import CHUNK, Slopes, midpoint, slope_interval, tighten_interval

if TYPE_CHECKING:
    from ._corrector import Corrector

__all__ = ["CellStack"]

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]
Idx = npt.NDArray[np.intp]


@dataclass(frozen=True, eq=False)
class CellStack:
    """The padded cells of several nodes' tables side by side: node ``k``'s cell ``i`` is
    cell ``offsets[k] + i`` of the stack, so per-event cell indices of every node live in one
    int32 array and the same-node slope bounds of many nodes' hops take one pass.

    Made by :meth:`Corrector.cell_stack`; ``corrector`` is the one whose tables it holds.
    """

    corrector: Corrector
    nodes: tuple[str, ...]
    offsets: I64  # first stack cell of each node, then the total
    slopes: Slopes
    max_slope: F64  # per stack cell: its node's bound on the rate error, ns/s
    uniform_slope: float | None  # the one value of max_slope when every node shares it
    disagree_ns: float  # the largest of the nodes' Compiled.disagree_ns

    @classmethod
    def build(cls, corrector: Corrector, nodes: tuple[str, ...]) -> CellStack:
        compiled = [corrector._get(n) for n in nodes]
        sizes = [len(c.slopes.slo) for c in compiled]
        slopes = [corrector._max_slope(n) for n in nodes]
        offsets = np.zeros(len(nodes) + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])

        def cat(name: str, dtype: Any) -> Any:
            parts = [getattr(c.slopes, name) for c in compiled]
            return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)

        return cls(
            corrector=corrector, nodes=nodes, offsets=offsets,
            slopes=Slopes.build(cat("slo", np.float64), cat("shi", np.float64),
                                 cat("seg", np.int32)),
            max_slope=np.repeat(np.array(slopes, dtype=np.float64), sizes),
            uniform_slope=slopes[0] if len(set(slopes)) == 1 else None,
            disagree_ns=max((c.disagree_ns for c in compiled), default=1.0),
        )

    def correct(self, code: int, ts_ns: I64) -> tuple[I64, F64, U8, I32]:
        """Node ``nodes[code]``'s ``(ref_ns, bound_ns, flags, cell)`` of non-negative int64
        timestamps, from one locate: ``ref_ns, bound_ns`` as ``correct(on_invalid="inf")``,
        ``flags`` as :meth:`Corrector.flags`, ``cell`` the stack cell of each timestamp."""
        ref, bound, flags, cells = self.corrector._correct_cells(self.nodes[code], ts_ns)
        stack_cells = np.empty(cells.shape, dtype=np.int32)  # the cells fit (cell_stack)
        np.add(cells, int(self.offsets[code]), out=stack_cells, casting="unsafe")
        return ref, bound, flags, stack_cells

    def same_node_latency(self, src_ts_ns: I64, dst_ts_ns: I64, src_cell: I32, dst_cell: I32,
                          lat_ns: F64, bound_ns: F64, raw_ns: I64 | None = None
                          ) -> tuple[F64, F64]:
        """:meth:`Corrector.latency` of same-node hops (1-D arrays; each hop on one node, any
        mix of nodes), given their stack cells (from :meth:`correct`) and ``lat_ns, bound_ns``:
        the difference of the two corrections :meth:`correct` gave and the sum of their
        bounds (``raw_ns``: ``dst_ts_ns - src_ts_ns`` if known). Nothing is located or
        corrected again, save for the rare hops whose result depends on how the corrections
        were rounded (see below); bit-identical results.

        :meth:`correct` evaluates sorted runs in another rounding order than
        :meth:`Corrector.latency` does, so the two-correction interval may differ by
        ``disagree_ns`` per correction (and a few units in the last place). Where the slope
        interval lies strictly inside the two-correction one by more than that, the result
        is the slope interval's, whichever rounding; elsewhere (another segment, steps,
        ties) the hop is corrected again as :meth:`Corrector.latency` does.
        """
        n = len(lat_ns)
        lat, bound = np.empty(n, dtype=np.float64), np.empty(n, dtype=np.float64)
        redo: list[Idx] = []
        for a in range(0, n, CHUNK):  # in-cache chunks: no full-size temporaries
            part = slice(a, min(a + CHUNK, n))
            raw = (dst_ts_ns[part] - src_ts_ns[part]) if raw_ns is None else raw_ns[part]
            unsafe = self._chunk(src_cell[part], dst_cell[part], raw, lat_ns[part],
                                 bound_ns[part], lat[part], bound[part])
            if unsafe is not None:
                redo.append(unsafe + a)
        if redo:
            self._redo(np.concatenate(redo), src_ts_ns, dst_ts_ns, src_cell, dst_cell, lat,
                       bound)
        return lat, bound

    def _chunk(self, c1: I32, c2: I32, raw: I64, lat_in: F64, bound_in: F64, lat: F64,
               bound: F64) -> Idx | None:
        """One chunk of :meth:`same_node_latency` into ``lat, bound``: the hops to redo."""
        ms = self.uniform_slope if self.uniform_slope is not None else self.max_slope
        lo_d, hi_d, same = slope_interval(self.slopes, c1, c2, ms, raw)
        two_lo, two_hi = lat_in - bound_in, lat_in + bound_in
        # each of the four values may be off by disagree_ns; the last term covers rounding
        # of the differences and sums themselves (NaN or inf, so nothing is safe, with inf)
        scale = sum(abs(float(f(x))) for x in (lat_in, bound_in) for f in (np.max, np.min))
        margin = 4 * self.disagree_ns + 1e-14 * scale
        gap_lo, gap_hi = lo_d - two_lo, two_hi - hi_d
        if bool(same.all()) and float(gap_lo.min()) > margin and float(gap_hi.min()) > margin:
            # the slope interval lies inside the other: it is the intersection (tighten_interval's)
            midpoint(lo_d, hi_d, lat, bound)
            return None
        lat[:], bound[:] = tighten_interval(lo_d, hi_d, same, two_lo, two_hi, lat_in, bound_in)
        return np.flatnonzero(~(same & (gap_lo > margin) & (gap_hi > margin)))

    def _redo(self, redo: Idx, src_ts: I64, dst_ts: I64, src_cell: I32, dst_cell: I32,
              lat: F64, bound: F64) -> None:
        """:meth:`Corrector.latency` (corrections included) of hops ``redo``, in place."""
        c1, c2 = src_cell[redo].astype(np.intp), dst_cell[redo].astype(np.intp)
        code = np.searchsorted(self.offsets, c1, side="right") - 1
        for k in np.unique(code).tolist():
            mine = np.flatnonzero(code == k)
            node, off = self.nodes[k], int(self.offsets[k])
            at = redo[mine]
            lat[at], bound[at] = self.corrector._latency_located(
                node, self.corrector._get(node), src_ts[at], dst_ts[at], c1[mine] - off,
                c2[mine] - off, "raise")
