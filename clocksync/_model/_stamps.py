"""Where a timestamp was taken: the stamp records shared by the network code and the pure
exchange arithmetic. Imports nothing (no sockets); public as :mod:`clocksync.net`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Stamp", "StampKind"]


class StampKind(enum.StrEnum):
    """Where a timestamp was taken."""

    KERNEL = "kernel"  #: by the kernel's network stack (software timestamping)
    USER = "user"  #: by this process, as tight around the system call as possible


@dataclass(frozen=True, slots=True)
class Stamp:
    """A system ``CLOCK_REALTIME`` reading (ns since the Unix epoch) and its kind."""

    system_ns: int
    kind: StampKind
