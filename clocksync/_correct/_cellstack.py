"""``CellStack``: the cells of several nodes' tables in one index space, for the latency
pipeline: one locate per event serves its correction, flags and cell, and same-node hop
latencies come from the cells and the corrections already made (see
:meth:`~._corrector.Corrector.cell_stack`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ._cells import CHUNK, Compiled, Slopes, evaluate, invalid_as_inf, same_node_interval

__all__ = ["CellStack"]

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]


@dataclass(frozen=True, eq=False)
class CellStack:
    """The padded cells of several nodes' tables side by side: node ``k``'s cell ``i`` is
    cell ``offsets[k] + i`` of the stack, so per-event cell indices of every node live in one
    int32 array and the same-node slope bounds of many nodes' hops take one pass.

    Made by :meth:`Corrector.cell_stack` from the compiled tables it corrects with.
    """

    nodes: tuple[str, ...]
    compiled: tuple[Compiled, ...]  # per node, its table's cells
    offsets: I64  # first stack cell of each node, then the total
    slopes: Slopes
    max_slope: F64  # per stack cell: its node's bound on the rate error, ns/s
    uniform_slope: float | None  # the one value of max_slope when every node shares it

    @classmethod
    def build(cls, nodes: tuple[str, ...], compiled: Sequence[Compiled],
              max_slopes: Sequence[float]) -> CellStack:
        """``compiled[k]``, ``max_slopes[k]``: node ``nodes[k]``'s cells and bound on its
        clock's rate error (ns/s)."""
        sizes = [len(c.slopes.slo) for c in compiled]
        offsets = np.zeros(len(nodes) + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])

        def cat(name: str, dtype: Any) -> Any:
            parts = [getattr(c.slopes, name) for c in compiled]
            return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)

        return cls(
            nodes=nodes, compiled=tuple(compiled), offsets=offsets,
            slopes=Slopes.build(cat("slo", np.float64), cat("shi", np.float64),
                                cat("seg", np.int32)),
            max_slope=np.repeat(np.array(max_slopes, dtype=np.float64), sizes),
            uniform_slope=max_slopes[0] if len(set(max_slopes)) == 1 else None,
        )

    def correct(self, code: int, ts_ns: I64) -> tuple[I64, F64, U8, I32]:
        """Node ``nodes[code]``'s ``(ref_ns, bound_ns, flags, cell)`` of non-negative int64
        timestamps, from one locate: ``ref_ns, bound_ns`` as ``correct(on_invalid="inf")``,
        ``flags`` as :meth:`Corrector.flags`, ``cell`` the stack cell of each timestamp."""
        c = self.compiled[code]
        ref, bound, invalid, cells = evaluate(c, ts_ns, self.nodes[code], want_cells=True)
        assert cells is not None
        ref, bound = invalid_as_inf(ts_ns, ref, bound, invalid)
        stack_cells = np.empty(cells.shape, dtype=np.int32)  # the cells fit (cell_stack)
        np.add(cells, int(self.offsets[code]), out=stack_cells, casting="unsafe")
        return ref, bound, np.asarray(c.flags[cells], dtype=np.uint8), stack_cells

    def same_node_latency(self, src_ts_ns: I64, dst_ts_ns: I64, src_cell: I32, dst_cell: I32,
                          lat_ns: F64, bound_ns: F64, raw_ns: I64 | None = None
                          ) -> tuple[F64, F64]:
        """:meth:`Corrector.latency` of same-node hops (1-D arrays; each hop on one node, any
        mix of nodes), given their stack cells (from :meth:`correct`) and ``lat_ns, bound_ns``:
        the difference of the two corrections :meth:`correct` gave and the sum of their
        bounds (``raw_ns``: ``dst_ts_ns - src_ts_ns`` if known). Nothing is located or
        corrected again: the corrections are the bits :meth:`Corrector.latency` makes, and
        the interval is the same :func:`~._cells.same_node_interval`."""
        n = len(lat_ns)
        lat, bound = np.empty(n, dtype=np.float64), np.empty(n, dtype=np.float64)
        ms = self.uniform_slope if self.uniform_slope is not None else self.max_slope
        for a in range(0, n, CHUNK):  # in-cache chunks: no full-size temporaries
            part = slice(a, min(a + CHUNK, n))
            raw = (dst_ts_ns[part] - src_ts_ns[part]) if raw_ns is None else raw_ns[part]
            lat[part], bound[part] = same_node_interval(
                self.slopes, src_cell[part], dst_cell[part], ms, raw, lat_ns[part],
                bound_ns[part])
        return lat, bound
