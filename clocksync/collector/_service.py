"""The collector as a service: the engine, its receivers, metrics, raw layer, forwarder and
alert webhook wired together from a :class:`CollectorConfig`, run until told to stop."""

from __future__ import annotations

import functools
import gc
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from .._corrector import Corrector
from ..agent import parse_listen
from ..latency import Alert, annotate_request, resolution_warning
from ._config import CollectorConfig
from ._engine import Engine, post_alert
from ._forward import Forwarder
from ._http import CollectorHttpServer
from ._metrics import CollectorMetrics
from ._raw import RawLayer

__all__ = ["GC_THRESHOLDS", "TICK_S", "arrow_memory_pool", "build_engine", "run_collector"]

log = logging.getLogger(__name__)

#: how often the engine thread works through its inbox (s; at once again when a round took
#: longer)
TICK_S = 0.1


def build_engine(config: CollectorConfig) -> Engine:
    """The engine of ``config``: tables from its store, metrics, raw layer (if
    ``data_dir``), alert webhook (if ``alert_webhook``)."""
    warning = resolution_warning(config.preset) if config.preset else None
    if warning:
        log.warning("%s", warning)
    corrector = Corrector.from_store(config.store)
    for node, why in corrector.load_errors.items():
        log.warning("table %s left out: %s", node, why)
    raw = None
    if config.data_dir:
        raw = RawLayer(config.data_dir, max_segment_bytes=config.segment_max_bytes,
                       max_segment_age_s=config.segment_max_age_s,
                       retention_s=config.retention_s or None)
    on_alert: Callable[[Alert], None] | None = None
    if config.alert_webhook:
        url = config.alert_webhook

        def on_alert(alert: Alert) -> None:  # off the engine thread: a slow hook waits alone
            threading.Thread(target=post_alert, args=(url, alert), daemon=True).start()

    forwarder = None
    if config.forward:
        forwarder = Forwarder(config.forward, annotate=functools.partial(
            annotate_request, corrector=corrector, mapping=config.mapping()))
    return Engine(config, corrector, metrics=CollectorMetrics(), raw=raw, on_alert=on_alert,
                  forwarder=forwarder)


#: the collector's garbage-collector thresholds (gen0 allocations, gen1 and gen2 passes)
GC_THRESHOLDS = (100_000, 50, 1000)


def _tune_gc() -> None:
    """Fewer, larger young-generation collections, and none of the objects made at start
    scanned again: the engine keeps many long-lived objects (pending spans, buffered
    tables), and Python's default thresholds (700 allocations) had the collector spend more
    time in the cyclic garbage collector than decoding spans. Memory is still freed by
    reference counting at once; only reference cycles wait longer."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def arrow_memory_pool() -> str:
    """Use jemalloc for Arrow's buffers (the system allocator where this pyarrow has no
    jemalloc), unless ``ARROW_DEFAULT_MEMORY_POOL`` names a pool; returns the pool's name.
    The engine allocates and frees tens of MB of short-lived buffers a second; with
    pyarrow's default (mimalloc) much of a step's time went to the kernel, handing fresh
    pages back and forth (measured: 10.4-13.1 us of CPU per span with mimalloc, 8.2-8.4
    with jemalloc, 9.1-9.7 with the system allocator, in process on the bench's spans)."""
    if not os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        try:
            pa.set_memory_pool(pa.jemalloc_memory_pool())
        except NotImplementedError:  # a pyarrow built without jemalloc
            pa.set_memory_pool(pa.system_memory_pool())
    return str(pa.default_memory_pool().backend_name)


def run_collector(config: CollectorConfig, stop: threading.Event,
                  on_start: Callable[[list[str]], None] | None = None) -> dict[str, Any]:
    """Serve until ``stop`` is set; then stop accepting, take in everything accepted
    (into the raw layer) and close. Returns the engine's counts."""
    log.info("Arrow memory pool: %s", arrow_memory_pool())
    engine = build_engine(config)
    _tune_gc()
    host, port = parse_listen(config.listen, "listen")
    http = CollectorHttpServer(engine, host, port).start()
    grpc: Any = None
    urls = [http.url]
    try:
        if config.grpc_listen:
            from ._grpc import CollectorGrpcServer

            g_host, g_port = parse_listen(config.grpc_listen, "grpc_listen")
            grpc = CollectorGrpcServer(engine, g_host, g_port).start()
            urls.append(f"grpc://{g_host}:{grpc.address[1]}")
        if on_start is not None:
            on_start(urls)
        next_s = time.monotonic() + TICK_S
        while not stop.wait(max(0.0, next_s - time.monotonic())):
            # a round every TICK_S; one after another while a round takes longer (backlog)
            next_s = max(next_s + TICK_S, time.monotonic())
            try:
                engine.tick()
            except Exception:  # never let one bad round stop the service
                log.exception("engine round failed")
    finally:
        http.close()
        if grpc is not None:
            grpc.close()
        engine.close()
        if engine.forwarder is not None:
            engine.forwarder.close(5.0)
    return dict(engine.counts)
