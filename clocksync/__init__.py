"""clocksync: measure clock skew between nodes and correct timestamps with guaranteed bounds.

Public surface (everything else is private and may change)::

    Sample, SampleArrays, fit_table, CorrectionTable (SegmentInfo, LineEstimate), Cells,
    Corrector, CellStack (Compiled, Grid, Slopes),
    read_samples, write_samples, Assumptions, ASSUMPTION_SPECS, Clock, SimClock,
    SystemClock, open_store, TableStore, DirectoryStore, MemoryStore, TableKey,
    load_table_key (signed tables), Flag and its bits (HOLDOVER, AMBIGUOUS, VOID,
    OUT_OF_RANGE), Status and PublisherBlock (the status contract), format_ns (a value
    with its bound, for humans), and the exceptions.

Beside it: :mod:`clocksync.ntp`, :mod:`clocksync.net` (kernel timestamps),
:mod:`clocksync.agent`, :mod:`clocksync.latency`, :mod:`clocksync.testing` (simulated
clocks, links, requests and sources) and the ``clocksync`` command (:mod:`clocksync.cli`).
The layers are described in docs/architecture.md.
"""

from ._correct._cells import Compiled, Grid, Slopes
from ._correct._cellstack import CellStack
from ._corrector import Corrector
from ._fit import ASSUMPTION_SPECS, Assumptions, SampleArrays, fit_table
from ._io._keyfile import load_table_key
from ._io._samplefile import read_samples, write_samples
from ._io._store import DirectoryStore, MemoryStore, TableStore, open_store
from ._model._cells import Cells
from ._model._clock import Clock, SimClock, SystemClock
from ._model._errors import (
    ClockSyncError,
    InconsistentError,
    InputError,
    InvalidTimestampError,
    OutOfRangeError,
    SchemaError,
    SignatureError,
    StoreError,
    UnknownNodeError,
)
from ._model._flags import AMBIGUOUS, HOLDOVER, OUT_OF_RANGE, VOID, Flag
from ._model._sample import Sample
from ._model._status import STATUS_MEANINGS, PublisherBlock, Status
from ._model._table import SCHEMA, CorrectionTable, LineEstimate, SegmentInfo
from ._model._tablekey import TableKey
from ._model._units import format_ns
from ._report import SkewRow, reader_status, skew_rows

__all__ = [
    "AMBIGUOUS",
    "ASSUMPTION_SPECS",
    "HOLDOVER",
    "OUT_OF_RANGE",
    "SCHEMA",
    "STATUS_MEANINGS",
    "VOID",
    "Assumptions",
    "CellStack",
    "Cells",
    "Clock",
    "ClockSyncError",
    "Compiled",
    "CorrectionTable",
    "Corrector",
    "DirectoryStore",
    "Flag",
    "Grid",
    "InconsistentError",
    "InputError",
    "InvalidTimestampError",
    "LineEstimate",
    "MemoryStore",
    "OutOfRangeError",
    "PublisherBlock",
    "Sample",
    "SampleArrays",
    "SchemaError",
    "SegmentInfo",
    "SignatureError",
    "SimClock",
    "SkewRow",
    "Slopes",
    "Status",
    "StoreError",
    "SystemClock",
    "TableKey",
    "TableStore",
    "UnknownNodeError",
    "fit_table",
    "format_ns",
    "load_table_key",
    "open_store",
    "read_samples",
    "reader_status",
    "skew_rows",
    "write_samples",
]
