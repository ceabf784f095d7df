"""ptp4l management client: against a scripted UDS peer (no root) and a real ptp4l (root)."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import ptp

#: managementId of the TLVs the client asks for: IEEE 1588 CURRENT_DATA_SET (Table 59) and
#: linuxptp's TIME_STATUS_NP (tlv.h)
CURRENT_DATA_SET = 0x2001
TIME_STATUS_NP = 0xC000


class ScriptedPtp4l:
    """A UNIX datagram socket answering GETs the way ptp4l does, with known values.

    Not a mock of our code: it only speaks the wire format (decoded with our codec, answered
    with bytes laid out per linuxptp's tlv.c), so the client's encode/decode path runs for real.
    """

    def __init__(self, path: Path, answers: dict[int, bytes], error_for: int | None = None):
        self.path = str(path)
        self.answers = answers
        self.error_for = error_for
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.requests: list[ptp.Management] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            req = ptp.decode(data)
            assert isinstance(req, ptp.Management)
            self.requests.append(req)
            mid = int(req.tlvs[0].managementId)
            if mid == self.error_for:
                tlvs: list[ptp.Tlv] = [
                    ptp.Tlv(tlvType=0x0002, valueField=b"\x00\x02" + mid.to_bytes(2, "big") * 2)
                ]
            else:
                tlvs = [ptp.ManagementTlv(managementId=mid, dataField=self.answers[mid])]
            resp = ptp.Management(sequenceId=req.sequenceId, actionField=2, tlvs=tlvs)
            self.sock.sendto(ptp.encode(resp), peer)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


TIME_STATUS = struct.pack(
    ">qqiiHHQHi8s", -123, 1_795_000_000_123_456_789, 0, 0, 0, 0, 0, 0, 1, b"\x0a" * 8
)
CURRENT = struct.pack(">Hqq", 1, -123 << 16, (2_150 << 16) + (1 << 15))


@pytest.fixture
def scripted(tmp_path: Path) -> Iterator[ScriptedPtp4l]:
    peer = ScriptedPtp4l(
        tmp_path / "ptp4l.sock", {TIME_STATUS_NP: TIME_STATUS, CURRENT_DATA_SET: CURRENT}
    )
    yield peer
    peer.close()


def test_time_status_and_current_data_set_decode(scripted: ScriptedPtp4l) -> None:
    with ptp.Ptp4lClient(scripted.path) as client:
        status = client.time_status()
        current = client.current_data_set()
    assert status == ptp.TimeStatus(-123, 1_795_000_000_123_456_789, 0, True, b"\x0a" * 8)
    assert current == ptp.CurrentDataSet(1, -123.0, 2_150.5)
    get = scripted.requests[0]
    assert get.actionField == 0  # GET
    assert get.targetPortIdentity.key() == (b"\xff" * 8, 0xFFFF)
    assert len(get.tlvs[0].dataField) == 50  # zero-padded like pmc


def test_sample_flips_the_sign_and_bounds_by_mean_path_delay(scripted: ScriptedPtp4l) -> None:
    with ptp.Ptp4lClient(scripted.path) as client:
        s = client.sample("n1", timestamp_error_ns=10)
    assert s is not None
    assert s.offset_ns == 123.0  # ptp4l said local - master = -123
    assert s.t_local_ns == 1_795_000_000_123_456_789
    assert s.delay_ns == 4_301.0 and s.bound_ns == 2_160.5
    assert s.source == f"ptp4l:{scripted.path}"


def test_no_sample_before_ptp4l_has_a_path_delay(tmp_path: Path) -> None:
    # meanPathDelay 0: ptp4l has not measured the path yet, so no honest bound exists
    no_delay = struct.pack(">Hqq", 1, -123 << 16, 0)
    peer = ScriptedPtp4l(tmp_path / "p.sock", {TIME_STATUS_NP: TIME_STATUS,
                                               CURRENT_DATA_SET: no_delay})
    try:
        with ptp.Ptp4lClient(peer.path) as client:
            assert client.sample("n1") is None
    finally:
        peer.close()


def test_error_status_and_missing_socket(tmp_path: Path) -> None:
    peer = ScriptedPtp4l(tmp_path / "e.sock", {CURRENT_DATA_SET: CURRENT}, TIME_STATUS_NP)
    try:
        with (
            ptp.Ptp4lClient(peer.path) as client,
            pytest.raises(ptp.Ptp4lManagementError, match="refused"),
        ):
            client.time_status()
    finally:
        peer.close()
    with (
        ptp.Ptp4lClient(str(tmp_path / "none.sock"), timeout_s=0.1) as client,
        pytest.raises(ptp.Ptp4lManagementError, match="cannot send"),
    ):
        client.time_status()


@pytest.mark.root
@pytest.mark.slow
def test_real_ptp4l_time_status_matches_its_log() -> None:
    from lab.ptp_vs_ptp4l import PtpLab, missing_requirements

    reason = missing_requirements()
    if reason is not None:
        pytest.skip(reason)
    with PtpLab() as lab:
        lab.start_ptp4l("slave")
        lab.start_master()
        assert lab.wait_for("ptp4l-slave.log", "master offset", 10.0)
        with ptp.Ptp4lClient(str(lab.workdir / "slave.sock")) as client:
            deadline = time.monotonic() + 10  # until ptp4l has measured a path delay
            first = client.sample("n")
            while first is None and time.monotonic() < deadline:
                time.sleep(0.25)
                first = client.sample("n")
            time.sleep(0.6)  # two more Syncs at 2^-2 s
            second = client.sample("n")
            status = client.time_status()
        master_log = lab.log("ptp4l-master.log")
    assert first is not None and second is not None
    assert second.t_local_ns > first.t_local_ns  # a newer Sync's ingress time
    assert abs(second.t_local_ns - time.time_ns()) < 60 * 10**9
    assert second.delay_ns > 0 and second.bound_ns > second.delay_ns / 2
    # the grandmaster ptp4l reports is the master ptp4l that announced itself
    gm_text = ptp.format_clock_identity(status.gm_identity)
    assert f"selected local clock {gm_text} as best master" in master_log
