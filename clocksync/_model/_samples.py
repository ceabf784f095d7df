"""Samples as columns: the batch form the fit works on (numpy arrays, one row per sample)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ._errors import InputError
from ._sample import TIMESTAMP_ERROR_NS, Sample

__all__ = ["MAX_BOUND_NS", "MAX_DELAY_NS", "MAX_OFFSET_NS", "MAX_T_LOCAL_NS", "SampleArrays",
           "as_arrays", "validate_arrays"]

#: physical limits of one sample (docs/table-format.md, "Samples"): a local time up to 2**62 ns
#: (146 years after its epoch), an offset within ±1e17 ns (3.2 years), a delay and a bound
#: up to 1e12 ns (1000 s). Beyond them no measurement is meaningful and the fitted table's
#: envelopes could not be stored.
MAX_T_LOCAL_NS = 1 << 62
MAX_OFFSET_NS = 1e17
MAX_DELAY_NS = 1e12
MAX_BOUND_NS = 1e12
#: units a nanosecond column is mistaken for, with their factor to ns
_UNITS = (("µs", 1_000), ("ms", 1_000_000), ("s", 1_000_000_000))
_DAY_NS = 86_400 * 10**9

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
        validate_arrays(samples)
        return samples
    if hasattr(samples, "column_names") or isinstance(samples, Mapping):
        node = np.asarray(_column(samples, "node", True), dtype=object)
        t = _numbers(samples, "t_local_ns", np.int64)
        off = _numbers(samples, "offset_ns", np.float64)
        delay = _numbers(samples, "delay_ns", np.float64)
        rd = _column(samples, "root_delay_ns", False)
        rdisp = _column(samples, "root_dispersion_ns", False)
        default = (delay / 2 + (0 if rd is None else np.nan_to_num(np.asarray(rd, float))) / 2
                   + (0 if rdisp is None else np.nan_to_num(np.asarray(rdisp, float)))
                   + TIMESTAMP_ERROR_NS)
        bound_col = _column(samples, "bound_ns", False)
        if bound_col is None:
            bound = default
        else:
            bound = _numbers(samples, "bound_ns", np.float64)
            bound = np.where(np.isnan(bound), default, bound)
        src = _column(samples, "source", False)
        source = np.full(len(t), "", dtype=object) if src is None else np.asarray(src, object)
        arrays = SampleArrays(node, t, off, delay, bound, source)
    else:
        items = list(samples)
        for i, s in enumerate(items):
            if not isinstance(s, Sample):
                raise InputError(f"samples[{i}]: expected Sample, got {type(s).__name__}")
            if not -(1 << 63) <= s.t_local_ns < 1 << 63:
                raise InputError(f"samples row {i}: field 't_local_ns' must be >= 0 and <= "
                                 f"{MAX_T_LOCAL_NS}, got {s.t_local_ns!r}")
        arrays = SampleArrays(
            np.array([s.node for s in items], dtype=object),
            np.array([s.t_local_ns for s in items], dtype=np.int64),
            np.array([s.offset_ns for s in items], dtype=np.float64),
            np.array([s.delay_ns for s in items], dtype=np.float64),
            np.array([s.bound for s in items], dtype=np.float64),
            np.array([s.source for s in items], dtype=object),
        )
    validate_arrays(arrays)
    return arrays


def _numbers(data: Any, name: str, dtype: Any) -> Any:
    values = _column(data, name, True)
    try:
        with np.errstate(all="ignore"):
            raw = np.asarray(values)
            if dtype is np.int64 and raw.dtype.kind == "f":
                whole = np.isfinite(raw) & (np.abs(raw) < 2.0**63) & (raw == np.rint(raw))
                bad = np.flatnonzero(~whole)
                if len(bad):
                    raise InputError(f"samples row {bad[0]}: field '{name}' must be a whole "
                                     f"number of nanoseconds within int64, got {raw[bad[0]]!r}")
            return np.asarray(raw, dtype=dtype)
    except (TypeError, ValueError, OverflowError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"samples: field '{name}' must hold numbers ({exc})") from None


def validate_arrays(a: SampleArrays) -> None:
    """Check every sample against the physical limits (``MAX_*``) and the columns' types, and
    refuse local times whose magnitude looks like another unit; :class:`InputError` names
    the row and field."""
    columns = (("t_local_ns", np.int64), ("offset_ns", np.float64), ("delay_ns", np.float64),
               ("bound_ns", np.float64))
    n = len(a.node)
    for name, dtype in columns:
        col = getattr(a, name)
        if not isinstance(col, np.ndarray) or col.dtype != dtype or col.ndim != 1:
            raise InputError(f"samples: field '{name}' must be a 1-d {np.dtype(dtype)} array")
        if len(col) != n:
            raise InputError(f"samples: field '{name}' has {len(col)} rows, 'node' has {n}")
    if not isinstance(a.source, np.ndarray) or len(a.source) != n:
        raise InputError(f"samples: field 'source' must be an array of {n} rows")
    with np.errstate(all="ignore"):
        checks = (
            ("t_local_ns", (a.t_local_ns < 0) | (a.t_local_ns > MAX_T_LOCAL_NS),
             f"must be >= 0 and <= {MAX_T_LOCAL_NS}"),
            ("offset_ns", ~(np.abs(a.offset_ns) <= MAX_OFFSET_NS),
             f"must be finite and within ±{MAX_OFFSET_NS:g} ns"),
            ("delay_ns", ~((a.delay_ns >= 0) & (a.delay_ns <= MAX_DELAY_NS)),
             f"must be finite, >= 0 and <= {MAX_DELAY_NS:g} ns"),
            ("bound_ns", ~((a.bound_ns > 0) & (a.bound_ns <= MAX_BOUND_NS)),
             f"must be finite, > 0 and <= {MAX_BOUND_NS:g} ns"),
        )
    for name, bad, why in checks:
        rows = np.flatnonzero(bad)
        if len(rows):
            value = getattr(a, name)[rows[0]]
            more = f" ({len(rows)} such rows)" if len(rows) > 1 else ""
            raise InputError(f"samples row {rows[0]}: field '{name}' {why}, "
                             f"got {value.item()!r}{more}")
    for i, name in enumerate(a.node):
        if not isinstance(name, str) or not name:
            raise InputError(f"samples row {i}: field 'node' must be a non-empty string")
    _check_units(a.t_local_ns)


def _check_units(t: I64) -> None:
    """Refuse local times that look like µs, ms or s among nanoseconds: a row far outside
    the others' range (their 10th..90th percentile widened by its own width, at least a
    day) that lands inside it once multiplied by 1e3, 1e6 or 1e9."""
    if len(t) < 3:
        return
    p10, p90 = (float(x) for x in np.percentile(t, [10, 90]))
    width = max(p90 - p10, float(_DAY_NS))
    lo, hi = p10 - width, p90 + width
    tf = t.astype(np.float64)
    outside = (tf < lo) | (tf > hi)
    if not outside.any():
        return
    for unit, factor in _UNITS:
        scaled = tf * factor
        rows = np.flatnonzero(outside & (scaled >= lo) & (scaled <= hi))
        if len(rows):
            shown = ", ".join(str(r) for r in rows[:5]) + (" ..." if len(rows) > 5 else "")
            raise InputError(
                f"samples rows {shown}: field 't_local_ns' looks like {unit}, not ns "
                f"({t[rows[0]]} is ~{factor:g}x smaller than the other rows); "
                f"convert them to ns ({len(rows)} row(s))")
