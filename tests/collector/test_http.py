"""The collector's HTTP receiver over real sockets on 127.0.0.1: OTLP/HTTP traces
(protobuf, JSON, gzip, partial success, the error codes), JSONL events, the GET endpoints,
and a sink that raises. The decoders' edge cases are tested on their own at the end."""

from __future__ import annotations

import gzip
import http.client
import json
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from clocksync.collector import CollectorHttpServer
from clocksync.collector._otlpin import PayloadError, decode_events, decode_traces, inflate
from clocksync.latency import BadRecord

from ._receivers import TRACE_ID, RecordingSink, Status, restate_request

PB = "application/x-protobuf"
JS = "application/json"


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
def server(sink: RecordingSink) -> Iterator[CollectorHttpServer]:
    with CollectorHttpServer(sink, "127.0.0.1", 0, max_body_bytes=1 << 20,
                             max_decompressed_bytes=1 << 20) as srv:
        yield srv


@pytest.fixture
def conn(server: CollectorHttpServer) -> Iterator[http.client.HTTPConnection]:
    host, port = server.address
    c = http.client.HTTPConnection(host, port, timeout=10)
    yield c
    c.close()


def call(conn: http.client.HTTPConnection, method: str, path: str, body: bytes = b"",
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn.request(method, path, body=body if body or method == "POST" else None,
                 headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data


def post(conn: http.client.HTTPConnection, path: str, body: bytes, content_type: str,
         **headers: str) -> tuple[int, dict[str, str], bytes]:
    return call(conn, "POST", path, body, {"Content-Type": content_type,
                                           **{k.replace("_", "-"): v
                                              for k, v in headers.items()}})


def otlp_json(spans: list[dict[str, Any]]) -> bytes:
    return json.dumps({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.instance.id",
                                     "value": {"stringValue": "cluster/node-2"}}]},
        "scopeSpans": [{"scope": {"name": "services"}, "spans": spans}]}]}).encode()


def json_span(name: str, span_id: str = "00000000000000aa", **extra: Any) -> dict[str, Any]:
    return {"traceId": TRACE_ID.hex(), "spanId": span_id, "name": name, "kind": 2,
            "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000000000900",
            "attributes": [{"key": "restate.invocation.id", "value": {"stringValue": "inv_9"}},
                           {"key": "n", "value": {"intValue": "42"}}], **extra}


# --- traces --------------------------------------------------------------------------------


def test_protobuf_export_reaches_the_sink_decoded(
        conn: http.client.HTTPConnection, sink: RecordingSink) -> None:
    status, headers, body = post(conn, "/v1/traces", restate_request().SerializeToString(), PB)
    assert (status, headers["content-type"]) == (200, PB)
    assert not ExportTraceServiceResponse.FromString(body).HasField("partial_success")
    first, second = sink.spans
    assert (first.trace_id, first.span_id, first.parent_span_id) == (
        TRACE_ID.hex(), "0000000000000001", "")
    assert (second.parent_span_id, second.name, second.kind) == (
        "0000000000000001", "invocation-start", "server")
    assert (first.start_ns, first.end_ns) == (1_700_000_000_000_000_000,
                                              1_700_000_000_000_000_500)
    assert first.resource == {"service.instance.id": "cluster/node-1",
                              "service.name": "restate-server"}
    assert first.events == (("ev", 1_700_000_000_000_000_001),)
    assert first.attributes.get("restate.invocation.id") == "inv_0"
    assert first.attribute("service.instance.id") == "cluster/node-1"
    assert "missing" not in first.attributes and first.attributes.get("missing", 5) == 5
    assert dict(first.attributes) == {
        "restate.invocation.id": "inv_0", "restate.invocation.target": "Greeter/greet",
        "n": -7, "ok": True, "x": 0.25, "raw": "01ff", "long": "é" * 200, "list": ["a", 2],
        "empty": None}
    assert second.attributes == {"restate.invocation.id": "inv_1",
                                 "restate.invocation.target": "Greeter/greet"}
    assert sink.bad == [] and sink.refused == []


def test_json_export_reaches_the_sink_decoded(
        conn: http.client.HTTPConnection, sink: RecordingSink) -> None:
    status, headers, body = post(conn, "/v1/traces", otlp_json([json_span("ingress")]),
                                 "application/json; charset=utf-8")
    assert (status, headers["content-type"], json.loads(body)) == (200, JS, {})
    (span,) = sink.spans
    assert (span.trace_id, span.span_id, span.kind, span.end_ns) == (
        TRACE_ID.hex(), "00000000000000aa", "server", 1_700_000_000_000_000_900)
    assert span.attributes == {"restate.invocation.id": "inv_9", "n": 42}
    assert span.resource == {"service.instance.id": "cluster/node-2"}


def test_partial_success_counts_refused_and_unreadable_spans(
        conn: http.client.HTTPConnection, sink: RecordingSink) -> None:
    status, _, body = post(conn, "/v1/traces", restate_request(
        ("ingress", "reject-me", "invocation-end")).SerializeToString(), PB)
    partial = ExportTraceServiceResponse.FromString(body).partial_success
    assert (status, partial.rejected_spans) == (200, 1)
    assert "0000000000000002: refused" in partial.error_message
    no_trace = json_span("invocation-end", "00000000000000bb")
    del no_trace["traceId"]
    status, _, body = post(conn, "/v1/traces", otlp_json(
        [json_span("ingress"), no_trace, json_span("reject-me", "00000000000000cc")]), JS)
    doc = json.loads(body)["partialSuccess"]
    assert (status, doc["rejectedSpans"]) == (200, "2")  # int64 as a string
    assert sink.bad == [BadRecord("/v1/traces: span 2", "field 'traceId' is missing or not "
                                  "a string")]
    assert "/v1/traces: span 2: field 'traceId'" in doc["errorMessage"]
    assert [s.name for s in sink.spans] == ["ingress", "reject-me", "invocation-end",
                                            "ingress", "reject-me"]


def test_gzip_bodies_and_keep_alive(conn: http.client.HTTPConnection,
                                    sink: RecordingSink) -> None:
    payloads = [(gzip.compress(restate_request().SerializeToString()), PB),
                (gzip.compress(otlp_json([json_span("ingress")])), JS),
                (restate_request(("x",)).SerializeToString(), PB)]
    sockets = []
    for body, media in payloads:
        status, headers, _ = post(conn, "/v1/traces", body, media,
                                  Content_Encoding="gzip" if body[:2] == b"\x1f\x8b"
                                  else "identity")
        assert status == 200 and headers.get("connection") != "close"
        sockets.append(conn.sock.getsockname() if conn.sock else None)
    assert sockets[0] is not None and sockets == [sockets[0]] * 3  # one connection
    assert [s.name for s in sink.spans] == ["ingress", "invocation-start", "ingress", "x"]


def test_chunked_body(conn: http.client.HTTPConnection, sink: RecordingSink) -> None:
    data = restate_request().SerializeToString()
    conn.putrequest("POST", "/v1/traces")
    conn.putheader("Content-Type", PB)
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    for part in (data[:100], data[100:]):
        conn.send(f"{len(part):x}\r\n".encode() + part + b"\r\n")
    conn.send(b"0\r\n\r\n")
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 200 and len(sink.spans) == 2
    assert post(conn, "/v1/traces", data, PB)[0] == 200  # still in step


@pytest.mark.parametrize(("media", "body", "reason", "words"), [
    (PB, b"\x0a\xff\xff\xff\xff\x0f", "bad_protobuf", "ExportTraceServiceRequest"),
    (JS, b'{"resourceSpans": [', "bad_json", "not JSON"),
    (JS, b'[1, 2]', "bad_otlp", "ExportTraceServiceRequest JSON object"),
    (JS, b'{"resourceSpans": 5}', "bad_otlp", "resourceSpans"),
    (JS, b'{"resourceSpans": [{"resource": 3}]}', "bad_otlp", "malformed"),
    (JS, b'\xff\xfe{}', "not_utf8", "UTF-8"),
])
def test_malformed_payload_is_400_with_a_status_and_counted(
        conn: http.client.HTTPConnection, sink: RecordingSink, media: str, body: bytes,
        reason: str, words: str) -> None:
    status, headers, out = post(conn, "/v1/traces", body, media)
    assert (status, headers["content-type"]) == (400, media)
    message = (Status.FromString(out).message if media == PB else json.loads(out)["message"])
    code = Status.FromString(out).code if media == PB else json.loads(out)["code"]
    assert code == 3 and words in message
    assert sink.refused == [("/v1/traces", reason)] and sink.spans == []
    assert post(conn, "/v1/traces", restate_request().SerializeToString(), PB)[0] == 200


@pytest.mark.parametrize(("headers", "reason"), [
    ({"Content-Type": "text/plain"}, "unsupported_media_type"),
    ({}, "unsupported_media_type"),
    ({"Content-Type": PB, "Content-Encoding": "br"}, "unsupported_encoding"),
])
def test_unsupported_media_or_encoding_is_415(conn: http.client.HTTPConnection,
                                              sink: RecordingSink, headers: dict[str, str],
                                              reason: str) -> None:
    status, out, body = call(conn, "POST", "/v1/traces", b"{}", headers)
    message = (Status.FromString(body).message if out["content-type"] == PB
               else json.loads(body)["message"])
    assert status == 415
    assert ("Content-Encoding 'br'" if reason == "unsupported_encoding" else
            "expected application/x-protobuf or application/json") in message
    assert sink.refused == [("/v1/traces", reason)]


def test_gzip_bomb_is_413_and_the_server_goes_on(conn: http.client.HTTPConnection,
                                                 sink: RecordingSink) -> None:
    bomb = gzip.compress(b"\0" * (8 << 20))  # 8 MiB of zeros in ~8 KiB; the limit is 1 MiB
    assert len(bomb) < 1 << 16
    status, _, body = post(conn, "/v1/traces", bomb, PB, Content_Encoding="gzip")
    assert status == 413 and "once decompressed" in Status.FromString(body).message
    status, _, _ = post(conn, "/v1/traces", gzip.compress(b"\x0a\x00")[:-4], PB,
                        Content_Encoding="gzip")
    assert status == 400
    assert sink.refused == [("/v1/traces", "too_large"), ("/v1/traces", "bad_gzip")]
    assert post(conn, "/v1/traces", restate_request().SerializeToString(), PB)[0] == 200


def test_body_over_the_limit_is_413_and_the_connection_closed(
        conn: http.client.HTTPConnection, sink: RecordingSink) -> None:
    conn.putrequest("POST", "/v1/traces")
    conn.putheader("Content-Type", PB)
    conn.putheader("Content-Length", str(2 << 20))
    conn.endheaders()
    resp = conn.getresponse()
    resp.read()
    assert (resp.status, resp.getheader("Connection")) == (413, "close")
    assert sink.refused == [("/v1/traces", "too_large")]


def test_over_budget_is_429_with_retry_after_before_decoding(
        conn: http.client.HTTPConnection, sink: RecordingSink) -> None:
    sink.retry = 2.2
    status, headers, body = post(conn, "/v1/traces", b"not a protobuf at all", PB)
    assert (status, headers["retry-after"]) == (429, "3")
    assert Status.FromString(body).code == 8  # RESOURCE_EXHAUSTED
    status, headers, body = post(conn, "/v1/events", b"garbage\n", "application/x-ndjson")
    assert (status, headers["retry-after"]) == (429, "3")
    assert sink.refused == [] and sink.spans == [] and sink.events == []
    sink.retry = None  # the same connection, in step after the bodies it did not decode
    assert post(conn, "/v1/traces", restate_request().SerializeToString(), PB)[0] == 200


def test_a_body_waits_for_the_engine_before_it_is_decoded(
        conn: http.client.HTTPConnection, sink: RecordingSink) -> None:
    import threading

    sink.held.clear()  # the engine is in a round
    got: list[int] = []
    poster = threading.Thread(target=lambda: got.append(
        post(conn, "/v1/traces", restate_request().SerializeToString(), PB)[0]))
    poster.start()
    poster.join(0.5)
    assert poster.is_alive() and sink.spans == []  # read, not yet decoded nor accepted
    sink.held.set()
    poster.join(30)
    assert got == [200] and len(sink.spans) == 2


def test_bodies_are_decoded_and_handed_over_in_a_turn_answered_after_it(
        conn: http.client.HTTPConnection, sink: RecordingSink) -> None:
    assert post(conn, "/v1/traces", restate_request().SerializeToString(), PB)[0] == 200
    assert post(conn, "/v1/events", b'{"request_id":"r","stage":"a","node":"n","ts_ns":1}\n',
                "application/x-ndjson")[0] == 200
    # both accepted inside a turn; each answer came once its turn was over
    assert sink.accepted_in_turn == [True, True]
    assert (sink.turns, sink.in_turn) == (2, 0)


def test_closing_server_answers_503_on_open_connections(
        server: CollectorHttpServer, conn: http.client.HTTPConnection,
        sink: RecordingSink) -> None:
    data = restate_request().SerializeToString()
    assert post(conn, "/v1/traces", data, PB)[0] == 200
    server.close()
    status, headers, body = post(conn, "/v1/traces", data, PB)
    assert (status, headers["retry-after"], Status.FromString(body).code) == (503, "1", 14)
    assert len(sink.spans) == 2


def test_a_sink_that_raises_is_500_and_the_server_goes_on(
        conn: http.client.HTTPConnection, sink: RecordingSink) -> None:
    sink.fail = True
    status, _, body = post(conn, "/v1/traces", restate_request().SerializeToString(), PB)
    assert status == 500 and "engine exploded" in Status.FromString(body).message
    status, _, body = post(conn, "/v1/events", b'{"request_id":"r","stage":"s","node":"n",'
                           b'"ts_ns":1}', "application/x-ndjson")
    assert status == 500 and "engine exploded" in json.loads(body)["error"]
    assert sink.refused == [("/v1/traces", "internal_error"), ("/v1/events", "internal_error")]
    sink.fail = False
    assert post(conn, "/v1/traces", restate_request().SerializeToString(), PB)[0] == 200


# --- events --------------------------------------------------------------------------------

EVENTS = b"".join(json.dumps(e).encode() + b"\n" for e in [
    {"request_id": "r1", "stage": "pp_enqueue", "node": "n1", "ts_ns": 100, "partition": 3},
    {"request_id": "r1", "stage": "pp_exit", "node": "n1", "ts_ns": 150},
    {"request_id": "r1", "stage": "bifrost_arrive", "node": "n2", "ts_ns": 170,
     "partition": 3}])


def test_events_are_handed_over_as_a_table(conn: http.client.HTTPConnection,
                                           sink: RecordingSink) -> None:
    status, _, body = post(conn, "/v1/events", EVENTS, "application/x-ndjson")
    assert (status, json.loads(body)) == (200, {"accepted": 3, "rejected": 0, "message": ""})
    status, _, _ = post(conn, "/v1/events", gzip.compress(EVENTS), "application/x-ndjson",
                        Content_Encoding="gzip")
    assert status == 200
    for table in sink.events:
        assert table.column("ts_ns").to_pylist() == [100, 150, 170]
        assert table.column("node").to_pylist() == ["n1", "n1", "n2"]
        assert table.column("partition").to_pylist() == [3, None, 3]
    assert sink.bad == []


def test_bad_event_lines_are_named_by_line(conn: http.client.HTTPConnection,
                                           sink: RecordingSink) -> None:
    lines = EVENTS.splitlines()
    body = b"\n".join([lines[0], b'{"request_id": "r1", "stage": "x", "node": "n1"}', b"",
                       b"{not json", lines[1], b"[1]",
                       b'{"request_id": "r1", "stage": "x", "node": "n1", "ts_ns": -5}'])
    status, _, out = post(conn, "/v1/events", body, "application/x-ndjson")
    doc = json.loads(out)
    assert (status, doc["accepted"], doc["rejected"]) == (200, 2, 4)
    assert [b.where for b in sink.bad] == ["/v1/events:2", "/v1/events:4", "/v1/events:6",
                                           "/v1/events:7"]
    assert sink.bad[0].reason == "field 'ts_ns' is missing"
    assert "must be >= 0" in sink.bad[3].reason
    assert "/v1/events:4: not valid JSON" in doc["message"]
    (table,) = sink.events
    assert table.column("stage").to_pylist() == ["pp_enqueue", "pp_exit"]


def test_events_refuse_other_media_types(conn: http.client.HTTPConnection,
                                         sink: RecordingSink) -> None:
    status, _, body = post(conn, "/v1/events", EVENTS, "application/x-protobuf")
    assert status == 415 and "JSON lines" in json.loads(body)["error"]
    status, _, _ = post(conn, "/v1/events", b"\xff\xfe\n", "application/x-ndjson")
    assert status == 400
    assert sink.refused == [("/v1/events", "unsupported_media_type"), ("/v1/events", "not_utf8")]


# --- GET endpoints, unknown paths, wrong methods --------------------------------------------


def test_get_endpoints(conn: http.client.HTTPConnection, sink: RecordingSink) -> None:
    status, headers, body = call(conn, "GET", "/metrics")
    assert (status, headers["content-type"]) == (200, "text/plain; version=0.0.4")
    assert body == b"clocksync_collector_spans_total 3\n"
    status, _, body = call(conn, "GET", "/report")
    assert (status, json.loads(body)) == (200, {"hops": [], "spans": 0})
    assert call(conn, "GET", "/healthz")[0] == 200
    sink.healthy = False
    status, _, body = call(conn, "GET", "/healthz?verbose=1")
    assert (status, json.loads(body)) == (503, {"ok": False, "spans": 0})
    status, headers, body = call(conn, "HEAD", "/report")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 0


@pytest.mark.parametrize(("method", "path", "code", "allow"), [
    ("GET", "/nope", 404, None), ("POST", "/v1/metrics", 404, None),
    ("GET", "/v1/traces", 405, "POST"), ("PUT", "/v1/events", 405, "POST"),
    ("POST", "/metrics", 405, "GET, HEAD"), ("DELETE", "/report", 405, "GET, HEAD"),
])
def test_unknown_paths_and_wrong_methods(conn: http.client.HTTPConnection, method: str,
                                         path: str, code: int, allow: str | None) -> None:
    status, headers, body = call(conn, method, path, b"ignored body" if method != "GET"
                                 else b"")
    assert (status, headers.get("allow")) == (code, allow)
    assert "error" in json.loads(body)
    assert call(conn, "GET", "/metrics")[0] == 200  # the connection is still in step


def test_garbage_on_the_socket_does_not_stop_the_server(server: CollectorHttpServer) -> None:
    import socket

    host, port = server.address
    for junk in (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" * 10,
                 b"POST /v1/traces HTTP/1.1\r\nContent-Length: x\r\n\r\n",
                 b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n"):
        with socket.create_connection((host, port), timeout=10) as raw:
            raw.sendall(junk)
            raw.shutdown(socket.SHUT_WR)
            assert raw.recv(100)  # an answer (the stdlib's error page), then the close
    c = http.client.HTTPConnection(host, port, timeout=10)
    assert call(c, "GET", "/healthz")[0] == 200
    c.close()


def test_a_client_that_expects_100_continue_is_told_to_send_its_body(
        server: CollectorHttpServer, sink: RecordingSink) -> None:
    import socket

    body = restate_request().SerializeToString()
    with socket.create_connection(server.address, timeout=10) as raw:
        raw.sendall(f"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: {PB}\r\n"
                    f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n".encode())
        assert raw.recv(100).startswith(b"HTTP/1.1 100")  # before any body is sent
        raw.sendall(body)
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += raw.recv(1000)
        assert answer.startswith(b"HTTP/1.1 200")
    assert len(sink.spans) == 2


# --- the decoders on their own ---------------------------------------------------------------


def test_events_decode_is_the_same_on_both_paths() -> None:
    fast, bad = decode_events(EVENTS, "/v1/events")
    slow, bad_slow = decode_events(EVENTS + b"{oops\n", "/v1/events")
    assert bad == [] and bad_slow == [BadRecord("/v1/events:4", "not valid JSON (Expecting "
                                                "property name enclosed in double quotes)")]
    assert fast.to_pylist() == slow.to_pylist()
    dated, _ = decode_events(b'{"request_id": "r", "stage": "s", "node": "n", "ts_ns": 1, '
                             b'"day": "2024-01-01"}\n', "/v1/events")
    assert dated.column("day").to_pylist() == ["2024-01-01"]  # text, not a timestamp
    odd, _ = decode_events(b'{"request_id": "r\xe2\x80\xa8", "stage": "s", "node": "n", '
                           b'"ts_ns": 1}\n[]\n', "/v1/events")  # a raw U+2028 in a string
    assert odd.column("request_id").to_pylist() == ["r\u2028"]
    empty, none = decode_events(b"\n\n", "/v1/events")
    assert (empty.num_rows, none) == (0, [])


@pytest.mark.parametrize("module", ["isal", "zlib"])
def test_inflate_bounds(module: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same answers whether ISA-L (installed with the collector) or zlib inflates."""
    from clocksync.collector import _otlpin

    if module == "zlib":
        monkeypatch.setattr(_otlpin, "_GZIP", zlib)
    else:
        isal_zlib = pytest.importorskip("isal.isal_zlib", reason="needs isal: pip install "
                                        "'clocksync[collector]'")
        assert _otlpin._GZIP is isal_zlib  # (what the collector uses where it is installed)
    data = b"x" * 1000
    assert inflate(gzip.compress(data) + b"\0" * 8, "gzip", 1000) == data  # (zero padding)
    with pytest.raises(PayloadError, match="truncated") as err:
        inflate(gzip.compress(data)[:-4], "gzip", 1000)
    assert (err.value.status, err.value.reason) == (400, "bad_gzip")
    with pytest.raises(PayloadError, match="once decompressed") as err:
        inflate(gzip.compress(b"\0" * (8 << 20)), "gzip", 1 << 20)
    assert err.value.status == 413
    assert inflate(gzip.compress(data) + gzip.compress(data), "gzip", 2000) == data * 2
    with pytest.raises(PayloadError, match="once decompressed") as err:
        inflate(gzip.compress(data) + gzip.compress(data), "gzip", 1999)
    assert err.value.status == 413
    with pytest.raises(PayloadError) as err:
        inflate(b"not gzip", "GZIP", 10)
    assert (err.value.status, err.value.reason) == (400, "bad_gzip")
    assert inflate(data, None, 1000) == data
    with pytest.raises(PayloadError):
        inflate(data, "identity", 999)


def test_an_empty_protobuf_body_is_an_empty_export() -> None:
    spans, bad = decode_traces(b"", PB, "/v1/traces")
    assert (list(spans), bad) == ([], [])
    req = ExportTraceServiceRequest()
    req.resource_spans.add().scope_spans.add().spans.add(name="no trace id")
    spans, bad = decode_traces(req.SerializeToString(), PB, "/v1/traces")
    assert (list(spans), bad) == ([], [BadRecord("/v1/traces: span 1",
                                           "field 'trace_id' is missing")])


def test_protobuf_span_attributes_behave_as_a_dict() -> None:
    import pickle

    (span, _), bad = decode_traces(restate_request().SerializeToString(), PB, "/v1/traces")
    assert bad == []
    assert span.attributes["n"] == -7 and span.attributes.get("ok") is True
    with pytest.raises(KeyError):
        span.attributes["missing"]
    copy = pickle.loads(pickle.dumps(span))
    assert type(copy.attributes) is dict and copy == span
    # (read as a map, the attributes come in key order)
    assert len(span.attributes) == 9 and list(span.attributes) == sorted(span.attributes)
    assert repr(span.attributes).startswith("{'empty': None, 'list': ['a', 2], ")
