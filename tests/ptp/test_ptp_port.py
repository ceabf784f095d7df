"""The pure slave port driven by a simulated master (real codec messages, known truth)."""

from __future__ import annotations

from dataclasses import replace

import pytest

import ptp
from ptp import (
    AnnounceDataset,
    DelayReqDue,
    ForeignMasters,
    PortConfig,
    PtpResult,
    SlavePort,
    compare_datasets,
)

ME = ptp.PortIdentity(clockIdentity=bytes.fromhex("02aabbc55c000001"), portNumber=1)
GM_A = bytes.fromhex("0a0000fffe000001")
GM_B = bytes.fromhex("0b0000fffe000002")
T0 = 1_000_000_000_000  # reference ns at the start


def announce(gm: bytes = GM_A, *, domain: int = 0, **kw: object) -> ptp.Announce:
    fields: dict[str, object] = {
        "domainNumber": domain,
        "sourcePortIdentity": ptp.PortIdentity(clockIdentity=gm, portNumber=1),
        "grandmasterIdentity": gm,
        "grandmasterPriority1": 10,
        "logMessageInterval": -2,
    }
    fields.update(kw)
    return ptp.Announce(**fields)


class SimMaster:
    """Sends Sync/Follow_Up/Delay_Resp with exact times; the slave clock is offset by theta
    and runs fast by ``skew_ppm``.

    Reference time -> local time: ``local = ref - theta_ns + skew x (ref - T0)``.
    """

    def __init__(
        self,
        gm: bytes = GM_A,
        theta_ns: int = 40_000,
        d_ms: int = 2_000,
        d_sm: int = 2_000,
        two_step: bool = True,
        domain: int = 0,
        skew_ppm: float = 0.0,
        **announce_kw: object,
    ) -> None:
        self.src = ptp.PortIdentity(clockIdentity=gm, portNumber=1)
        self.y = skew_ppm * 1e-6
        self.theta_ns, self.d_ms, self.d_sm = theta_ns, d_ms, d_sm
        self.two_step, self.domain = two_step, domain
        self.seq = 0
        self.announce_kw = announce_kw

    def local(self, ref_ns: float) -> int:
        return round(ref_ns - self.theta_ns + self.y * (ref_ns - T0))

    def ref(self, local_ns: float) -> float:
        return (local_ns + self.theta_ns + self.y * T0) / (1 + self.y)

    def truth(self, local_ns: int) -> float:
        """reference - local at local time ``local_ns``."""
        return self.ref(local_ns) - local_ns

    def announce(self) -> ptp.Announce:
        """Masters keep announcing; the slave drops them after announceReceiptTimeout."""
        return announce(bytes(self.src.clockIdentity), domain=self.domain, **self.announce_kw)

    def sync(self, t1: int, correction: int = 0) -> tuple[list[ptp.PtpMessage], int]:
        """Messages of one Sync (+Follow_Up) and the local arrival time t2."""
        self.seq += 1
        common = {
            "sourcePortIdentity": self.src,
            "sequenceId": self.seq,
            "domainNumber": self.domain,
            "logMessageInterval": -2,
        }
        if self.two_step:
            sync = ptp.Sync(flagField="twoStep", correctionField=correction, **common)
            fu = ptp.FollowUp(preciseOriginTimestamp=ptp.Timestamp.from_ns(t1), **common)
            msgs: list[ptp.PtpMessage] = [sync, fu]
        else:
            msgs = [
                ptp.Sync(
                    originTimestamp=ptp.Timestamp.from_ns(t1), correctionField=correction, **common
                )
            ]
        return msgs, self.local(t1 + self.d_ms + correction // 65536)

    def resp(self, req: ptp.DelayReq, t3: int, correction: int = 0) -> ptp.DelayResp:
        t4 = round(self.ref(t3)) + self.d_sm + correction // 65536
        return ptp.DelayResp(
            sourcePortIdentity=self.src,
            sequenceId=req.sequenceId,
            domainNumber=self.domain,
            correctionField=correction,
            logMessageInterval=-2,
            receiveTimestamp=ptp.Timestamp.from_ns(t4),
            requestingPortIdentity=req.sourcePortIdentity,
        )


def wire(msg: ptp.PtpMessage) -> ptp.PtpMessage:
    """Through the codec, as the slave would see it."""
    return ptp.decode(ptp.encode(msg))


def qualify(port: SlavePort, now_s: float = 0.0, **kw: object) -> None:
    for i in range(2):
        port.on_message(wire(announce(**kw)), 0, now_s + 0.25 * i)  # type: ignore[arg-type]


def one_exchange(
    port: SlavePort,
    master: SimMaster,
    t1: int,
    now_s: float,
    corr_ms: int = 0,
    corr_sm: int = 0,
    follow_up_first: bool = False,
    d_sm_cold: int | None = None,
) -> PtpResult | None:
    """One Sync (+Follow_Up); the Delay_Req when the port asks for one (cold ones after
    their wait, crossing in ``d_sm_cold`` instead of the master's ``d_sm``)."""
    port.on_message(wire(master.announce()), 0, now_s)
    msgs, t2 = master.sync(t1, corr_ms)
    if follow_up_first:
        msgs = msgs[::-1]
    due = None
    for m in msgs:
        out = port.on_message(wire(m), t2, now_s)
        due = out if isinstance(out, DelayReqDue) else due
    if due is None:
        return None
    assert due.at_s >= now_s
    seq, raw = port.delay_req(due.at_s, due.cold)
    req = ptp.decode(raw)
    assert isinstance(req, ptp.DelayReq) and req.sequenceId == seq
    t3 = t2 + round((due.at_s - now_s) * 1e9) + 300_000
    port.sent(seq, t3)
    saved = master.d_sm
    if due.cold and d_sm_cold is not None:
        master.d_sm = d_sm_cold
    resp = master.resp(req, t3, corr_sm)
    master.d_sm = saved
    return port.on_message(wire(resp), t3 + 10_000, now_s)


@pytest.mark.parametrize("two_step", [True, False])
def test_exchange_recovers_the_known_offset(two_step: bool) -> None:
    port = SlavePort(ME, PortConfig(max_skew_ppm=0, timestamp_error_ns=0, cold_every=0))
    qualify(port)
    master = SimMaster(theta_ns=40_000, two_step=two_step)
    res = one_exchange(port, master, T0, now_s=1.0)
    assert isinstance(res, PtpResult)
    assert res.measurement.offset_ns == 40_000
    assert res.measurement.round_trip_ns == 4_000
    assert res.measurement.bound_ns == 2_000  # half the round trip: asymmetry could be anything
    assert res.master == "0a0000.fffe.000001-1"
    assert res.accepted


def test_correction_fields_are_applied() -> None:
    port = SlavePort(ME, PortConfig(max_skew_ppm=0, timestamp_error_ns=0, cold_every=0))
    qualify(port)
    master = SimMaster(theta_ns=-7_000)
    res = one_exchange(port, master, T0, 1.0, corr_ms=80_000 << 16, corr_sm=30_000 << 16)
    assert isinstance(res, PtpResult)
    assert res.measurement.offset_ns == -7_000
    assert res.exchange.mean_path_delay_ns == 2_000


def test_follow_up_before_sync_still_pairs() -> None:
    port = SlavePort(ME, PortConfig(max_skew_ppm=0, timestamp_error_ns=0, cold_every=0))
    qualify(port)
    res = one_exchange(port, SimMaster(theta_ns=123), T0, 1.0, follow_up_first=True)
    assert isinstance(res, PtpResult)
    assert res.measurement.offset_ns == 123


def test_asymmetric_path_keeps_truth_inside_bound_over_many_exchanges() -> None:
    port = SlavePort(ME, PortConfig(window=4, cold_every=0))
    qualify(port)
    master = SimMaster(theta_ns=5_000, d_ms=9_000, d_sm=1_000)
    results = [one_exchange(port, master, T0 + i * 250_000_000, 1.0 + i * 0.25) for i in range(10)]
    assert all(isinstance(r, PtpResult) for r in results)
    for r in results:
        assert isinstance(r, PtpResult)
        assert abs(r.measurement.offset_ns - 5_000) <= r.measurement.bound_ns
        assert r.measurement.offset_ns == pytest.approx(1_000)  # biased by asymmetry / 2


def test_no_master_no_delay_req_and_other_domains_are_ignored() -> None:
    port = SlavePort(ME, PortConfig(domain=3, cold_every=0))
    master = SimMaster()
    assert one_exchange(port, master, T0, 0.0) is None  # no Announce yet
    qualify(port)  # domain 0 Announces: not ours
    assert port.master is None
    qualify(port, domain=3)
    assert port.master is not None
    assert one_exchange(port, master, T0, 1.0) is None  # master sends in domain 0
    assert isinstance(one_exchange(port, SimMaster(domain=3), T0, 1.0), PtpResult)


def test_delay_resp_for_another_slave_is_ignored() -> None:
    port = SlavePort(ME, PortConfig(cold_every=0))
    qualify(port)
    master = SimMaster()
    msgs, t2 = master.sync(T0)
    for m in msgs:
        port.on_message(wire(m), t2, 1.0)
    seq, raw = port.delay_req(1.0)
    req = ptp.decode(raw)
    assert isinstance(req, ptp.DelayReq)
    assert req.source.key() == ME.key() and req.domainNumber == 0
    port.sent(seq, t2 + 1000)
    other = req.copy()
    other.sourcePortIdentity = ptp.PortIdentity(clockIdentity=b"\x99" * 8, portNumber=1)
    assert port.on_message(wire(master.resp(other, t2 + 1000)), t2 + 5000, 1.0) is None
    assert isinstance(port.on_message(wire(master.resp(req, t2 + 1000)), t2 + 5000, 1.0), PtpResult)


def test_sync_from_a_worse_master_is_ignored() -> None:
    port = SlavePort(ME, PortConfig(cold_every=0))
    qualify(port, gm=GM_A)
    qualify(port, gm=GM_B, grandmasterPriority1=200)
    assert port.master is not None and port.master.gm_identity == GM_A
    assert one_exchange(port, SimMaster(gm=GM_B), T0, 1.0) is None


def test_utc_offset_is_removed_for_ptp_timescale_masters() -> None:
    port = SlavePort(ME, PortConfig(max_skew_ppm=0, timestamp_error_ns=0, cold_every=0))
    qualify(port, flagField="ptpTimescale+currentUtcOffsetValid", currentUtcOffset=37)
    master = SimMaster(  # master runs on TAI, local on UTC
        theta_ns=37 * 10**9 + 500,
        flagField="ptpTimescale+currentUtcOffsetValid",
        currentUtcOffset=37,
    )
    res = one_exchange(port, master, T0, 1.0)
    assert isinstance(res, PtpResult)
    assert res.measurement.offset_ns == 500


def test_delay_req_rate_follows_the_masters_interval() -> None:
    port = SlavePort(ME, PortConfig(delay_req_interval_s=1.0, cold_every=0))
    qualify(port)
    master = SimMaster()
    assert isinstance(one_exchange(port, master, T0, 1.0), PtpResult)
    # the Delay_Resp said 2^-2 s: a Sync 0.25 s later calls for the next Delay_Req
    assert isinstance(one_exchange(port, master, T0 + 250_000_000, 1.25), PtpResult)
    assert one_exchange(port, master, T0 + 300_000_000, 1.30) is None


def test_cold_requests_are_late_and_alone_set_the_path_delay() -> None:
    """Warm (right after a Sync) requests cross faster than cold ones: with cold_every the
    path delay comes from cold ones only and the offset is unbiased; the bounds hold in
    both modes."""
    offsets = {}
    for every in (0, 2):
        cfg = PortConfig(cold_every=every, emit_cold=True, seed=1, max_skew_ppm=0)
        port = SlavePort(ME, cfg)
        qualify(port)
        master = SimMaster(theta_ns=0, d_ms=3_000, d_sm=1_000)  # warm path back: 1 µs
        results = []
        for i in range(24):
            now = 1.0 + 0.25 * i
            r = one_exchange(port, master, T0 + i * 250_000_000, now, d_sm_cold=3_000)
            if r is not None:
                results.append(r)
        for r in results:
            assert abs(r.measurement.offset_ns) <= r.measurement.bound_ns
        cold = [r for r in results if r.cold]
        if every:
            assert cold and len(cold) < len(results)
            # sent 20-60 % of the Sync interval (2^-2 s) after the Sync
            assert all(50e6 <= r.exchange.turnaround_ns - 300_000 <= 150e6 for r in cold)
        else:
            assert not cold
        offsets[every] = [r.measurement.offset_ns for r in results[-4:] if not r.cold]
    assert all(o == pytest.approx(-1_000) for o in offsets[0])  # warm delay: biased
    assert all(o == pytest.approx(0, abs=1) for o in offsets[2])  # cold delay: unbiased


def test_rate_ratio_keeps_cold_delays_right_on_a_skewed_clock() -> None:
    """200 ppm fast: over a ~100 ms cold turnaround the plain round trip would be off by
    ~20 µs (negative delays); measured against the Sync stream's rate it is exact."""
    port = SlavePort(ME, PortConfig(cold_every=2, seed=3))
    qualify(port)
    master = SimMaster(theta_ns=-30_000, d_ms=2_000, d_sm=2_000, skew_ppm=200.0)
    results = []
    for i in range(40):
        r = one_exchange(port, master, T0 + i * 250_000_000, 1.0 + 0.25 * i)
        if r is not None:
            results.append(r)
    assert port.rate_ratio == pytest.approx(1 + 200e-6, abs=1e-9)
    last = results[-1]
    assert last.measurement.mean_path_delay_ns == pytest.approx(2_000, abs=2)
    for r in results:
        truth = master.truth(r.measurement.t_local_ns)
        assert abs(r.measurement.offset_ns - truth) <= r.measurement.bound_ns
    assert last.measurement.offset_ns == pytest.approx(master.truth(last.exchange.t2_ns), abs=3)


def test_port_config_rejects_cold_every_one() -> None:
    with pytest.raises(ValueError, match="cold_every"):
        PortConfig(cold_every=1)


# -- BMCA ---------------------------------------------------------------------------------


def ds(**kw: object) -> AnnounceDataset:
    return replace(AnnounceDataset.from_announce(wire(announce())), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("better", "worse"),
    [
        ({"priority1": 1}, {"priority1": 2}),
        ({"clock_class": 6}, {"clock_class": 248}),
        ({"clock_accuracy": 0x21}, {"clock_accuracy": 0xFE}),
        ({"variance": 0x4000}, {"variance": 0xFFFF}),
        ({"priority2": 1}, {"priority2": 2}),
        ({"gm_identity": b"\x01" * 8}, {"gm_identity": b"\x02" * 8}),
    ],
)
def test_dataset_comparison_order_for_different_grandmasters(
    better: dict[str, object], worse: dict[str, object]
) -> None:
    a = ds(gm_identity=b"\x05" * 8, **{k: v for k, v in better.items() if k != "gm_identity"})
    b = ds(gm_identity=b"\x06" * 8, **{k: v for k, v in worse.items() if k != "gm_identity"})
    if "gm_identity" in better:
        a, b = ds(**better), ds(**worse)
    assert compare_datasets(a, b) == -1
    assert compare_datasets(b, a) == 1


def test_dataset_comparison_same_grandmaster_uses_steps_then_sender() -> None:
    near = ds(steps_removed=0, sender=(b"\x09" * 8, 1))
    far = ds(steps_removed=1, sender=(b"\x01" * 8, 1))
    assert compare_datasets(near, far) == -1
    assert compare_datasets(ds(sender=(b"\x01" * 8, 1)), ds(sender=(b"\x02" * 8, 1))) == -1
    assert compare_datasets(near, near) == 0


def test_foreign_master_qualifies_after_two_announces_and_expires() -> None:
    table = ForeignMasters(threshold=2, receipt_timeout=3)
    d = ds()  # logMessageInterval -2: 0.25 s
    table.add(d, 0.0)
    assert table.best(0.0) is None
    table.add(d, 0.25)
    assert table.best(0.3) == d
    assert table.best(0.25 + 3 * 0.25 + 0.01) is None  # announceReceiptTimeout passed
