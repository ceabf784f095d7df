"""Restate-shaped spans on simulated clocks, with the true latency of every hop.

Each invocation enters at an ingress node (span ``ingress <target>``, ns stamps), is created
on its partition's leader (``invocation-start <target>``, child of the ingress span, stamped
from a coarse clock: the stamp is the leader's local time at creation rounded *down* to
``start_resolution_ns``), runs one attempt there (``invocation-attempt``, child of the
start) and ends (``invocation-end``, child of the start). With probability ``call_p`` the
attempt calls another invocation, whose ``invocation-start`` is a child of the caller's
attempt (same trace): the cross-partition call. Spans are OTLP JSON
(``ExportTraceServiceRequest`` documents, one per node and batch), as Restate exports them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._model._clock import SimClock
from ..latency._otlp import otlp_request

__all__ = ["RestateModel", "otlp_protobuf", "simulate_restate"]


@dataclass(frozen=True, slots=True)
class RestateModel:
    """Delays (ns, uniform ranges) and shape of the simulated invocations.

    Attributes:
        propose_ns: ingress -> invocation created on the leader (through the log).
        schedule_ns: creation -> attempt starts.
        run_ns: attempt duration (-> invocation-end).
        call_ns: attempt start -> the callee is created (through the log).
        call_p: probability that an invocation makes one call.
        start_resolution_ns: the coarse clock of ``invocation-start`` stamps.
        cluster: the cluster name in ``service.instance.id``.
        batch_spans: spans per exported document (per node).
    """

    propose_ns: tuple[float, float] = (300_000.0, 3_000_000.0)
    schedule_ns: tuple[float, float] = (20_000.0, 400_000.0)
    run_ns: tuple[float, float] = (50_000.0, 2_000_000.0)
    call_ns: tuple[float, float] = (300_000.0, 3_000_000.0)
    call_p: float = 0.5
    start_resolution_ns: int = 4_000_000
    cluster: str = "sim"
    batch_spans: int = 512


def _attr(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "value": {"stringValue": value}}


class _Spans:
    """Spans collected per node, in creation order."""

    def __init__(self, clocks: Mapping[str, SimClock], rng: np.random.Generator,
                 model: RestateModel) -> None:
        self.clocks, self.rng, self.model = clocks, rng, model
        self.by_node: dict[str, list[dict[str, Any]]] = {n: [] for n in clocks}
        self.truth: dict[tuple[str, str], float] = {}

    def new_id(self, n_bytes: int) -> str:
        return bytes(self.rng.integers(0, 256, n_bytes, dtype=np.uint8)).hex()

    def span(self, node: str, trace: str, parent: str, name: str, target: str, inv: str,
             true_ns: int, coarse: bool = False) -> str:
        local = int(self.clocks[node].local_ns(true_ns))
        if coarse:
            local -= local % self.model.start_resolution_ns
        span_id = self.new_id(8)
        self.by_node[node].append({
            "traceId": trace, "spanId": span_id, "parentSpanId": parent,
            "name": f"{name} {target}", "kind": 1,
            "startTimeUnixNano": str(local), "endTimeUnixNano": str(local + 5_000),
            "attributes": [_attr("restate.invocation.id", inv),
                           _attr("restate.invocation.target", target)],
        })
        return span_id

    def documents(self) -> list[dict[str, Any]]:
        out = []
        size = self.model.batch_spans
        for node, spans in self.by_node.items():
            resource = {"attributes": [_attr("service.instance.id",
                                             f"{self.model.cluster}/{node}"),
                                       _attr("service.name", "restate-server")]}
            for at in range(0, len(spans), size):
                out.append({"resourceSpans": [{"resource": resource, "scopeSpans": [
                    {"scope": {"name": "services"}, "spans": spans[at:at + size]}]}]})
        return out


def simulate_restate(
    clocks: Mapping[str, SimClock],
    n: int,
    start_ref_ns: int,
    duration_s: float,
    rng: np.random.Generator,
    model: RestateModel | None = None,
) -> tuple[list[dict[str, Any]], dict[tuple[str, str], float]]:
    """``(documents, truth)``: ``n`` invocations (plus their calls) spread over
    ``duration_s`` on the nodes of ``clocks``; ``truth`` maps ``(request id, hop)`` to the
    true latency (ns) of that hop, the request id being the child span's invocation id."""
    m = model or RestateModel()
    out = _Spans(clocks, rng, m)
    nodes = sorted(clocks)

    def uniform(bounds: tuple[float, float]) -> int:
        return round(rng.uniform(*bounds))

    def invocation(inv: str, trace: str, parent: str, parent_stage: str, sent_ns: int,
                   depth: int) -> None:
        """The invocation ``inv`` created by ``parent`` (stamped at ``sent_ns``)."""
        target = "Counter/add" if depth else "Greeter/greet"
        leader = nodes[int(rng.integers(len(nodes)))]
        t_start = sent_ns + uniform(m.call_ns if depth else m.propose_ns)
        start = out.span(leader, trace, parent, "invocation-start", target, inv, t_start,
                         coarse=True)
        out.truth[(inv, f"{parent_stage}->invocation-start")] = float(t_start - sent_ns)
        t_attempt = t_start + uniform(m.schedule_ns)
        attempt = out.span(leader, trace, start, "invocation-attempt", target, inv, t_attempt)
        out.truth[(inv, "invocation-start->invocation-attempt")] = float(t_attempt - t_start)
        t_end = t_attempt + uniform(m.run_ns)
        out.span(leader, trace, start, "invocation-end", target, inv, t_end)
        out.truth[(inv, "invocation-start->invocation-end")] = float(t_end - t_start)
        if depth == 0 and rng.random() < m.call_p:
            invocation("inv_" + out.new_id(10), trace, attempt, "invocation-attempt",
                       t_attempt, depth + 1)

    times = start_ref_ns + np.sort(rng.uniform(0, duration_s * 1e9, n)).astype(np.int64)
    for t in times.tolist():
        trace, inv = out.new_id(16), "inv_" + out.new_id(10)
        ingress = nodes[int(rng.integers(len(nodes)))]
        root = out.span(ingress, trace, "", "ingress", "Greeter/greet", inv, t)
        invocation(inv, trace, root, "ingress", t, 0)
    return out.documents(), out.truth


def otlp_protobuf(doc: dict[str, Any]) -> bytes:
    """An OTLP JSON ``ExportTraceServiceRequest`` (hex ids, as OTLP/JSON writes them) as its
    protobuf body (needs the ``otlp`` extra)."""
    request = otlp_request(json.dumps(doc).encode(), "application/json")
    return bytes(request.SerializeToString())
