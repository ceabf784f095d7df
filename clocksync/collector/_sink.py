"""What the collector's receivers (HTTP, gRPC) hand their decoded input to.

A receiver decodes a payload (OTLP spans, JSONL stage events) and offers it to a
:class:`Sink`; the sink maps, pairs, corrects and counts. Before decoding, a receiver asks
:meth:`Sink.retry_after_s`: a number means "over the memory budget, answer 429/503 with this
``Retry-After``"; then it decodes and hands over the payload inside :meth:`Sink.decoding`,
its turn. Decoding and the engine's rounds share one interpreter lock (and, pinned, one
core): payloads decoded side by side only share the core, at the price of switching between
them, and a round that has to win the lock back from busy receivers after each of its many
native calls takes several times its CPU time. So a turn waits while a round runs, and only
so many receivers decode at once.

A sink may also have ``forward_body(body: bytes, media: str)``: receivers call it with each
accepted OTLP traces body (decompressed; ``media`` ``application/x-protobuf`` or
``application/json``) so that the sink can relay it upstream.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import pyarrow as pa

from ..latency import BadRecord, Span

__all__ = ["Accepted", "Sink"]


@dataclass(frozen=True, slots=True)
class Accepted:
    """What a sink made of one payload.

    Attributes:
        items: spans or events taken in.
        rejected: spans or events refused (OTLP partial success ``rejectedSpans``).
        message: why some were refused (``""`` when none were): OTLP ``errorMessage``.
    """

    items: int
    rejected: int = 0
    message: str = ""


class Sink(Protocol):
    """The collector's engine as its receivers see it."""

    def retry_after_s(self) -> float | None:
        """``None``: room for more; else seconds a client should wait (over budget)."""
        ...

    def decoding(self) -> AbstractContextManager[None]:
        """A receiver's turn to decode a payload and hand it over: entered once few enough
        other receivers hold one and the engine is not in a round (or after a bounded
        wait); the receiver answers its client after leaving it."""
        ...

    def accept_spans(self, spans: Sequence[Span], bad: Sequence[BadRecord] = ()) -> Accepted:
        """Take decoded spans; ``bad`` are spans the decoder could not read (counted as
        rejected, named in the message)."""
        ...

    def accept_events(self, events: pa.Table, bad: Sequence[BadRecord] = ()) -> Accepted:
        """Take stage events (columns ``request_id, stage, node, ts_ns`` + context)."""
        ...

    def rejected_payload(self, endpoint: str, reason: str) -> None:
        """Count a payload refused as a whole (HTTP 400/415/413), by endpoint and reason."""
        ...

    def report(self) -> dict[str, Any]:
        """The current windows' report: the JSON of ``clocksync latency --json``."""
        ...

    def health(self) -> tuple[bool, dict[str, Any]]:
        """``(healthy, details)`` for ``GET /healthz``."""
        ...

    def metrics_text(self) -> tuple[bytes, str]:
        """``(body, content type)`` of the Prometheus exposition for ``GET /metrics``."""
        ...
