"""linuxptp's ptp4l as a measure-only peer: configuration text and its log lines.

Pure helpers (no processes): :func:`config_text` renders a ``ptp4l -f`` file that always
carries ``free_running 1`` (ptp4l then measures but never adjusts the clock), and
:func:`parse_offset_line` reads the ``master offset`` lines ptp4l prints with ``-m``.

Sign: ptp4l's ``master offset`` is *local - master*; clocksync's offset is
*reference - local*, its negative (:attr:`Ptp4lOffset.offset_ns`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "MASTER_OPTIONS",
    "SLAVE_OPTIONS",
    "Ptp4lOffset",
    "config_text",
    "parse_offset_line",
]

#: A fast-announcing master that never touches the clock (LAB-NOTES).
MASTER_OPTIONS: Mapping[str, str] = {
    "priority1": "10",
    "logSyncInterval": "-2",
    "logMinDelayReqInterval": "-2",
    "logAnnounceInterval": "-2",
    "announceReceiptTimeout": "2",
}

#: A slave-only side-by-side reference that prints every measurement.
SLAVE_OPTIONS: Mapping[str, str] = {
    "slaveOnly": "1",
    "summary_interval": "-4",
    "freq_est_interval": "0",
    "logAnnounceInterval": "-2",
    "announceReceiptTimeout": "2",
}


def config_text(uds_address: str, options: Mapping[str, str]) -> str:
    """A ``[global]`` ptp4l config with ``free_running 1`` forced (never disciplines)."""
    lines = ["[global]", f"uds_address {uds_address}"]
    lines += [f"{k} {v}" for k, v in options.items() if k not in ("free_running", "uds_address")]
    lines.append("free_running 1")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class Ptp4lOffset:
    """One ``master offset`` line of ptp4l.

    Attributes:
        monotonic_s: ptp4l's timestamp in brackets (CLOCK_MONOTONIC seconds).
        master_offset_ns: ptp4l's offset, local - master (ns).
        state: servo state (``s0`` unlocked ... ``s2`` locked).
        freq_ppb: frequency adjustment ptp4l would apply (ppb; not applied when free running).
        path_delay_ns: ptp4l's meanPathDelay (ns, one way).
    """

    monotonic_s: float
    master_offset_ns: int
    state: str
    freq_ppb: int
    path_delay_ns: int

    @property
    def offset_ns(self) -> int:
        """The same measurement in clocksync's sign: reference - local (ns)."""
        return -self.master_offset_ns


_OFFSET_RE = re.compile(
    r"ptp4l\[(?P<t>[0-9.]+)\]: (?:\S+ )?master offset\s+(?P<off>-?\d+)\s+(?P<state>s\d)"
    r"\s+freq\s+(?P<freq>[-+]?\d+)\s+path delay\s+(?P<delay>-?\d+)"
)


def parse_offset_line(line: str) -> Ptp4lOffset | None:
    """The measurement in a ptp4l ``-m`` log line, or ``None`` for other lines."""
    m = _OFFSET_RE.search(line)
    if m is None:
        return None
    return Ptp4lOffset(
        monotonic_s=float(m["t"]),
        master_offset_ns=int(m["off"]),
        state=m["state"],
        freq_ppb=int(m["freq"]),
        path_delay_ns=int(m["delay"]),
    )
