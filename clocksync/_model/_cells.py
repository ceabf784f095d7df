"""Correction cells: the record a table's envelopes are stored in (no math here).

A :class:`Cells` array holds contiguous cells ``[start_ns[i], end_ns[i])`` in local time; in
cell ``i``, with ``δ = (t - start_i)/1e9`` seconds, the true offset (reference − local, ns)
lies in ``[lo0_i + lo1_i·δ, hi0_i + hi1_i·δ]``; ``flags`` holds :class:`~._flags.Flag` bits,
``segment`` the segment index, ``slo``/``shi`` the bounds of the offset's slope (ns/s).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["EMPTY_CELLS", "INF_NS", "Cells", "Row"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
#: start, end, hi0, hi1, lo0, lo1, flags, segment, slope_lo, slope_hi
Row = tuple[int, int, float, float, float, float, int, int, float, float]
#: the largest int64 (ns): "no end"
INF_NS = int(np.iinfo(np.int64).max)


@dataclass(frozen=True)
class Cells:
    """Contiguous cells ``[start_ns[i], end_ns[i])`` with linear hi/lo envelopes."""

    start_ns: I64
    end_ns: I64
    hi0: F64
    hi1: F64
    lo0: F64
    lo1: F64
    flags: npt.NDArray[np.uint8]
    segment: npt.NDArray[np.int32]
    slo: F64
    shi: F64

    def __len__(self) -> int:
        return len(self.start_ns)

    @staticmethod
    def build(rows: list[Row]) -> Cells:
        if not rows:
            return EMPTY_CELLS
        cols = list(zip(*rows, strict=True))
        return Cells(
            np.array(cols[0], dtype=np.int64), np.array(cols[1], dtype=np.int64),
            np.array(cols[2], dtype=np.float64), np.array(cols[3], dtype=np.float64),
            np.array(cols[4], dtype=np.float64), np.array(cols[5], dtype=np.float64),
            np.array(cols[6], dtype=np.uint8), np.array(cols[7], dtype=np.int32),
            np.array(cols[8], dtype=np.float64), np.array(cols[9], dtype=np.float64),
        )

    @staticmethod
    def concat(parts: list[Cells]) -> Cells:
        parts = [p for p in parts if len(p)]
        if not parts:
            return EMPTY_CELLS
        return Cells(*(np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS))

    def row(self, i: int) -> Row:
        return (int(self.start_ns[i]), int(self.end_ns[i]), float(self.hi0[i]),
                float(self.hi1[i]), float(self.lo0[i]), float(self.lo1[i]),
                int(self.flags[i]), int(self.segment[i]), float(self.slo[i]),
                float(self.shi[i]))

    def slice(self, i0: int, i1: int) -> Cells:
        return Cells(*(getattr(self, f)[i0:i1] for f in _FIELDS))


_FIELDS = ("start_ns", "end_ns", "hi0", "hi1", "lo0", "lo1", "flags", "segment", "slo", "shi")
EMPTY_CELLS = Cells(
    np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros(0),
    np.zeros(0), np.zeros(0, np.uint8), np.zeros(0, np.int32), np.zeros(0), np.zeros(0),
)
