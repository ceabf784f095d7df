"""Read a running ptp4l through its UNIX-domain management socket, like ``pmc -u``.

Sends PTP Management GETs (15.4) built with our codec to ptp4l's ``uds_address`` (default
``/var/run/ptp4l``) and decodes the answers: ``TIME_STATUS_NP`` (linuxptp's last
measurement) and ``CURRENT_DATA_SET`` (8.2.2: stepsRemoved, offsetFromMaster,
meanPathDelay). :meth:`Ptp4lClient.sample` turns them into a clocksync ``Sample`` so a
local ptp4l (running with ``free_running 1``, or disciplining the clock itself) can be a
source. Nothing here changes ptp4l's state: only GETs are sent.

Sign: ptp4l's ``master_offset`` is local - master; ``Sample.offset_ns`` = master - local.
Bound: ``meanPathDelay + timestamp_error_ns``. ptp4l's offset uses its filtered path delay,
so this holds when the Sync's own path delay was within ``[0, 2 x meanPathDelay]`` (no
delay outlier on that Sync) — an assumption, unlike :func:`ptp.measure`'s per-exchange
guarantee, stated here because ptp4l does not export the exchange's timestamps.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

from clocksync import Sample

from ._codec import decode, encode
from ._errors import Ptp4lManagementError, PtpDecodeError
from ._messages import Management, ManagementTlv
from ._types import PortIdentity, scaled_ns_to_ns

__all__ = ["CurrentDataSet", "Ptp4lClient", "TimeStatus"]

TIME_STATUS_NP = 0xC000
CURRENT_DATA_SET = 0x2001
_GET, _RESPONSE = 0, 2
_TLV_MANAGEMENT_ERROR_STATUS = 0x0002

# linuxptp's struct time_status_np (network byte order): master_offset, ingress_time (ns),
# cumulativeScaledRateOffset, scaledLastGmPhaseChange, gmTimeBaseIndicator,
# lastGmPhaseChange (ScaledNs: u16 msb, u64 lsb, u16 fractional), gmPresent, gmIdentity.
_TIME_STATUS = struct.Struct(">qqiiHHQHi8s")
# CURRENT_DATA_SET (8.2.2): stepsRemoved, offsetFromMaster, meanPathDelay (TimeInterval).
_CURRENT_DS = struct.Struct(">Hqq")


@dataclass(frozen=True, slots=True)
class TimeStatus:
    """``TIME_STATUS_NP``: ptp4l's latest measurement.

    Attributes:
        master_offset_ns: ptp4l's offset, local - master (ns).
        ingress_time_ns: local receive time of the Sync it came from (ns since the epoch).
        cumulative_scaled_rate_offset: (rate ratio - 1) x 2^41.
        gm_present: whether ptp4l currently has a grandmaster.
        gm_identity: the grandmaster's clockIdentity.
    """

    master_offset_ns: int
    ingress_time_ns: int
    cumulative_scaled_rate_offset: int
    gm_present: bool
    gm_identity: bytes


@dataclass(frozen=True, slots=True)
class CurrentDataSet:
    """``CURRENT_DATA_SET`` (8.2.2): stepsRemoved, offsetFromMaster, meanPathDelay (ns)."""

    steps_removed: int
    offset_from_master_ns: float
    mean_path_delay_ns: float


class Ptp4lClient:
    """GETs on ptp4l's management socket.

    Args:
        uds_path: ptp4l's ``uds_address``.
        timeout_s: how long to wait for each answer (s).

    Raises:
        Ptp4lManagementError: no socket at ``uds_path``, no answer, or an error answer.
    """

    def __init__(self, uds_path: str = "/var/run/ptp4l", timeout_s: float = 1.0) -> None:
        self.uds_path = uds_path
        self._dir = tempfile.mkdtemp(prefix="csptp-pmc-")
        self._local = str(Path(self._dir) / "pmc.sock")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self._sock.settimeout(timeout_s)
            self._sock.bind(self._local)
        except BaseException:
            self.close()
            raise
        self._seq = 0
        self._identity = PortIdentity(clockIdentity=os.urandom(8), portNumber=os.getpid() & 0xFFFF)

    def close(self) -> None:
        """Close the socket and remove its path (idempotent)."""
        self._sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self._local)
        with contextlib.suppress(OSError):
            os.rmdir(self._dir)

    def __enter__(self) -> Ptp4lClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, management_id: int, data_len: int) -> bytes:
        """The dataField ptp4l answers to ``GET management_id`` (zero-padded request)."""
        self._seq = (self._seq + 1) & 0xFFFF
        request = Management(
            sourcePortIdentity=self._identity.copy(),
            sequenceId=self._seq,
            targetPortIdentity=PortIdentity(clockIdentity=b"\xff" * 8, portNumber=0xFFFF),
            actionField=_GET,
            tlvs=[ManagementTlv(managementId=management_id, dataField=bytes(data_len))],
        )
        try:
            self._sock.sendto(encode(request), self.uds_path)
        except OSError as exc:
            raise Ptp4lManagementError(f"ptp4l UDS {self.uds_path}: cannot send: {exc}") from None
        while True:
            try:
                data = self._sock.recv(4096)
            except TimeoutError:
                raise Ptp4lManagementError(
                    f"ptp4l UDS {self.uds_path}: no answer to GET {management_id:#06x}"
                ) from None
            try:
                msg = decode(data)
            except PtpDecodeError as exc:
                raise Ptp4lManagementError(f"ptp4l UDS {self.uds_path}: {exc}") from None
            if not isinstance(msg, Management) or int(msg.sequenceId) != self._seq:
                continue
            for tlv in msg.tlvs:
                if int(tlv.tlvType) == _TLV_MANAGEMENT_ERROR_STATUS:
                    raise Ptp4lManagementError(
                        f"ptp4l UDS {self.uds_path}: GET {management_id:#06x} refused"
                        f" (error status {bytes(tlv.valueField)[:2].hex()})"
                    )
                if isinstance(tlv, ManagementTlv) and int(tlv.managementId) == management_id:
                    return bytes(tlv.dataField)
            raise Ptp4lManagementError(
                f"ptp4l UDS {self.uds_path}: answer without management TLV {management_id:#06x}"
            )

    def time_status(self) -> TimeStatus:
        """``GET TIME_STATUS_NP``."""
        raw = self.get(TIME_STATUS_NP, _TIME_STATUS.size)
        if len(raw) < _TIME_STATUS.size:
            raise Ptp4lManagementError(f"TIME_STATUS_NP: {len(raw)} octets, need 50")
        off, ingress, csro, _sl, _tbi, _m, _l, _f, present, gm = _TIME_STATUS.unpack_from(raw)
        return TimeStatus(off, ingress, csro, bool(present), gm)

    def current_data_set(self) -> CurrentDataSet:
        """``GET CURRENT_DATA_SET``."""
        raw = self.get(CURRENT_DATA_SET, _CURRENT_DS.size)
        if len(raw) < _CURRENT_DS.size:
            raise Ptp4lManagementError(f"CURRENT_DATA_SET: {len(raw)} octets, need 18")
        steps, offset, delay = _CURRENT_DS.unpack_from(raw)
        return CurrentDataSet(steps, scaled_ns_to_ns(offset), scaled_ns_to_ns(delay))

    def sample(self, node: str, timestamp_error_ns: float = 50.0) -> Sample | None:
        """ptp4l's latest measurement as a Sample (``None`` without a grandmaster or before
        ptp4l has measured a path delay: without one, no honest bound exists)."""
        status = self.time_status()
        current = self.current_data_set()
        if not status.gm_present or status.ingress_time_ns <= 0:
            return None
        delay = current.mean_path_delay_ns
        if not delay > 0:
            return None
        return Sample(
            node=node,
            t_local_ns=status.ingress_time_ns,
            offset_ns=-float(status.master_offset_ns),
            delay_ns=2.0 * delay,
            bound_ns=delay + timestamp_error_ns,
            source=f"ptp4l:{self.uds_path}",
        )
