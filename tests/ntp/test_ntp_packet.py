"""Codec: golden chronyd capture, round trips, era pivot, fuzz (only our own errors)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clocksync import InputError
from clocksync.ntp import (
    KissOfDeathError,
    NtpDecodeError,
    NtpPacket,
    NtpRejectError,
    RejectReason,
    decode,
    encode,
    ns_to_ntp,
    ntp_to_ns,
    validate_reply,
)
from clocksync.ntp._packet import (  # tests the private module clocksync.ntp._packet
    NTP_EPOCH_OFFSET_S,
    ns_to_short,
    short_to_ns,
)

# A reply of chronyd 4.3 (local stratum 1) to our request with transmit nonce 0x0123456789abcdef,
# captured on loopback.
CHRONYD_REPLY = bytes.fromhex(
    "2401fee600000000000000007f7f0101eeb22f822f22303c0123456789abcdef"
    "eeb22f83a8a6f35beeb22f83a8ae36a4"
)
OUR_REQUEST = bytes.fromhex(
    "2300fe00000000000000000000000000000000000000000000000000000000000000000000000000"
    "0123456789abcdef"
)


def test_golden_chronyd_reply_decodes_to_spelled_out_fields_and_reencodes() -> None:
    reply = decode(CHRONYD_REPLY)
    assert reply == NtpPacket(
        leap=0, version=4, mode=4, stratum=1, poll=-2, precision=-26, root_delay=0,
        root_dispersion=0, reference_id=0x7F7F0101, reference_ts=0xEEB22F822F22303C,
        origin_ts=0x0123456789ABCDEF, receive_ts=0xEEB22F83A8A6F35B,
        transmit_ts=0xEEB22F83A8AE36A4,
    )
    assert encode(reply) == CHRONYD_REPLY
    assert reply.reference_text == "127.127.1.1"
    validate_reply(reply, 0x0123456789ABCDEF)  # a genuine reply passes every check
    # 2026-11-26 in the Unix epoch, as captured
    assert 1_795_000_000 < ntp_to_ns(reply.receive_ts) // 1_000_000_000 < 1_796_000_000


def test_our_request_bytes() -> None:
    packet = NtpPacket(version=4, mode=3, poll=-2, transmit_ts=0x0123456789ABCDEF)
    assert encode(packet) == OUR_REQUEST
    assert decode(OUR_REQUEST) == packet


def test_unix_epoch_and_era_pivot() -> None:
    assert ns_to_ntp(0) == NTP_EPOCH_OFFSET_S << 32
    assert ntp_to_ns(NTP_EPOCH_OFFSET_S << 32) == 0
    # 2036-02-07T06:28:16Z: NTP seconds wrap to 0 (era 1) and still decode correctly
    wrap_ns = ((1 << 32) - NTP_EPOCH_OFFSET_S) * 1_000_000_000
    assert ns_to_ntp(wrap_ns) == 0
    assert ntp_to_ns(0) == wrap_ns
    assert ntp_to_ns(ns_to_ntp(wrap_ns + 5)) == wrap_ns + 5
    with pytest.raises(NtpDecodeError):
        ns_to_ntp(-200_000_000 * 1_000_000_000)  # 1963: outside the pivot window


@given(st.integers(min_value=-61_000_000 * 10**9, max_value=4_200_000_000 * 10**9))
def test_ns_ntp_round_trip_within_one_ns(unix_ns: int) -> None:
    assert abs(ntp_to_ns(ns_to_ntp(unix_ns)) - unix_ns) <= 1


@given(st.floats(min_value=0, max_value=60e9))
def test_short_format_never_shrinks(ns: float) -> None:
    raw = ns_to_short(ns)
    assert short_to_ns(raw) >= ns or raw == 0xFFFFFFFF
    assert raw == 0 or short_to_ns(raw - 1) < ns  # and rounds up by less than one step


_u32 = st.integers(0, 2**32 - 1)
_u64 = st.integers(0, 2**64 - 1)
packets = st.builds(
    NtpPacket, leap=st.integers(0, 3), version=st.integers(0, 7), mode=st.integers(0, 7),
    stratum=st.integers(0, 255), poll=st.integers(-128, 127), precision=st.integers(-128, 127),
    root_delay=_u32, root_dispersion=_u32, reference_id=_u32, reference_ts=_u64,
    origin_ts=_u64, receive_ts=_u64, transmit_ts=_u64,
)


@given(packets)
def test_packet_round_trip(packet: NtpPacket) -> None:
    data = encode(packet)
    assert len(data) == 48
    assert decode(data) == packet


@given(st.binary(min_size=48, max_size=120))
def test_any_48_bytes_decode_and_reencode_identically(data: bytes) -> None:
    assert encode(decode(data)) == data[:48]


@settings(max_examples=300)
@given(st.binary(max_size=120), _u64, st.booleans())
def test_fuzz_only_our_errors(data: bytes, origin: int, interleaved: bool) -> None:
    """Random bytes: decode raises only NtpDecodeError, validation only NtpRejectError."""
    try:
        packet = decode(data)
    except NtpDecodeError as exc:
        assert exc.reason is RejectReason.MALFORMED
        assert isinstance(exc, InputError)
        return
    try:
        validate_reply(packet, origin, interleaved=interleaved)
    except NtpRejectError as exc:
        assert isinstance(exc.reason, RejectReason)
        assert exc.reason.value in str(exc)


def test_short_packet_is_malformed() -> None:
    with pytest.raises(NtpDecodeError, match="too short: 47 bytes"):
        decode(bytes(47))


@pytest.mark.parametrize(("field", "value"), [("poll", 128), ("leap", 4), ("transmit_ts", -1),
                                              ("root_delay", 2**32)])
def test_encode_names_the_bad_field(field: str, value: int) -> None:
    with pytest.raises(NtpDecodeError, match=f"NtpPacket.{field}"):
        encode(NtpPacket(**{field: value}))


def _good(**changes: int) -> NtpPacket:
    base = dict(leap=0, version=4, mode=4, stratum=2, origin_ts=7,
                receive_ts=ns_to_ntp(1_800_000_000 * 10**9),
                transmit_ts=ns_to_ntp(1_800_000_000 * 10**9 + 5_000))
    base.update(changes)
    return NtpPacket(**base)


@pytest.mark.parametrize(("changes", "reason"), [
    ({"origin_ts": 8}, RejectReason.BAD_ORIGIN),
    ({"mode": 3}, RejectReason.BAD_MODE),
    ({"version": 2}, RejectReason.BAD_VERSION),
    ({"leap": 3}, RejectReason.UNSYNCHRONISED),
    ({"stratum": 16}, RejectReason.BAD_STRATUM),
    ({"transmit_ts": 0}, RejectReason.ZERO_TRANSMIT),
    ({"receive_ts": 0}, RejectReason.ABSURD_TIMESTAMPS),
    ({"receive_ts": ns_to_ntp(1_800_000_001 * 10**9)}, RejectReason.ABSURD_TIMESTAMPS),
    ({"root_dispersion": 16 << 16}, RejectReason.ABSURD_TIMESTAMPS),
])
def test_validate_reasons(changes: dict[str, int], reason: RejectReason) -> None:
    validate_reply(_good(), 7)
    with pytest.raises(NtpRejectError) as info:
        validate_reply(_good(**changes), 7)
    assert info.value.reason is reason


def test_interleaved_reply_may_carry_an_earlier_transmit() -> None:
    earlier = _good(transmit_ts=ns_to_ntp(1_799_999_999 * 10**9))
    validate_reply(earlier, 7, interleaved=True)
    with pytest.raises(NtpRejectError):
        validate_reply(earlier, 7)


@pytest.mark.parametrize(("code", "reason", "stop"), [
    (b"RATE", RejectReason.KOD_RATE, False),
    (b"DENY", RejectReason.KOD_DENY, True),
    (b"RSTR", RejectReason.KOD_RSTR, True),
    (b"INIT", RejectReason.KOD_OTHER, False),
])
def test_kiss_of_death(code: bytes, reason: RejectReason, stop: bool) -> None:
    kod = _good(stratum=0, reference_id=int.from_bytes(code, "big"))
    with pytest.raises(KissOfDeathError) as info:
        validate_reply(kod, 7)
    assert info.value.reason is reason
    assert info.value.code == code.decode()
    assert info.value.stop_polling is stop


def test_reference_text() -> None:
    assert NtpPacket(stratum=1, reference_id=int.from_bytes(b"GPS\0", "big")).reference_text \
        == "GPS"
    assert NtpPacket(stratum=3, reference_id=0x0AC80301).reference_text == "10.200.3.1"
