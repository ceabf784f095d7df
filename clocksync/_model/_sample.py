"""The measurement record that flows from sources to the model fit.

Sign convention (project-wide, docs/model.md): ``offset_ns = reference_time - local_time``;
a positive offset means the local clock is *behind* the reference. ``bound_ns`` is a
half-width: the true offset at ``t_local_ns`` lies in ``[offset_ns - bound_ns, offset_ns +
bound_ns]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ._errors import InputError

__all__ = ["TIMESTAMP_ERROR_NS", "Sample", "default_bound_ns"]

#: Default timestamping error added to a sample's bound when the source states none (ns).
TIMESTAMP_ERROR_NS = 1_000.0


def default_bound_ns(
    delay_ns: float,
    root_delay_ns: float = 0.0,
    root_dispersion_ns: float = 0.0,
    timestamp_error_ns: float = TIMESTAMP_ERROR_NS,
) -> float:
    """A sample's own bound: ``delay/2 + root_delay/2 + root_dispersion + timestamping error``.

    Asymmetry can put the true offset anywhere inside ``±delay/2``, so nothing tighter is
    physically justified from one exchange.
    """
    return delay_ns / 2.0 + root_delay_ns / 2.0 + root_dispersion_ns + timestamp_error_ns


@dataclass(frozen=True, slots=True)
class Sample:
    """One offset measurement of ``node``'s clock against a reference.

    Attributes:
        node: name of the measured node.
        t_local_ns: local clock reading (ns since the Unix epoch) the offset refers to.
        offset_ns: reference minus local time (ns); positive means the local clock is behind.
        delay_ns: round-trip network delay of the exchange (ns), >= 0.
        bound_ns: half-width of the interval that holds the true offset (ns); computed from
            the delays with :func:`default_bound_ns` when not given.
        source: where the sample came from (``"ntp:10.200.0.1"``, ``"ptp:veth_b"``, ...).
        root_delay_ns, root_dispersion_ns: the server's distance to its own reference (ns).
        stratum: the server's stratum (0 when unknown).
    """

    node: str
    t_local_ns: int
    offset_ns: float
    delay_ns: float
    bound_ns: float | None = None
    source: str = ""
    root_delay_ns: float = 0.0
    root_dispersion_ns: float = 0.0
    stratum: int = 0

    def __post_init__(self) -> None:
        if not self.node:
            raise InputError("Sample.node: must be a non-empty string")
        for name in ("offset_ns", "delay_ns", "root_delay_ns", "root_dispersion_ns"):
            value = getattr(self, name)
            if not math.isfinite(value):
                raise InputError(f"Sample.{name}: must be finite, got {value!r}")
        if self.delay_ns < 0:
            raise InputError(f"Sample.delay_ns: must be >= 0, got {self.delay_ns!r}")
        if self.t_local_ns < 0:
            raise InputError(f"Sample.t_local_ns: must be >= 0, got {self.t_local_ns!r}")
        if self.bound_ns is None:
            object.__setattr__(
                self,
                "bound_ns",
                default_bound_ns(self.delay_ns, self.root_delay_ns, self.root_dispersion_ns),
            )
        elif not (math.isfinite(self.bound_ns) and self.bound_ns > 0):
            raise InputError(f"Sample.bound_ns: must be finite and > 0, got {self.bound_ns!r}")

    @property
    def bound(self) -> float:
        """``bound_ns`` as a float (always set after construction)."""
        assert self.bound_ns is not None
        return self.bound_ns
