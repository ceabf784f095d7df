"""Read any mix of events files and trace files into one :class:`Events`.

``fmt="auto"`` decides per file: Parquet and CSV (by name) are events files; anything else
is judged from its first 64 KiB (:func:`sniff_format`): binary is OTLP protobuf, JSON is
OTLP, Jaeger or Zipkin by its keys, else an events file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Literal

from .._model._errors import InputError
from ._detect import SniffedFormat, is_binary, sniff_format
from ._events import concat_events, read_events_file
from ._schema import Events
from ._tracemap import TraceMapping
from ._traces import read_trace_file

__all__ = ["InputFormat", "input_format", "read_inputs"]

InputFormat = Literal["auto", "events", "otlp", "jaeger", "zipkin"]
_HEAD_BYTES = 65_536
_EVENT_SUFFIXES = (".csv", ".parquet", ".pq")
_TEXT_SUFFIXES = (".json", ".jsonl", ".ndjson")


def input_format(path: str | os.PathLike[str]) -> SniffedFormat:
    """What ``path`` holds, judged from its name (CSV, Parquet) and its first 64 KiB."""
    name = str(path)
    if name.lower().endswith(_EVENT_SUFFIXES):
        return "events"
    try:
        with open(name, "rb") as handle:
            head = handle.read(_HEAD_BYTES)
    except OSError as exc:
        raise InputError(f"{name}: cannot read ({exc.strerror})") from None
    kind = sniff_format(head)
    if kind == "otlp" and is_binary(head) and name.lower().endswith(_TEXT_SUFFIXES):
        return "events"  # binary named like text: the events reader says it is not UTF-8
    return kind


def read_inputs(
    paths: Iterable[str | os.PathLike[str]],
    fmt: InputFormat = "auto",
    mapping: TraceMapping | None = None,
    skip_bad: bool = False,
) -> Events:
    """Read every file and concatenate their events (context columns unified)."""
    parts = []
    for path in paths:
        kind = input_format(path) if fmt == "auto" else fmt
        if kind == "events":
            parts.append(read_events_file(path, skip_bad=skip_bad))
        else:
            parts.append(read_trace_file(path, mapping, skip_bad=skip_bad,
                                         fmt=None if fmt == "auto" else kind))
    if not parts:
        raise InputError("no input files given")
    return concat_events(parts)
