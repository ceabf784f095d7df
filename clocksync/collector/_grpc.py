"""The collector's OTLP/gRPC receiver: ``TraceService/Export`` feeding the same sink as
the HTTP receiver (optional extra ``clocksync[grpc]``: grpcio, imported only when a server
is made, so the package loads without it).

The request bytes are decoded here, not by gRPC, so that an over-budget sink is answered
before decoding and a malformed request is counted: over budget, ``UNAVAILABLE`` (the OTLP
throttling code: exporters retry it) with a ``google.rpc.RetryInfo`` giving the delay in
``grpc-status-details-bin``; a request that is no ``ExportTraceServiceRequest``,
``INVALID_ARGUMENT`` naming what is wrong; an exception in the sink, ``INTERNAL``. Spans the
sink refused are counted in the response's ``partial_success``.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any

from .._model._errors import InputError
from ._otlpin import (
    INTERNAL,
    INVALID_ARGUMENT,
    PROTOBUF,
    UNAVAILABLE,
    PayloadError,
    decode_traces,
    export_response,
    rpc_status,
)
from ._sink import Sink

__all__ = ["DEFAULT_GRPC_PORT", "ENDPOINT", "CollectorGrpcServer"]

log = logging.getLogger("clocksync.collector")

#: the OTLP/gRPC port
DEFAULT_GRPC_PORT = 4317
#: the endpoint name the sink counts gRPC payloads and bad spans under
ENDPOINT = "otlp-grpc"
_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"


def _grpc() -> Any:
    try:
        import grpc
    except ImportError:
        raise InputError("collector: the OTLP/gRPC receiver needs grpcio: "
                         "pip install 'clocksync[grpc]'") from None
    return grpc


class _Export:
    """``TraceService/Export`` on raw request bytes."""

    def __init__(self, sink: Sink, grpc: Any) -> None:
        self._sink = sink
        self._grpc = grpc

    def _refuse(self, reason: str) -> None:
        try:
            self._sink.rejected_payload(ENDPOINT, reason)
        except Exception:
            log.exception("collector: the sink failed to count a refused payload")

    def __call__(self, body: bytes, context: Any) -> bytes:
        codes = self._grpc.StatusCode
        try:
            wait_s = self._sink.retry_after_s()
            if wait_s is not None:
                message = f"over the collector's memory budget: retry after {wait_s:.3g} s"
                failure = (codes.UNAVAILABLE, message, rpc_status(UNAVAILABLE, message, wait_s))
            else:
                with self._sink.decoding():
                    spans, bad = decode_traces(body, PROTOBUF, ENDPOINT)
                    accepted = self._sink.accept_spans(spans, bad)
                    forward = getattr(self._sink, "forward_body", None)
                    if forward is not None:  # the engine relays upstream (--forward)
                        forward(body, PROTOBUF)
                return export_response(accepted.rejected, accepted.message, PROTOBUF)[0]
        except PayloadError as exc:
            self._refuse(exc.reason)
            failure = (codes.INVALID_ARGUMENT, exc.message,
                       rpc_status(INVALID_ARGUMENT, exc.message))
        except Exception as exc:
            log.exception("collector: gRPC export failed")
            self._refuse("internal_error")
            message = f"internal error: {type(exc).__name__}: {exc}"
            failure = (codes.INTERNAL, message, rpc_status(INTERNAL, message))
        code, message, details = failure
        context.set_trailing_metadata((("grpc-status-details-bin", details),))
        context.abort(code, message)  # raises
        raise AssertionError("unreachable")  # pragma: no cover


class CollectorGrpcServer:
    """An OTLP/gRPC trace receiver serving in background threads.

    Args:
        sink: what decoded spans are handed to (the collector's engine).
        host, port: where to listen (127.0.0.1 by default; port 0 picks a free one: see
            :attr:`address`).
        max_message_bytes: largest request accepted (bytes; gRPC answers
            ``RESOURCE_EXHAUSTED`` beyond).
        workers: threads serving requests.

    Raises:
        InputError: grpcio is not installed (``pip install 'clocksync[grpc]'``), or the
            address cannot be bound.
    """

    def __init__(self, sink: Sink, host: str = "127.0.0.1", port: int = DEFAULT_GRPC_PORT,
                 *, max_message_bytes: int = 16 << 20, workers: int = 4) -> None:
        grpc = _grpc()
        self._host = host
        self._server = grpc.server(
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="clocksync-grpc"),
            options=[("grpc.max_receive_message_length", max_message_bytes),
                     ("grpc.so_reuseport", 0)])
        handler = grpc.unary_unary_rpc_method_handler(
            _Export(sink, grpc), request_deserializer=None, response_serializer=None)
        self._server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(_SERVICE, {"Export": handler}),))
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            bound = self._server.add_insecure_port(target)
        except RuntimeError:
            bound = 0
        if not bound:
            raise InputError(f"collector: cannot listen for gRPC on {target}")
        self._port = int(bound)

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` actually bound."""
        return self._host, self._port

    def start(self) -> CollectorGrpcServer:
        """Serve in background threads; returns ``self``."""
        self._server.start()
        return self

    def close(self, grace_s: float = 1.0) -> None:
        """Stop serving: refuse new calls, give running ones ``grace_s`` seconds."""
        self._server.stop(grace_s).wait()

    def __enter__(self) -> CollectorGrpcServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
