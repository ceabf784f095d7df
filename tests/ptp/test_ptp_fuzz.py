"""Property tests: valid messages round-trip; arbitrary bytes only ever raise PtpDecodeError."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from ptp_helpers import CAPTURES, flat_fields
from ptp_strategies import messages

import ptp
from tests._fuzz import fuzz_settings

pytestmark = pytest.mark.fuzz

SEEDS = [bytes.fromhex(p.read_text().strip()) for p in sorted(CAPTURES.glob("*.hex"))]


@fuzz_settings(suppress_health_check=[HealthCheck.too_slow])
@given(messages())
def test_valid_messages_round_trip(msg: ptp.PtpMessage) -> None:
    wire = ptp.encode(msg)
    back = ptp.decode(wire)
    assert type(back) is type(msg)
    assert back.messageLength == len(wire)
    sent, got = flat_fields(msg), flat_fields(back)
    assert set(got) == set(sent)
    # lengths left as None were filled in by the encoder; everything else is as sent
    assert {k: got[k] for k, v in sent.items() if v is not None} == {
        k: v for k, v in sent.items() if v is not None
    }
    assert ptp.encode(back) == wire


def _check_only_decode_error(data: bytes) -> None:
    try:
        msg = ptp.decode(data)
    except ptp.PtpDecodeError:
        return
    # whatever decodes must re-encode to the very same bytes
    assert ptp.encode(msg) == data


@fuzz_settings()
@given(st.binary(max_size=120))
def test_random_bytes_raise_only_decode_error(data: bytes) -> None:
    _check_only_decode_error(data)


@fuzz_settings()
@given(
    st.sampled_from(SEEDS),
    st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=6),
    st.integers(0, 120),
    st.binary(max_size=30),
)
def test_mutated_captures_raise_only_decode_error(
    seed: bytes, edits: list[tuple[int, int]], cut: int, tail: bytes
) -> None:
    """Bit-level edits, truncation and appended junk on real ptp4l messages."""
    data = bytearray(seed)
    for pos, value in edits:
        if pos < len(data):
            data[pos] = value
    _check_only_decode_error(bytes(data[:cut]) + tail)


@fuzz_settings()
@given(st.sampled_from(SEEDS), st.binary(min_size=1, max_size=20))
def test_tlv_like_suffixes_parse_or_raise_decode_error(seed: bytes, suffix: bytes) -> None:
    """Junk after the body with messageLength adjusted: parsed as TLVs or rejected."""
    data = bytearray(seed + suffix)
    data[2:4] = len(data).to_bytes(2, "big")
    _check_only_decode_error(bytes(data))
