"""The live collector: OTLP spans and stage events in, corrected hop latencies with
guaranteed bounds out (Prometheus ``/metrics``, a JSON ``/report``, raw Parquet segments).
"""

from ._metrics import BUCKETS_PER_DECADE, BUCKETS_S, AlertKey, CollectorMetrics, QuantileRow
from ._sink import Accepted, Sink

__all__ = ["BUCKETS_PER_DECADE", "BUCKETS_S", "Accepted", "AlertKey", "CollectorMetrics",
           "QuantileRow", "Sink"]
