"""``clocksync latency --scheduler``: the same report computed on Dask.

``--scheduler local:N`` starts a ``distributed.LocalCluster`` of N worker processes on
127.0.0.1 for this run; ``--scheduler tcp://HOST:PORT`` uses a running Dask scheduler. The
events are read here and cut into partitions of whole requests in time order (so no
shuffle is needed), the per-request hops computed on the workers
(:func:`clocksync.latency.dask.dask_latencies`), and the percentiles come back as one merged
sketch (:func:`~clocksync.latency.dask.dask_sketch`): each end of an interval at most one
bucket (a factor ``(1+α)/(1-α)``, α = ``--sketch-accuracy``) outside the exact interval of
one process, and still guaranteed. Causal tightening runs per partition: a causal window
(node pair × ``--causal-window`` of corrected time) is whole unless a partition boundary
cuts it, and only such a window's messages can get a wider (still valid) interval.
Windowed percentiles and alerts need one process and are not computed.
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import click
import pyarrow as pa
import pyarrow.compute as pc

from .._model._errors import InputError
from ..latency import CausalAssumptions, Events, HopCount, hop_name, hops_of
from ._latencytext import bad_lines, hop_lines, summary_lines

__all__ = [
    "DaskSummary",
    "check_options",
    "dask_summary",
    "parse_scheduler",
    "render_dask",
    "scheduler_client",
]

_LOCAL = re.compile(r"local:(\d+)")
#: how long ``tcp://HOST:PORT`` is tried (distributed retries a refused connection until then)
CONNECT_TIMEOUT_S = 10.0


def parse_scheduler(text: str) -> str:
    """``local:N`` (N >= 1) or a scheduler address ``tcp://HOST:PORT`` (any ``SCHEME://``
    that distributed knows); raises ValueError otherwise."""
    match = _LOCAL.fullmatch(text)
    if match:
        if int(match.group(1)) < 1:
            raise ValueError(f"local:N needs N >= 1 workers, got {text!r}")
        return text
    if re.fullmatch(r"[a-z][a-z0-9+.-]*://\S+:\d+", text):
        return text
    raise ValueError(f"expected local:N or tcp://HOST:PORT, got {text!r}")


@contextmanager
def scheduler_client(scheduler: str) -> Iterator[Any]:
    """A ``distributed.Client`` on ``scheduler`` (a LocalCluster for ``local:N``, closed
    on exit)."""
    try:
        distributed: Any = importlib.import_module("distributed")  # untyped library
    except ImportError:  # pragma: no cover - depends on the install
        raise InputError("--scheduler needs Dask: pip install 'clocksync[dask]'") from None
    match = _LOCAL.fullmatch(scheduler)
    if match:
        cluster = distributed.LocalCluster(
            n_workers=int(match.group(1)), threads_per_worker=1, processes=True,
            host="127.0.0.1", dashboard_address=None)
        try:
            with distributed.Client(cluster) as client:
                yield client
        finally:
            cluster.close()
        return
    try:
        client = distributed.Client(scheduler, timeout=f"{CONNECT_TIMEOUT_S:g}s")
    except OSError as exc:
        raise InputError(f"--scheduler {scheduler}: cannot reach the Dask scheduler "
                         f"({exc})") from None
    try:
        yield client
    finally:
        client.close()


@dataclass(frozen=True, slots=True)
class DaskSummary:
    """What ``--scheduler`` reports: the merged sketch's percentile table (like
    ``percentile_table``: ``count``, ``pXX_ns``, guaranteed ``pXX_low_ns``/``pXX_high_ns``,
    all-pairs rows for hops with several node pairs), per-hop counts, and how it ran."""

    summary: pa.Table
    hops: tuple[HopCount, ...]
    requests: int
    workers: int
    partitions: int
    accuracy: float


def _plain_strings(table: pa.Table) -> pa.Table:
    """Dictionary columns as plain strings, so partitions hash request ids alike."""
    for i, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type):
            table = table.set_column(i, field.name, table.column(i).cast(field.type.value_type))
    return table


def _by_request_time(table: pa.Table) -> pa.Table:
    """Events indexed by their request's rank in time (its earliest local stamp), sorted:
    partitions cut on this index hold whole requests, and consecutive stretches of time,
    so causal windows (node pair x window of corrected time) stay whole except where a
    cut falls inside one."""
    if not table.num_rows:
        return table.append_column("__request_rank", pa.array([], pa.int64()))
    first = table.group_by("request_id").aggregate([("ts_ns", "min")])
    order = pc.sort_indices(first, [("ts_ns_min", "ascending"), ("request_id", "ascending")])
    ranked = first.take(order).append_column(
        "__request_rank", pa.array(range(first.num_rows), pa.int64()))
    joined = table.join(ranked.select(["request_id", "__request_rank"]), "request_id",
                        join_type="inner", use_threads=False)
    return joined.sort_by("__request_rank")


def dask_summary(client: Any, events: Events, tables: list[Any], stages: tuple[str, ...],
                 causal: CausalAssumptions | None, skip_bad: bool,
                 accuracy: float) -> DaskSummary:
    """Run :func:`~clocksync.latency.dask.dask_latencies`, ``dask_sketch`` and
    ``dask_hop_counts`` on ``client``'s cluster."""
    dd: Any = importlib.import_module("dask.dataframe")  # untyped library

    from ..latency.dask import dask_hop_counts, dask_latencies, dask_sketch

    workers = max(1, len(client.scheduler_info().get("workers", {})))
    table = _plain_strings(events.table)
    requests = int(pc.count_distinct(table.column("request_id")).as_py()) if table.num_rows \
        else 0
    partitions = max(1, min(2 * workers, math.ceil(max(table.num_rows, 1) / 1_000)))
    frame = dd.from_pandas(_by_request_time(table).to_pandas().set_index("__request_rank"),
                           npartitions=partitions,
                           sort=True)
    # whole requests per partition already (the index): no shuffle
    hops = dask_latencies(frame, tables, stages, causal, skip_bad, shuffle=False).persist()
    sketch = dask_sketch(hops, accuracy, all_pairs=True)
    order = [hop_name(a, b) for a, b in hops_of(stages)]
    counts = dask_hop_counts(hops, order)
    rows = sketch.percentiles().to_pylist()
    pairs: dict[str, int] = {}
    for row in rows:
        if row["src_node"] != "*":
            pairs[row["hop"]] = pairs.get(row["hop"], 0) + 1
    rows = [r for r in rows if r["src_node"] != "*" or pairs.get(r["hop"], 0) > 1]
    return DaskSummary(pa.Table.from_pylist(rows), counts, requests, workers, partitions,
                       accuracy)


def render_dask(result: DaskSummary, scheduler: str, records: int,
                bad: tuple[Any, ...]) -> str:
    """The readable report of a ``--scheduler`` run (same tables as one process)."""
    lines = [f"clocksync latency: {result.requests} requests, {records} input records "
             f"({len(bad)} malformed, skipped), on Dask {scheduler} ({result.workers} "
             f"workers, {result.partitions} partitions)", *bad_lines(bad),
             f"  note: percentiles from merged sketches (accuracy {result.accuracy:g}: each "
             "end of an interval at most one bucket outside the one-process interval, still "
             "guaranteed); causal tightening per partition", ""]
    lines += summary_lines(result.summary.to_pylist(), [h.hop for h in result.hops])
    lines.append("")
    lines += hop_lines(result.hops)
    lines += ["", "alerts: not computed with --scheduler (windowed percentiles and alerts "
              "need one process)"]
    return "\n".join(lines)


def check_options(**given: object) -> None:
    """Options that need the per-request table or windows in one process."""
    used = [name for name, value in given.items() if value]
    if used:
        raise click.UsageError(f"{', '.join(used)}: not available with --scheduler (it "
                               "needs every per-request hop in one process)")
