"""clocksync: measure clock skew between nodes and correct timestamps with guaranteed bounds.

Public surface (everything else is private and may change)::

    Sample, fit_table, CorrectionTable, Corrector, read_samples, write_samples,
    Assumptions, ASSUMPTION_SPECS, SimClock, SystemClock, open_store, TableKey,
    load_table_key (signed tables), Status and PublisherBlock (the status contract),
    format_ns (a value with its bound, for humans), and the exceptions.
"""

from ._clock import Clock, SimClock, SystemClock
from ._corrector import AMBIGUOUS, HOLDOVER, OUT_OF_RANGE, VOID, Corrector
from ._errors import (
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
from ._fit import ASSUMPTION_SPECS, Assumptions, SampleArrays, fit_table
from ._sample import Sample
from ._samplefile import read_samples, write_samples
from ._status import STATUS_MEANINGS, PublisherBlock, Status
from ._store import DirectoryStore, MemoryStore, TableStore, open_store
from ._table import SCHEMA, CorrectionTable
from ._tablekey import TableKey, load_table_key
from ._units import format_ns

__all__ = [
    "AMBIGUOUS",
    "ASSUMPTION_SPECS",
    "HOLDOVER",
    "OUT_OF_RANGE",
    "SCHEMA",
    "STATUS_MEANINGS",
    "VOID",
    "Assumptions",
    "Clock",
    "ClockSyncError",
    "CorrectionTable",
    "Corrector",
    "DirectoryStore",
    "InconsistentError",
    "InputError",
    "InvalidTimestampError",
    "MemoryStore",
    "OutOfRangeError",
    "PublisherBlock",
    "Sample",
    "SampleArrays",
    "SchemaError",
    "SignatureError",
    "SimClock",
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
    "write_samples",
]
