"""Read any mix of events files and trace files into one :class:`Events`.

``fmt="auto"`` decides per file: Parquet and CSV are events files; JSON/JSONL files are
traces when their head looks like OTLP (``resourceSpans``), Jaeger (``data`` + ``traceID``)
or Zipkin (a top-level list), else events.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Literal

from .._errors import InputError
from .._tabular import file_format
from ._events import concat_events, read_events_file
from ._schema import Events
from ._traces import TraceMapping, read_trace_file

__all__ = ["InputFormat", "input_format", "read_inputs"]

InputFormat = Literal["auto", "events", "otlp", "jaeger", "zipkin"]
_HEAD_BYTES = 65_536


def input_format(path: str | os.PathLike[str]) -> Literal["events", "otlp", "jaeger", "zipkin"]:
    """What ``path`` holds, judged from its name and the first 64 KiB."""
    name = str(path)
    if file_format(name) != "jsonl":
        return "events"
    try:
        with open(name, "rb") as handle:
            head = handle.read(_HEAD_BYTES).decode("utf-8", errors="replace").lstrip()
    except OSError as exc:
        raise InputError(f"{name}: cannot read ({exc.strerror})") from None
    if head.startswith("["):
        return "zipkin"
    if '"resourceSpans"' in head:
        return "otlp"
    if '"data"' in head and '"traceID"' in head:
        return "jaeger"
    return "events"


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
            parts.append(read_trace_file(path, mapping, skip_bad=skip_bad, fmt=kind))
    if not parts:
        raise InputError("no input files given")
    return concat_events(parts)
