"""The pure NTS codecs: NTS-KE records, extension fields, sealing and opening, SAN check."""

from __future__ import annotations

import datetime
import ipaddress
import struct

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.x509.oid import NameOID

from clocksync.ntp import (
    AEAD_AES_SIV_CMAC_256,
    ExtensionField,
    FieldType,
    KeRecord,
    KissOfDeathError,
    NtpPacket,
    NtsKeyExchangeError,
    NtsRejectError,
    RecordType,
    RejectReason,
    check_certificate_name,
    decode,
    decode_fields,
    decode_records,
    encode,
    ke_request,
    open_reply,
    parse_ke_response,
    seal_request,
    validate_reply,
)

from ._ntsreply import C2S, S2C, UID, nts_reply

# -- NTS-KE records ---------------------------------------------------------------------------


def test_ke_request_bytes() -> None:
    assert ke_request() == bytes.fromhex("8001 0002 0000" "8004 0002 000f" "8000 0000")


def _response(*extra: KeRecord, aead: int = AEAD_AES_SIV_CMAC_256) -> list[KeRecord]:
    return [KeRecord(RecordType.NEXT_PROTOCOL, b"\0\0", critical=True),
            KeRecord(RecordType.AEAD_ALGORITHM, struct.pack("!H", aead)),
            *extra, KeRecord(RecordType.END_OF_MESSAGE, critical=True)]


def test_ke_response_with_server_port_and_cookies() -> None:
    records = _response(KeRecord(RecordType.NEW_COOKIE, b"a" * 100),
                        KeRecord(RecordType.NEW_COOKIE, b"b" * 100),
                        KeRecord(RecordType.SERVER, b"ntp.example"),
                        KeRecord(RecordType.PORT, b"\x01\x7b", critical=True),
                        KeRecord(0x4001, b"ignored: not critical"))
    wire = b"".join(r.encode() for r in records)
    response = parse_ke_response(decode_records(wire))
    assert response.cookies == (b"a" * 100, b"b" * 100)
    assert (response.server, response.port, response.aead_id) == ("ntp.example", 379, 15)


@pytest.mark.parametrize(("records", "message"), [
    (_response(KeRecord(RecordType.ERROR, b"\0\1", critical=True)), "bad request"),
    (_response(KeRecord(RecordType.NEW_COOKIE, b"x"), KeRecord(0x4001, b"", critical=True)),
     "unknown critical record"),
    (_response(), "no cookie"),
    (_response(KeRecord(RecordType.NEW_COOKIE, b"x"), aead=1), "AEAD"),
    (_response(KeRecord(RecordType.NEW_COOKIE, b"x"), KeRecord(RecordType.PORT, b"\0\0")),
     "port record"),
    (_response(KeRecord(RecordType.NEW_COOKIE, b"x"), KeRecord(RecordType.SERVER, b"a b")),
     "server record"),
    ([KeRecord(RecordType.NEW_COOKIE, b"x"), KeRecord(RecordType.END_OF_MESSAGE)],
     "protocols None"),
])
def test_ke_response_refusals(records: list[KeRecord], message: str) -> None:
    with pytest.raises(NtsKeyExchangeError, match=message) as caught:
        parse_ke_response(records)
    assert caught.value.reason.value == "ke"


def test_ke_records_truncated_or_trailing() -> None:
    wire = ke_request()
    with pytest.raises(NtsKeyExchangeError, match="ends inside"):
        decode_records(wire[:-1])
    with pytest.raises(NtsKeyExchangeError, match="after"):
        decode_records(wire + b"\0")
    assert [r.type for r in decode_records(wire)] == [1, 4, 0]


# -- extension fields -------------------------------------------------------------------------


def test_extension_fields_pad_to_4_and_16_octets() -> None:
    wire = ExtensionField(0x0104, b"abcde").encode()
    assert wire == bytes.fromhex("0104 0010") + b"abcde" + bytes(7)
    assert decode_fields(wire + ExtensionField(7, b"x" * 20).encode()) == (
        ExtensionField(0x0104, b"abcde" + bytes(7)), ExtensionField(7, b"x" * 20))
    for bad in (wire[:-1], wire + b"\0\0", bytes.fromhex("0104 0006") + b"ab"):
        with pytest.raises(NtsRejectError):
            decode_fields(bad)


def test_sealed_request_verifies_with_the_c2s_key() -> None:
    header = encode(NtpPacket(mode=3, transmit_ts=12345))
    cookie = b"k" * 100
    wire = seal_request(header, unique_id=UID, cookie=cookie, placeholders=3, c2s_key=C2S,
                        nonce=b"N" * 16)
    fields = decode_fields(wire[48:])
    assert [f.type for f in fields] == [FieldType.UNIQUE_ID, FieldType.COOKIE,
                                        *[FieldType.COOKIE_PLACEHOLDER] * 3,
                                        FieldType.AUTHENTICATOR]
    assert fields[0].body == UID and fields[1].body == cookie
    assert all(f.body == bytes(100) for f in fields[2:5])
    auth = fields[-1].body
    nonce_len, ct_len = struct.unpack_from("!HH", auth)
    assert (nonce_len, ct_len) == (16, 16)
    aad = wire[:len(wire) - 4 - len(auth)]
    assert AESSIV(C2S).decrypt(auth[4 + 16:4 + 32], [aad, auth[4:20]]) == b""
    with pytest.raises(Exception):  # noqa: B017 - cryptography's InvalidTag
        AESSIV(S2C).decrypt(auth[4 + 16:4 + 32], [aad, auth[4:20]])


def test_an_authentic_reply_opens_and_yields_its_cookies() -> None:
    reply = open_reply(nts_reply((b"a" * 100, b"b" * 64)), unique_id=UID, s2c_key=S2C)
    assert reply.cookies == (b"a" * 100, b"b" * 64)


def test_every_single_flipped_byte_is_refused() -> None:
    good = nts_reply()
    for at in range(len(good)):
        bad = good[:at] + bytes([good[at] ^ 0x01]) + good[at + 1:]
        with pytest.raises(NtsRejectError):
            open_reply(bad, unique_id=UID, s2c_key=S2C)


@pytest.mark.parametrize(("reply", "reason"), [
    (nts_reply(uid=bytes(32)), RejectReason.NTS_UNIQUE_ID),
    (nts_reply()[:48], RejectReason.NTS_UNIQUE_ID),
    (nts_reply(key=C2S), RejectReason.NTS_AUTH),
    (nts_reply()[:48 + 36], RejectReason.NTS_AUTH),  # stripped of its authenticator
    (nts_reply(after=ExtensionField(9, b"x" * 12).encode()), RejectReason.NTS_AUTH),
    (nts_reply(stratum=0, reference_id=int.from_bytes(b"NTSN", "big")), RejectReason.NTS_NAK),
    (nts_reply()[:47], RejectReason.NTS_AUTH),
    # an unauthenticated Kiss-o'-Death other than NTSN is a forgery
    (nts_reply(stratum=0, reference_id=int.from_bytes(b"DENY", "big"))[:48 + 36],
     RejectReason.NTS_AUTH),
])
def test_refused_replies(reply: bytes, reason: RejectReason) -> None:
    with pytest.raises(NtsRejectError) as caught:
        open_reply(reply, unique_id=UID, s2c_key=S2C)
    assert caught.value.reason is reason


# -- certificate names ------------------------------------------------------------------------


def _cert(*names: x509.GeneralName) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ntp.example")])
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
               .public_key(key.public_key()).serial_number(1)
               .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1)))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(names)), False)
    return builder.sign(key, hashes.SHA256())


def test_certificate_names() -> None:
    cert = _cert(x509.DNSName("ntp.example"), x509.DNSName("*.pool.example"),
                 x509.IPAddress(ipaddress.ip_address("10.200.0.1")))
    for ok in ("ntp.example", "NTP.example.", "a.pool.example", "10.200.0.1"):
        check_certificate_name(cert, ok)
    for bad in ("other.example", "pool.example", "a.b.pool.example", "10.200.0.2", "::1"):
        with pytest.raises(NtsKeyExchangeError) as caught:
            check_certificate_name(cert, bad)
        assert caught.value.reason.value == "tls"
    with pytest.raises(NtsKeyExchangeError, match="no subjectAltName"):
        check_certificate_name(_cert(), "ntp.example")  # the CN alone is not enough


def test_an_authenticated_kiss_of_death_passes_to_header_validation() -> None:
    data = nts_reply(stratum=0, reference_id=int.from_bytes(b"RATE", "big"))
    open_reply(data, unique_id=UID, s2c_key=S2C)  # authentic: KoD handling decides
    with pytest.raises(KissOfDeathError) as caught:
        validate_reply(decode(data), 1)
    assert caught.value.code == "RATE" and not caught.value.stop_polling
