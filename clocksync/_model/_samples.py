"""Samples as columns: the batch form the fit works on (numpy arrays, one row per sample)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ._errors import InputError
from ._sample import TIMESTAMP_ERROR_NS, Sample

__all__ = ["SampleArrays", "as_arrays"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class SampleArrays:
    """Columns of samples; ``bound_ns`` is always filled (see ``Sample``)."""

    node: npt.NDArray[np.object_]
    t_local_ns: I64
    offset_ns: F64
    delay_ns: F64
    bound_ns: F64
    source: npt.NDArray[np.object_]

    def __len__(self) -> int:
        return len(self.t_local_ns)

    def take(self, idx: npt.NDArray[np.intp] | I64) -> SampleArrays:
        return SampleArrays(self.node[idx], self.t_local_ns[idx], self.offset_ns[idx],
                            self.delay_ns[idx], self.bound_ns[idx], self.source[idx])

    def nodes(self) -> list[str]:
        return sorted({str(n) for n in self.node})

    def for_node(self, node: str) -> SampleArrays:
        return self.take(np.flatnonzero(self.node == node))

    def common_source(self) -> str:
        sources = sorted({str(s) for s in self.source if s})
        return ",".join(sources)


def _column(data: Any, name: str, required: bool) -> Any:
    if hasattr(data, "column_names"):  # pyarrow Table
        if name not in data.column_names:
            if required:
                raise InputError(f"samples: required column '{name}' is missing")
            return None
        return data.column(name).to_numpy(zero_copy_only=False)
    if isinstance(data, Mapping):
        if name not in data:
            if required:
                raise InputError(f"samples: required column '{name}' is missing")
            return None
        return np.asarray(data[name])
    raise InputError(f"samples: unsupported type {type(data).__name__}")


def as_arrays(samples: Iterable[Sample] | SampleArrays | Any) -> SampleArrays:
    """Normalise Sample objects, a pyarrow Table or a mapping of columns to arrays.

    A missing ``bound_ns`` is ``delay/2 + root_delay/2 + root_dispersion + timestamping
    error``; every value is checked (finite, bounds > 0, delays >= 0, times >= 0) with an
    error naming the column and row.
    """
    if isinstance(samples, SampleArrays):
        return samples
    if hasattr(samples, "column_names") or isinstance(samples, Mapping):
        node = np.asarray(_column(samples, "node", True), dtype=object)
        t = np.asarray(_column(samples, "t_local_ns", True), dtype=np.int64)
        off = np.asarray(_column(samples, "offset_ns", True), dtype=np.float64)
        delay = np.asarray(_column(samples, "delay_ns", True), dtype=np.float64)
        rd = _column(samples, "root_delay_ns", False)
        rdisp = _column(samples, "root_dispersion_ns", False)
        default = (delay / 2 + (0 if rd is None else np.nan_to_num(np.asarray(rd, float))) / 2
                   + (0 if rdisp is None else np.nan_to_num(np.asarray(rdisp, float)))
                   + TIMESTAMP_ERROR_NS)
        bound_col = _column(samples, "bound_ns", False)
        if bound_col is None:
            bound = default
        else:
            bound = np.asarray(bound_col, dtype=np.float64)
            bound = np.where(np.isnan(bound), default, bound)
        src = _column(samples, "source", False)
        source = np.full(len(t), "", dtype=object) if src is None else np.asarray(src, object)
        arrays = SampleArrays(node, t, off, delay, bound, source)
    else:
        items = list(samples)
        for i, s in enumerate(items):
            if not isinstance(s, Sample):
                raise InputError(f"samples[{i}]: expected Sample, got {type(s).__name__}")
        arrays = SampleArrays(
            np.array([s.node for s in items], dtype=object),
            np.array([s.t_local_ns for s in items], dtype=np.int64),
            np.array([s.offset_ns for s in items], dtype=np.float64),
            np.array([s.delay_ns for s in items], dtype=np.float64),
            np.array([s.bound for s in items], dtype=np.float64),
            np.array([s.source for s in items], dtype=object),
        )
    _validate(arrays)
    return arrays


def _validate(a: SampleArrays) -> None:
    checks = (
        ("t_local_ns", a.t_local_ns < 0, "must be >= 0"),
        ("offset_ns", ~np.isfinite(a.offset_ns), "must be finite"),
        ("delay_ns", ~(np.isfinite(a.delay_ns) & (a.delay_ns >= 0)), "must be finite and >= 0"),
        ("bound_ns", ~(np.isfinite(a.bound_ns) & (a.bound_ns > 0)), "must be finite and > 0"),
    )
    for name, bad, why in checks:
        rows = np.flatnonzero(bad)
        if len(rows):
            value = getattr(a, name)[rows[0]]
            raise InputError(f"samples row {rows[0]}: field '{name}' {why}, got {value!r}")
    for i, n in enumerate(a.node):
        if not isinstance(n, str) or not n:
            raise InputError(f"samples row {i}: field 'node' must be a non-empty string")
