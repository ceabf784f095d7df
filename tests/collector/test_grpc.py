"""The collector's OTLP/gRPC receiver over a real channel on 127.0.0.1: an export round
trip, partial success, a malformed request, the over-budget answer with its RetryInfo, and
a sink that raises."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from clocksync import InputError
from clocksync.collector import CollectorGrpcServer
from clocksync.latency import BadRecord

from ._receivers import TRACE_ID, RecordingSink, RetryInfo, Status, restate_request

grpc = pytest.importorskip("grpc", reason="grpcio is not installed (pip install "
                           "'clocksync[grpc]')")
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc  # noqa: E402
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (  # noqa: E402
    ExportTraceServiceRequest,
)


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
def channel(sink: RecordingSink) -> Iterator[Any]:
    with CollectorGrpcServer(sink, "127.0.0.1", 0) as server:
        host, port = server.address
        assert port > 0
        with grpc.insecure_channel(f"{host}:{port}") as chan:
            yield chan


def export(channel: Any, request: ExportTraceServiceRequest) -> Any:
    return trace_service_pb2_grpc.TraceServiceStub(channel).Export(request, timeout=10)


def details(err: Any) -> Any:
    (blob,) = [v for k, v in err.trailing_metadata() if k == "grpc-status-details-bin"]
    return Status.FromString(blob)


def test_export_round_trip_with_partial_success(channel: Any, sink: RecordingSink) -> None:
    response = export(channel, restate_request())
    assert not response.HasField("partial_success")
    first, second = sink.spans
    assert (first.trace_id, second.parent_span_id, second.name) == (
        TRACE_ID.hex(), "0000000000000001", "invocation-start")
    assert first.attributes.get("restate.invocation.id") == "inv_0"
    assert first.resource["service.instance.id"] == "cluster/node-1"
    request = restate_request(("ingress", "reject-me"))
    request.resource_spans[0].scope_spans[0].spans.add(name="no trace id")
    response = export(channel, request)
    assert response.partial_success.rejected_spans == 2
    assert "otlp-grpc: span 3: field 'trace_id' is missing" in \
        response.partial_success.error_message
    assert sink.bad == [BadRecord("otlp-grpc: span 3", "field 'trace_id' is missing")]


def test_malformed_request_is_invalid_argument_and_counted(
        channel: Any, sink: RecordingSink) -> None:
    raw = channel.unary_unary(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export")
    with pytest.raises(grpc.RpcError) as err:
        raw(b"\x0a\xff\xff\xff\xff\x0f", timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "ExportTraceServiceRequest" in err.value.details()
    assert details(err.value).code == 3
    assert sink.refused == [("otlp-grpc", "bad_protobuf")] and sink.spans == []


def test_over_budget_is_unavailable_with_retry_info(channel: Any, sink: RecordingSink) -> None:
    sink.retry = 2.5
    with pytest.raises(grpc.RpcError) as err:
        export(channel, restate_request())
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    status = details(err.value)
    assert status.code == 14 and "memory budget" in status.message
    info = RetryInfo()
    assert status.details[0].Unpack(info)
    assert (info.retry_delay.seconds, info.retry_delay.nanos) == (2, 500_000_000)
    assert sink.spans == [] and sink.refused == []
    sink.retry = None
    export(channel, restate_request())
    assert len(sink.spans) == 2


def test_a_sink_that_raises_is_internal_and_the_server_goes_on(
        channel: Any, sink: RecordingSink) -> None:
    sink.fail = True
    with pytest.raises(grpc.RpcError) as err:
        export(channel, restate_request())
    assert err.value.code() == grpc.StatusCode.INTERNAL
    assert "engine exploded" in err.value.details()
    assert sink.refused == [("otlp-grpc", "internal_error")]
    sink.fail = False
    export(channel, restate_request())
    assert len(sink.spans) == 2


def test_a_busy_port_is_a_clear_error(sink: RecordingSink) -> None:
    with CollectorGrpcServer(sink, "127.0.0.1", 0) as server, \
            pytest.raises(InputError, match="cannot listen for gRPC"):
        CollectorGrpcServer(sink, "127.0.0.1", server.address[1])
