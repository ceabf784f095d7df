"""Sample files: JSONL, CSV or Parquet with the columns of :class:`clocksync.Sample`.

Required: ``node, t_local_ns, offset_ns, delay_ns``; optional: ``bound_ns, source,
root_delay_ns, root_dispersion_ns, stratum``. Errors name the file, line/row and field.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np

from .._model._errors import InputError
from .._model._sample import Sample
from .._model._samples import SampleArrays, as_arrays
from ._columns import Column

__all__ = ["SAMPLE_COLUMNS", "read_samples", "write_samples"]

SAMPLE_COLUMNS: tuple[Column, ...] = (
    Column("node", "string"),
    Column("t_local_ns", "int64", nonnegative=True),
    Column("offset_ns", "float64"),
    Column("delay_ns", "float64", nonnegative=True),
    Column("bound_ns", "float64", required=False, nonnegative=True),
    Column("source", "string", required=False),
    Column("root_delay_ns", "float64", required=False, nonnegative=True),
    Column("root_dispersion_ns", "float64", required=False, nonnegative=True),
    Column("stratum", "int64", required=False, nonnegative=True),
)


def read_samples(path: str | os.PathLike[str]) -> SampleArrays:
    """Read one sample file (any nodes) into :class:`SampleArrays`."""
    from ._tabular import read_rows  # pyarrow only when files are read (not in the agent)

    table = read_rows(path, list(SAMPLE_COLUMNS))
    if "bound_ns" in table.column_names:
        bounds = table.column("bound_ns").to_numpy(zero_copy_only=False)
        zero = np.flatnonzero(np.nan_to_num(bounds, nan=1.0) <= 0)
        if len(zero):
            raise InputError(f"{path}: row {zero[0]}: field 'bound_ns' must be > 0")
    try:
        return as_arrays(table)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None


def write_samples(samples: Iterable[Sample] | SampleArrays, path: str | os.PathLike[str]) -> None:
    """Write samples to ``path`` (format from the extension), atomically."""
    import pyarrow as pa

    from ._tabular import write_rows

    arr = as_arrays(samples)
    table = pa.table({
        "node": pa.array([str(n) for n in arr.node], pa.string()),
        "t_local_ns": pa.array(arr.t_local_ns, pa.int64()),
        "offset_ns": pa.array(arr.offset_ns, pa.float64()),
        "delay_ns": pa.array(arr.delay_ns, pa.float64()),
        "bound_ns": pa.array(arr.bound_ns, pa.float64()),
        "source": pa.array([str(s) for s in arr.source], pa.string()),
    })
    write_rows(table, path, delta_columns=("t_local_ns",))
