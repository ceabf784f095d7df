"""What tests, labs and demos need to drive clocksync against known truth.

* :class:`SimClock` — a clock with known offset, skew, wander and steps (ground truth).
* :class:`LinkModel`, :func:`simulate_samples` — NTP-style exchanges of a simulated clock
  over a path with delay, jitter, a heavy tail and asymmetry: samples whose bounds are
  truthful by construction.
* :class:`RequestModel`, :func:`simulate_requests` — PP -> Bifrost requests on simulated
  clocks: stage events with their true times.
* :class:`RestateModel`, :func:`simulate_restate` — Restate-shaped OTLP spans (ingress,
  invocation start/attempt/end, cross-partition calls) on simulated clocks, with the true
  latency of every parent->child hop; :func:`otlp_protobuf` makes a document an OTLP/HTTP
  protobuf body.
* :class:`MemorySource` — an agent source that replays given poll results.
* :class:`SimTime` — simulated time (clock, timer and sleeper) for an agent under test.
* :class:`MemoryStore` — an in-memory table store.
"""

from .._io._store import MemoryStore
from .._model._clock import SimClock
from ..agent._source import MemorySource
from ..agent._time import SimTime
from ..latency._simulate import RequestModel, simulate_requests
from ._restate import RestateModel, otlp_protobuf, simulate_restate
from ._samples import LinkModel, simulate_samples

__all__ = ["LinkModel", "MemorySource", "MemoryStore", "RequestModel", "RestateModel",
           "SimClock", "SimTime", "otlp_protobuf", "simulate_requests", "simulate_restate",
           "simulate_samples"]
