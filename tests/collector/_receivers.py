"""What the receiver tests share: a sink that records what it is handed, OTLP requests
built with the generated classes, and a ``google.rpc.Status`` reader (the status protos are
not installed: the message types are built from their field numbers)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa
from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, duration_pb2
from google.protobuf.message_factory import GetMessageClass
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from clocksync.collector import Accepted
from clocksync.latency import BadRecord, Span

__all__ = ["TRACE_ID", "RecordingSink", "RetryInfo", "Status", "restate_request"]

TRACE_ID = bytes(range(1, 17))


class RecordingSink:
    """Records every call; refuses spans named ``reject-me``; ``retry`` (s) means over
    budget; ``fail`` makes every accept raise."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.spans: list[Span] = []
        self.bad: list[BadRecord] = []
        self.events: list[pa.Table] = []
        self.refused: list[tuple[str, str]] = []
        self.retry: float | None = None
        self.fail = False
        self.healthy = True
        self.held = threading.Event()  # clear: receivers wait to start their turn
        self.held.set()
        self.turns = 0  # decoding turns taken
        self.in_turn = 0  # receivers in their turn now
        self.accepted_in_turn: list[bool] = []  # per accept call

    def retry_after_s(self) -> float | None:
        return self.retry

    @contextlib.contextmanager
    def decoding(self) -> Iterator[None]:
        self.held.wait(30)
        with self.lock:
            self.turns += 1
            self.in_turn += 1
        try:
            yield
        finally:
            with self.lock:
                self.in_turn -= 1

    def accept_spans(self, spans: Sequence[Span], bad: Sequence[BadRecord] = ()) -> Accepted:
        if self.fail:
            raise RuntimeError("engine exploded")
        refused = [s for s in spans if s.name == "reject-me"]
        with self.lock:
            self.accepted_in_turn.append(self.in_turn > 0)
            self.spans.extend(spans)
            self.bad.extend(bad)
        reasons = [str(b) for b in bad] + [f"{s.span_id}: refused" for s in refused]
        return Accepted(len(spans) - len(refused), len(refused) + len(bad), "; ".join(reasons))

    def accept_events(self, events: pa.Table, bad: Sequence[BadRecord] = ()) -> Accepted:
        if self.fail:
            raise RuntimeError("engine exploded")
        with self.lock:
            self.accepted_in_turn.append(self.in_turn > 0)
            self.events.append(events)
            self.bad.extend(bad)
        return Accepted(events.num_rows, len(bad), "; ".join(str(b) for b in bad))

    def rejected_payload(self, endpoint: str, reason: str) -> None:
        with self.lock:
            self.refused.append((endpoint, reason))

    def report(self) -> dict[str, Any]:
        return {"hops": [], "spans": len(self.spans)}

    def health(self) -> tuple[bool, dict[str, Any]]:
        return self.healthy, {"ok": self.healthy, "spans": len(self.spans)}

    def metrics_text(self) -> tuple[bytes, str]:
        return b"clocksync_collector_spans_total 3\n", "text/plain; version=0.0.4"


def restate_request(names: Sequence[str] = ("ingress", "invocation-start"),
                    node: str = "cluster/node-1") -> ExportTraceServiceRequest:
    """A request like Restate's: one resource, spans with its attributes (and one of every
    attribute type on the first span)."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    for key, value in (("service.instance.id", node), ("service.name", "restate-server")):
        kv = rs.resource.attributes.add()
        kv.key, kv.value.string_value = key, value
    ss = rs.scope_spans.add()
    ss.scope.name = "services"
    for i, name in enumerate(names):
        sp = ss.spans.add()
        sp.trace_id = TRACE_ID
        sp.span_id = bytes([0, 0, 0, 0, 0, 0, 0, i + 1])
        if i:
            sp.parent_span_id = bytes([0, 0, 0, 0, 0, 0, 0, i])
        sp.name, sp.kind = name, 2
        sp.start_time_unix_nano = 1_700_000_000_000_000_000 + 1000 * i
        sp.end_time_unix_nano = sp.start_time_unix_nano + 500
        for key, text in (("restate.invocation.id", f"inv_{i}"),
                          ("restate.invocation.target", "Greeter/greet")):
            kv = sp.attributes.add()
            kv.key, kv.value.string_value = key, text
        if i == 0:
            kinds = sp.attributes
            kinds.add(key="n").value.int_value = -7
            kinds.add(key="ok").value.bool_value = True
            kinds.add(key="x").value.double_value = 0.25
            kinds.add(key="raw").value.bytes_value = b"\x01\xff"
            kinds.add(key="long").value.string_value = "é" * 200
            arr = kinds.add(key="list").value.array_value
            arr.values.add().string_value = "a"
            arr.values.add().int_value = 2
            kinds.add(key="empty")
        ev = sp.events.add()
        ev.name, ev.time_unix_nano = "ev", sp.start_time_unix_nano + 1
    return req


def _status_types() -> tuple[Any, Any]:
    pool = descriptor_pool.DescriptorPool()
    for module in (any_pb2, duration_pb2):
        pool.AddSerializedFile(module.DESCRIPTOR.serialized_pb)
    fd = descriptor_pb2.FileDescriptorProto(name="test_rpc_status.proto", package="google.rpc",
                                            syntax="proto3",
                                            dependency=["google/protobuf/any.proto",
                                                        "google/protobuf/duration.proto"])
    field = descriptor_pb2.FieldDescriptorProto
    status = fd.message_type.add(name="Status")
    status.field.add(name="code", number=1, type=field.TYPE_INT32, label=field.LABEL_OPTIONAL)
    status.field.add(name="message", number=2, type=field.TYPE_STRING,
                     label=field.LABEL_OPTIONAL)
    status.field.add(name="details", number=3, type=field.TYPE_MESSAGE,
                     label=field.LABEL_REPEATED, type_name=".google.protobuf.Any")
    retry = fd.message_type.add(name="RetryInfo")
    retry.field.add(name="retry_delay", number=1, type=field.TYPE_MESSAGE,
                    label=field.LABEL_OPTIONAL, type_name=".google.protobuf.Duration")
    pool.Add(fd)
    return (GetMessageClass(pool.FindMessageTypeByName("google.rpc.Status")),
            GetMessageClass(pool.FindMessageTypeByName("google.rpc.RetryInfo")))


#: ``google.rpc.Status`` and ``google.rpc.RetryInfo`` message classes
Status, RetryInfo = _status_types()
