"""The live collector: OTLP spans and stage events in, corrected hop latencies with
guaranteed bounds out (Prometheus ``/metrics``, a JSON ``/report``, raw Parquet segments).
:class:`Forwarder` relays the spans upstream (OTLP/HTTP), each annotated with its corrected
start and bound.
"""

from ._forward import Forwarder, ForwardStats
from ._sink import Accepted, Sink

__all__ = ["Accepted", "ForwardStats", "Forwarder", "Sink"]
