"""PP -> Bifrost latency with stated error bounds.

Read events or traces, correct every timestamp with its node's table, tighten cross-node
hops with causality, and report percentiles with guaranteed intervals and alerts::

    from clocksync import Corrector
    from clocksync.latency import read_inputs, compute_latencies, analyze

    events = read_inputs(["events.parquet"])
    hops = compute_latencies(events, Corrector.from_store("tables/"))  # pyarrow.Table
    report = analyze(events, corrector, window_s=10.0)

Traces (OTLP JSON/protobuf, Jaeger, Zipkin) are read into :class:`Span` records
(:func:`read_spans`) and mapped to stage events by a :class:`TraceMapping` of
:class:`StageRule`; :func:`inspect_traces` summarises what a file holds and what a map makes
of it; :func:`correct_trace_file` and :func:`annotate_request` add each span's corrected
start and bound as attributes (``clocksync.start_ref_ns``, ``clocksync.start_bound_ns``).

Dask (optional extra ``clocksync[dask]``): :mod:`clocksync.latency.dask`
(``dask_latencies``, ``dask_sketch``); ``clocksync latency --scheduler`` runs it.
"""

from .._io._columns import Column
from ._alerts import Alert, AlertConfig, WorstRequest
from ._causal import CausalAssumptions, CausalResult, PairWindow, tighten
from ._events import concat_events, read_events_file
from ._hops import CorrectorLike, Pivot, StageStamps
from ._inputs import input_format, read_inputs
from ._inspect import AttributeStats, RuleStats, SpanGroup, TraceSummary, inspect_traces
from ._percentiles import QUANTILES, grouped_quantiles, percentile_table, summary_and_windows
from ._pipeline import HopCount, HopResult, LatencyReport, analyze, compute_latencies, hop_table
from ._plot import plain_axes, plot_report
from ._presets import PRESETS, RESTATE_START_RESOLUTION_NS, preset
from ._sampling import AdaptiveSampler, SampleBatch, SamplingConfig, request_uniform
from ._schema import DEFAULT_STAGES, EVENT_COLUMNS, BadRecord, Events, hop_name, hops_of
from ._simulate import RequestModel, simulate_requests
from ._sketch import QuantileSketch
from ._spans import SPAN_KINDS, Span
from ._storage import read_latencies, write_events, write_latencies
from ._tracecorrect import (
    CLOCKSYNC_ATTRIBUTES,
    AnnotationCounts,
    CorrectedTraceFile,
    NodeCounts,
    annotate_request,
    correct_trace_file,
)
from ._tracemap import (
    SPAN_FIELDS,
    AttributeMatch,
    FieldRef,
    StageRule,
    TraceMapping,
    node_of,
    span_rows,
)
from ._traces import TraceFile, detect_format, read_spans, read_trace_file

__all__ = [
    "CLOCKSYNC_ATTRIBUTES",
    "DEFAULT_STAGES",
    "EVENT_COLUMNS",
    "PRESETS",
    "QUANTILES",
    "RESTATE_START_RESOLUTION_NS",
    "SPAN_FIELDS",
    "SPAN_KINDS",
    "AdaptiveSampler",
    "Alert",
    "AlertConfig",
    "AnnotationCounts",
    "AttributeMatch",
    "AttributeStats",
    "BadRecord",
    "CausalAssumptions",
    "CausalResult",
    "Column",
    "CorrectedTraceFile",
    "CorrectorLike",
    "Events",
    "FieldRef",
    "HopCount",
    "HopResult",
    "LatencyReport",
    "NodeCounts",
    "PairWindow",
    "Pivot",
    "QuantileSketch",
    "RequestModel",
    "RuleStats",
    "SampleBatch",
    "SamplingConfig",
    "Span",
    "SpanGroup",
    "StageRule",
    "StageStamps",
    "TraceFile",
    "TraceMapping",
    "TraceSummary",
    "WorstRequest",
    "analyze",
    "annotate_request",
    "compute_latencies",
    "concat_events",
    "correct_trace_file",
    "detect_format",
    "grouped_quantiles",
    "hop_name",
    "hop_table",
    "hops_of",
    "input_format",
    "inspect_traces",
    "node_of",
    "percentile_table",
    "plain_axes",
    "plot_report",
    "preset",
    "read_events_file",
    "read_inputs",
    "read_latencies",
    "read_spans",
    "read_trace_file",
    "request_uniform",
    "simulate_requests",
    "span_rows",
    "summary_and_windows",
    "tighten",
    "write_events",
    "write_latencies",
]
