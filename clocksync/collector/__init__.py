"""The live collector: OTLP spans and stage events in, corrected hop latencies with
guaranteed bounds out (Prometheus ``/metrics``, a JSON ``/report``, raw Parquet segments).
"""

from ._grpc import CollectorGrpcServer
from ._http import CollectorHttpServer
from ._raw import RawLayer, RawStats
from ._sink import Accepted, Sink

__all__ = ["Accepted", "CollectorGrpcServer", "CollectorHttpServer", "RawLayer", "RawStats",
           "Sink"]
