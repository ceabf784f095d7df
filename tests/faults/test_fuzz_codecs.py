"""Fuzz the NTP and PTP decoders with structured-but-wrong messages, and the PTP slave port
with hostile message sequences.

``tests/ntp/test_ntp_packet.py`` and ``tests/ptp/test_ptp_fuzz.py`` already throw random
and mutated bytes at the codecs. Here the inputs are *well-formed where it is easy and wrong
where it matters*: valid messages with one header field set to a lie (messageLength,
versionPTP, messageType relabelled to another type, TLV lengths, nanoseconds >= 10^9), NTP
replies with every field drawn from its hostile values, and Sync/Follow_Up/Delay_Resp
streams with wrong sequence ids, from a non-selected master, for another slave or another
domain.

Properties: only the documented errors escape (``NtpRejectError`` and subclasses,
``PtpDecodeError``); what decodes re-encodes to the same bytes; a reply that validates is
sane on every field checked; the slave port never raises and only ever completes exchanges
of its selected master, for Delay_Reqs it sent, with a bound that is not NaN.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

import ptp
from clocksync.ntp import NtpPacket, NtpRejectError, decode, encode, ntp_to_ns, validate_reply
from ptp import DelayReqDue, MessageType, PortConfig, PtpResult, SlavePort
from tests._fuzz import fuzz_settings
from tests.ptp.ptp_strategies import messages

pytestmark = pytest.mark.fuzz

# --- NTP -----------------------------------------------------------------------------------

NONCE = 0x0123_4567_89AB_CDEF
#: what validate_reply accepts: server times in [2000-01-01, 2100-01-01) UTC, root delay and
#: dispersion under 16 s (RFC 5905 MAXDISP)
SANE_UNIX_S = (946_684_800, 4_102_444_800)
MAX_ROOT_NS = 16_000_000_000
_NOW = (3_976_000_000 << 32)  # an NTP time in 2025
ntp_times = st.one_of(
    st.sampled_from([0, 1, NONCE, _NOW, _NOW + 1, (1 << 64) - 1, 1 << 63, (1 << 31) << 32,
                     ((1 << 31) - 1) << 32, (2_208_988_800 - 1) << 32]),
    st.integers(0, (1 << 64) - 1),
    st.integers(_NOW - (1 << 40), _NOW + (1 << 40)),
)


@st.composite
def ntp_replies(draw: st.DrawFn) -> NtpPacket:
    return NtpPacket(
        leap=draw(st.integers(0, 3)), version=draw(st.integers(0, 7)),
        mode=draw(st.sampled_from([4, 4, 4, 0, 1, 2, 3, 5, 6, 7])),
        stratum=draw(st.sampled_from([2, 2, 0, 1, 15, 16, 255])),
        poll=draw(st.integers(-128, 127)), precision=draw(st.integers(-128, 127)),
        root_delay=draw(st.sampled_from([0, 1 << 16, (16 << 16) - 1, 16 << 16, (1 << 32) - 1])),
        root_dispersion=draw(st.integers(0, (1 << 32) - 1)),
        reference_id=draw(st.sampled_from([0, int.from_bytes(b"RATE", "big"),
                                           int.from_bytes(b"DENY", "big"), 0x7F000001])),
        reference_ts=draw(ntp_times), origin_ts=draw(st.sampled_from([NONCE, NONCE ^ 1, 0])),
        receive_ts=draw(ntp_times), transmit_ts=draw(ntp_times),
    )


@fuzz_settings()
@given(ntp_replies(), st.booleans(), st.binary(max_size=24))
def test_ntp_hostile_replies_are_refused_or_sane(reply: NtpPacket, interleaved: bool,
                                                 tail: bytes) -> None:
    wire = encode(reply) + tail  # extension fields / MAC: ignored by the decoder
    got = decode(wire)
    assert got == reply and encode(got) == wire[:48]
    try:
        validate_reply(got, NONCE, interleaved=interleaved)
    except NtpRejectError as exc:
        assert str(exc).endswith(f"[{exc.reason.value}]")
        return
    assert got.origin_ts == NONCE and got.mode == 4 and got.version in (3, 4)
    assert 1 <= got.stratum <= 15 and got.leap != 3
    for value in (got.receive_ts, got.transmit_ts):
        assert SANE_UNIX_S[0] * 10**9 <= ntp_to_ns(value) < SANE_UNIX_S[1] * 10**9
    assert interleaved or ntp_to_ns(got.transmit_ts) >= ntp_to_ns(got.receive_ts)
    assert got.root_delay_ns < MAX_ROOT_NS and got.root_dispersion_ns < MAX_ROOT_NS


@fuzz_settings()
@given(st.binary(min_size=0, max_size=60), st.sampled_from([NONCE, 0]))
def test_ntp_any_bytes_only_our_errors(data: bytes, origin: int) -> None:
    with contextlib.suppress(NtpRejectError):
        validate_reply(decode(data), origin)


# --- PTP decoder ---------------------------------------------------------------------------

#: messageType -> octets of header + body before any TLV (IEEE 1588-2019 Tables 25-31)
MESSAGE_LENGTHS: dict[int, int] = {
    MessageType.SYNC: 44, MessageType.DELAY_REQ: 44, MessageType.FOLLOW_UP: 44,
    MessageType.DELAY_RESP: 54, MessageType.ANNOUNCE: 64, MessageType.PDELAY_REQ: 54,
    MessageType.PDELAY_RESP: 54, MessageType.PDELAY_RESP_FOLLOW_UP: 54,
    MessageType.SIGNALING: 44, MessageType.MANAGEMENT: 48,
}
_TYPES = sorted(MESSAGE_LENGTHS)
_SUPPRESS = [HealthCheck.too_slow, HealthCheck.data_too_large]


def _decode_or_refuse(data: bytes) -> None:
    for padding in (False, True):
        try:
            msg = ptp.decode(data, allow_padding=padding)
        except ptp.PtpDecodeError as exc:
            assert str(exc), "an error must say what is wrong"
            continue
        wire = ptp.encode(msg)
        assert wire == data[:len(wire)]
        assert len(wire) == int(msg.messageLength)


@st.composite
def lies(draw: st.DrawFn) -> bytes:
    """A valid message's bytes with one or two header/body fields set to a lie."""
    data = bytearray(ptp.encode(draw(messages())))
    for _ in range(draw(st.integers(1, 2))):
        lie = draw(st.sampled_from(["length", "version", "type", "nanoseconds", "tlv_length",
                                    "truncate", "extend"]))
        if lie == "length":
            data[2:4] = draw(st.integers(0, len(data) + 8)).to_bytes(2, "big")
        elif lie == "version" and len(data) >= 2:
            data[1] = (data[1] & 0xF0) | draw(st.sampled_from([0, 1, 3, 15]))
        elif lie == "type" and data:  # relabel: the body has another type's length and layout
            data[0] = (data[0] & 0xF0) | draw(st.sampled_from([*_TYPES, 4, 5, 6, 7, 14, 15]))
        elif lie == "nanoseconds" and len(data) >= 44:
            data[40:44] = draw(st.integers(999_999_999, (1 << 32) - 1)).to_bytes(4, "big")
        elif lie == "tlv_length" and data:
            fixed = MESSAGE_LENGTHS.get(data[0] & 0x0F, 44)
            if len(data) >= fixed + 4:
                data[fixed + 2:fixed + 4] = draw(st.integers(0, 0xFFFF)).to_bytes(2, "big")
        elif lie == "truncate" or lie in ("version", "type"):
            del data[draw(st.integers(0, len(data))):]
        else:
            junk = draw(st.binary(min_size=1, max_size=12))
            data += junk
            if draw(st.booleans()):  # and claim it is part of the message
                data[2:4] = min(len(data), 0xFFFF).to_bytes(2, "big")
    return bytes(data)


@fuzz_settings(suppress_health_check=_SUPPRESS)
@given(lies())
def test_ptp_structured_lies_only_decode_error(data: bytes) -> None:
    _decode_or_refuse(data)


# --- PTP slave port under hostile streams -------------------------------------------------

ME = ptp.PortIdentity(clockIdentity=bytes.fromhex("02aabbc55c000001"), portNumber=1)
OTHER_SLAVE = ptp.PortIdentity(clockIdentity=bytes.fromhex("02aabbc55c000002"), portNumber=1)
GM = bytes.fromhex("0a0000fffe000001")
ROGUE = bytes.fromhex("0b0000fffe000666")
T0 = 1_700_000_000 * 10**9


def _announce(gm: bytes, priority: int, domain: int = 0) -> ptp.Announce:
    return ptp.Announce(domainNumber=domain,
                        sourcePortIdentity=ptp.PortIdentity(clockIdentity=gm, portNumber=1),
                        grandmasterIdentity=gm, grandmasterPriority1=priority,
                        logMessageInterval=-2)


senders = st.sampled_from([(GM, 1), (GM, 1), (GM, 1), (GM, 2), (ROGUE, 1)])
seqs = st.integers(0, 6)
times = st.integers(T0 - 10**9, T0 + 10**9)
corrections = st.sampled_from([0, 0, 65536 * 1000, -(65536 * 1000), (1 << 63) - 1, -(1 << 63)])

actions = st.one_of(
    st.tuples(st.just("sync"), senders, seqs, st.booleans(), times, corrections,
              st.sampled_from([0, 0, 0, 7])),
    st.tuples(st.just("follow_up"), senders, seqs, times, corrections),
    st.tuples(st.just("delay_req")),
    st.tuples(st.just("delay_resp"), senders, seqs, st.sampled_from([ME, ME, OTHER_SLAVE]),
              times, corrections, st.integers(-128, 127)),
    st.tuples(st.just("rogue_announce"), st.sampled_from([200, 255])),
)


def _wire(msg: ptp.PtpMessage) -> ptp.PtpMessage:
    return ptp.decode(ptp.encode(msg))


@fuzz_settings(suppress_health_check=_SUPPRESS)
@given(st.lists(actions, min_size=1, max_size=12))
def test_slave_port_only_completes_genuine_exchanges(steps: list[tuple[Any, ...]]) -> None:
    port = SlavePort(ME, PortConfig(cold_every=0, seed=1))
    for i in range(2):
        port.on_message(_wire(_announce(GM, 10)), 0, 0.25 * i)
    now_s, local_ns = 0.5, T0
    sent: set[int] = set()
    for step in steps:
        now_s += 0.1
        local_ns += 100_000_000
        kind = step[0]
        out: PtpResult | DelayReqDue | None = None
        if kind == "sync":
            (gm, port_no), seq, two_step, t1, corr, domain = step[1:]
            src = ptp.PortIdentity(clockIdentity=gm, portNumber=port_no)
            fields: dict[str, Any] = {
                "sourcePortIdentity": src, "sequenceId": seq, "domainNumber": domain,
                "correctionField": corr, "logMessageInterval": -2}
            msg: ptp.PtpMessage = (ptp.Sync(flagField="twoStep", **fields) if two_step
                   else ptp.Sync(originTimestamp=ptp.Timestamp.from_ns(t1), **fields))
            out = port.on_message(_wire(msg), local_ns, now_s)
        elif kind == "follow_up":
            (gm, port_no), seq, t1, corr = step[1:]
            msg = ptp.FollowUp(sourcePortIdentity=ptp.PortIdentity(clockIdentity=gm,
                                                                   portNumber=port_no),
                               sequenceId=seq, correctionField=corr,
                               preciseOriginTimestamp=ptp.Timestamp.from_ns(t1))
            out = port.on_message(_wire(msg), local_ns, now_s)
        elif kind == "delay_req":
            seq, raw = port.delay_req(now_s)
            assert isinstance(ptp.decode(raw), ptp.DelayReq)
            port.sent(seq, local_ns)
            sent.add(seq)
        elif kind == "delay_resp":
            (gm, port_no), seq, requester, t4, corr, log_iv = step[1:]
            msg = ptp.DelayResp(sourcePortIdentity=ptp.PortIdentity(clockIdentity=gm,
                                                                    portNumber=port_no),
                                sequenceId=seq, correctionField=corr, logMessageInterval=log_iv,
                                receiveTimestamp=ptp.Timestamp.from_ns(t4),
                                requestingPortIdentity=requester)
            out = port.on_message(_wire(msg), local_ns, now_s)
        else:
            out = port.on_message(_wire(_announce(ROGUE, int(step[1]))), 0, now_s)
        if isinstance(out, PtpResult):
            assert out.master == f"{ptp.format_clock_identity(GM)}-1"
            assert out.sequence_id in sent
            m = out.measurement
            assert not math.isnan(m.offset_ns) and not math.isnan(m.bound_ns)
            assert m.bound_ns >= 0
        elif isinstance(out, DelayReqDue):
            assert not math.isnan(out.at_s)


def _scripted(resp_from: bytes = GM, resp_seq_shift: int = 0, requester: ptp.PortIdentity = ME,
              sync_from: bytes = GM, domain: int = 0) -> PtpResult | DelayReqDue | None:
    """One one-step Sync, our Delay_Req, and a Delay_Resp — each optionally wrong."""
    port = SlavePort(ME, PortConfig(cold_every=0, seed=1))
    for i in range(2):
        port.on_message(_wire(_announce(GM, 10)), 0, 0.25 * i)
        port.on_message(_wire(_announce(ROGUE, 200)), 0, 0.25 * i)
    sync = ptp.Sync(sourcePortIdentity=ptp.PortIdentity(clockIdentity=sync_from, portNumber=1),
                    sequenceId=5, domainNumber=domain, logMessageInterval=-2,
                    originTimestamp=ptp.Timestamp.from_ns(T0))
    due = port.on_message(_wire(sync), T0 + 1_000, 1.0)
    if not isinstance(due, DelayReqDue):
        return due
    seq, _raw = port.delay_req(1.0)
    port.sent(seq, T0 + 50_000)
    resp = ptp.DelayResp(sourcePortIdentity=ptp.PortIdentity(clockIdentity=resp_from,
                                                             portNumber=1),
                         sequenceId=(seq + resp_seq_shift) & 0xFFFF, logMessageInterval=-2,
                         receiveTimestamp=ptp.Timestamp.from_ns(T0 + 51_000),
                         requestingPortIdentity=requester)
    return port.on_message(_wire(resp), T0 + 52_000, 1.0)


def test_scripted_exchange_completes_only_when_every_field_is_right() -> None:
    good = _scripted()
    assert isinstance(good, PtpResult) and good.master == f"{ptp.format_clock_identity(GM)}-1"
    assert abs(good.measurement.offset_ns) <= good.measurement.bound_ns
    assert _scripted(resp_from=ROGUE) is None  # Delay_Resp from the non-selected master
    assert _scripted(resp_seq_shift=1) is None  # wrong sequenceId
    assert _scripted(requester=OTHER_SLAVE) is None  # another slave's answer
    assert _scripted(sync_from=ROGUE) is None  # Sync from the non-selected master
    assert _scripted(domain=3) is None  # another domain
