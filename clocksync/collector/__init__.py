"""The live collector: OTLP spans and stage events in, corrected hop latencies with
guaranteed bounds out (Prometheus ``/metrics``, a JSON ``/report``, raw Parquet segments).

``clocksync collector run`` is :func:`run_collector` on a :class:`CollectorConfig`
(:func:`load_collector_config` reads the TOML file and flags). The :class:`Engine` is the
:class:`Sink` its receivers (:class:`CollectorHttpServer`, :class:`CollectorGrpcServer`)
feed; :class:`CollectorMetrics` is its Prometheus side, :class:`RawLayer` its raw Parquet
segments; :func:`arrow_memory_pool` puts Arrow on jemalloc, as the service does at start;
:class:`Forwarder` relays the spans upstream (OTLP/HTTP), each annotated with its
corrected start time and bound.
"""

from ._config import COLLECTOR_OPTIONS, CollectorConfig, load_collector_config
from ._engine import Engine, StepResult
from ._forward import Forwarder, ForwardStats
from ._grpc import CollectorGrpcServer
from ._http import CollectorHttpServer
from ._metrics import BUCKETS_PER_DECADE, BUCKETS_S, AlertKey, CollectorMetrics, QuantileRow
from ._raw import RawLayer, RawStats
from ._service import arrow_memory_pool, build_engine, run_collector
from ._sink import Accepted, Sink

__all__ = ["BUCKETS_PER_DECADE", "BUCKETS_S", "COLLECTOR_OPTIONS", "Accepted", "AlertKey",
           "CollectorConfig", "CollectorGrpcServer", "CollectorHttpServer", "CollectorMetrics",
           "Engine", "ForwardStats", "Forwarder", "QuantileRow", "RawLayer", "RawStats", "Sink",
           "StepResult", "arrow_memory_pool", "build_engine", "load_collector_config",
           "run_collector"]
