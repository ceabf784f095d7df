"""Hypothesis round trips and hostile inputs for the NTS codecs: only the documented errors
escape (NtsRejectError for replies, NtsKeyExchangeError for NTS-KE records), and no altered
reply is ever accepted."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clocksync.ntp import (
    ExtensionField,
    KeRecord,
    NtsKeyExchangeError,
    NtsRejectError,
    decode_fields,
    decode_records,
    encode_fields,
    encode_records,
    open_reply,
    parse_ke_response,
)

from ._ntsreply import S2C, UID, nts_reply

pytestmark = pytest.mark.fuzz

fields = st.lists(st.builds(
    ExtensionField, st.integers(0, 0xFFFF),
    st.integers(3, 40).flatmap(lambda words: st.binary(min_size=4 * words,
                                                       max_size=4 * words))), max_size=6)
records = st.lists(st.builds(KeRecord, st.integers(1, 0x7FFF), st.binary(max_size=40),
                             st.booleans()), max_size=8)


@settings(max_examples=200, deadline=None)
@given(fields)
def test_extension_fields_round_trip(items: list[ExtensionField]) -> None:
    assert decode_fields(encode_fields(items)) == tuple(items)


@settings(max_examples=200, deadline=None)
@given(records)
def test_ke_records_round_trip_and_parse_raises_only_ke_errors(items: list[KeRecord]) -> None:
    wire = encode_records([*items, KeRecord(0, b"", True)])
    decoded = decode_records(wire)
    assert list(decoded) == [*items, KeRecord(0, b"", True)]
    if items:  # an End of Message before the end leaves octets after it
        with pytest.raises(NtsKeyExchangeError):
            decode_records(encode_records([KeRecord(0, b"", True), *items]))
    try:
        parse_ke_response(decoded)
    except NtsKeyExchangeError as exc:
        assert exc.reason.value == "ke"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_octets_raise_only_documented_errors(data: bytes) -> None:
    with contextlib.suppress(NtsKeyExchangeError):
        decode_records(data)
    with pytest.raises(NtsRejectError):
        open_reply(data, unique_id=UID, s2c_key=S2C)


_GOOD = nts_reply((b"a" * 100, b"b" * 100))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(_GOOD) - 1), st.integers(1, 255), st.integers(0, len(_GOOD)),
       st.binary(max_size=24))
def test_no_altered_reply_is_accepted(at: int, xor: int, cut: int, tail: bytes) -> None:
    flipped = _GOOD[:at] + bytes([_GOOD[at] ^ xor]) + _GOOD[at + 1:]
    for bad in (flipped, _GOOD[:cut] + tail):
        if bad == _GOOD:
            continue
        with pytest.raises(NtsRejectError):
            open_reply(bad, unique_id=UID, s2c_key=S2C)
