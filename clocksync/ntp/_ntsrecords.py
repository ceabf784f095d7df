"""NTS Key Establishment records (RFC 8915 §4); pure, no sockets.

Every record is ``C|type`` (1 critical bit + 15-bit type, big-endian), a 16-bit body length
in octets, then the body. A client request is: Next Protocol Negotiation ``[0]`` (NTPv4),
AEAD Algorithm Negotiation ``[15]`` (AEAD_AES_SIV_CMAC_256), End of Message. The server's
answer carries the protocol and algorithm it picked, new cookies, optionally the NTP server
and port to use, and End of Message; or an Error record.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from ._errors import NtsFailure, NtsKeyExchangeError

__all__ = [
    "AEAD_AES_SIV_CMAC_256",
    "MAX_COOKIE_BYTES",
    "PROTOCOL_NTPV4",
    "KeRecord",
    "KeResponse",
    "RecordType",
    "decode_records",
    "encode_records",
    "ke_request",
    "parse_ke_response",
    "split_record",
]

PROTOCOL_NTPV4 = 0  #: NTS Next Protocol id of NTPv4 (RFC 8915 §7.7)
AEAD_AES_SIV_CMAC_256 = 15  #: IANA AEAD id of AES-SIV-CMAC-256 (RFC 5297), keys 2 x 32 octets
MAX_COOKIE_BYTES = 1024  #: a longer cookie is absurd (chrony's are ~100 octets)
_HEAD = struct.Struct("!HH")
_CRITICAL = 0x8000


class RecordType(enum.IntEnum):
    """NTS-KE record types (RFC 8915 §4.1, Figure 3 / §7.6)."""

    END_OF_MESSAGE = 0
    NEXT_PROTOCOL = 1
    ERROR = 2
    WARNING = 3
    AEAD_ALGORITHM = 4
    NEW_COOKIE = 5
    SERVER = 6
    PORT = 7


_ERRORS = {0: "unrecognized critical record", 1: "bad request", 2: "internal server error"}


@dataclass(frozen=True, slots=True)
class KeRecord:
    """One NTS-KE record: type (0..32767), critical bit, raw body."""

    type: int
    body: bytes = b""
    critical: bool = False

    def encode(self) -> bytes:
        if not 0 <= self.type < _CRITICAL or len(self.body) > 0xFFFF:
            raise ValueError(f"KeRecord: type {self.type} or body of {len(self.body)} octets "
                             "out of range")
        head = self.type | (_CRITICAL if self.critical else 0)
        return _HEAD.pack(head, len(self.body)) + self.body


def encode_records(records: Iterable[KeRecord]) -> bytes:
    """The wire octets of ``records`` in order."""
    return b"".join(r.encode() for r in records)


def split_record(data: bytes) -> tuple[KeRecord, int] | None:
    """The first complete record of ``data`` and the octets it used; ``None`` if incomplete."""
    if len(data) < _HEAD.size:
        return None
    head, length = _HEAD.unpack_from(data)
    end = _HEAD.size + length
    if len(data) < end:
        return None
    return KeRecord(head & ~_CRITICAL, bytes(data[_HEAD.size:end]), bool(head & _CRITICAL)), end


def decode_records(data: bytes) -> tuple[KeRecord, ...]:
    """All records of a complete message (through End of Message).

    Raises:
        NtsKeyExchangeError: (ke) truncated data, or octets after End of Message.
    """
    out: list[KeRecord] = []
    offset = 0
    while True:
        got = split_record(data[offset:])
        if got is None:
            raise NtsKeyExchangeError(NtsFailure.KE, "NTS-KE message ends inside a record "
                                      "or before End of Message")
        record, used = got
        offset += used
        out.append(record)
        if record.type == RecordType.END_OF_MESSAGE:
            if offset != len(data):
                raise NtsKeyExchangeError(NtsFailure.KE, f"{len(data) - offset} octets after "
                                          "NTS-KE End of Message")
            return tuple(out)


def ke_request(aead_ids: tuple[int, ...] = (AEAD_AES_SIV_CMAC_256,)) -> bytes:
    """A client's NTS-KE request: NTPv4, the AEAD algorithms we accept, End of Message."""
    return encode_records((
        KeRecord(RecordType.NEXT_PROTOCOL, struct.pack("!H", PROTOCOL_NTPV4), critical=True),
        KeRecord(RecordType.AEAD_ALGORITHM, b"".join(struct.pack("!H", a) for a in aead_ids),
                 critical=True),
        KeRecord(RecordType.END_OF_MESSAGE, critical=True),
    ))


@dataclass(frozen=True, slots=True)
class KeResponse:
    """What an NTS-KE server agreed to.

    Attributes:
        aead_id: the AEAD algorithm (always :data:`AEAD_AES_SIV_CMAC_256` here).
        cookies: the new cookies, in order.
        server: NTP server to use (``None``: the NTS-KE server's own address).
        port: NTP port to use (``None``: 123).
        warnings: warning codes the server sent.
    """

    aead_id: int
    cookies: tuple[bytes, ...]
    server: str | None = None
    port: int | None = None
    warnings: tuple[int, ...] = ()


def _u16s(record: KeRecord, what: str) -> tuple[int, ...]:
    if len(record.body) % 2:
        raise NtsKeyExchangeError(NtsFailure.KE, f"NTS-KE {what} record has an odd length "
                                  f"({len(record.body)} octets)")
    return tuple(v for (v,) in struct.iter_unpack("!H", record.body))


def parse_ke_response(records: Iterable[KeRecord],
                      aead_ids: tuple[int, ...] = (AEAD_AES_SIV_CMAC_256,)) -> KeResponse:
    """Check a server's NTS-KE response against our request (RFC 8915 §4.1).

    Raises:
        NtsKeyExchangeError: (ke) an Error record, an unknown critical record, a protocol or
            algorithm we did not offer (or several), no cookie, or a malformed record.
    """
    protocols: tuple[int, ...] | None = None
    aead: tuple[int, ...] | None = None
    cookies: list[bytes] = []
    server: str | None = None
    port: int | None = None
    warnings: list[int] = []
    for r in records:
        if r.type == RecordType.ERROR:
            code = _u16s(r, "error")
            text = _ERRORS.get(code[0], "unknown error") if code else "empty error record"
            raise NtsKeyExchangeError(NtsFailure.KE, f"NTS-KE server sent error "
                                      f"{code[0] if code else '?'} ({text})")
        if r.type == RecordType.NEXT_PROTOCOL:
            protocols = _u16s(r, "next protocol")
        elif r.type == RecordType.AEAD_ALGORITHM:
            aead = _u16s(r, "AEAD algorithm")
        elif r.type == RecordType.NEW_COOKIE:
            if not 0 < len(r.body) <= MAX_COOKIE_BYTES:
                raise NtsKeyExchangeError(NtsFailure.KE, f"NTS-KE cookie of {len(r.body)} "
                                          f"octets (1..{MAX_COOKIE_BYTES} expected)")
            cookies.append(r.body)
        elif r.type == RecordType.SERVER:
            try:
                server = r.body.decode("ascii")
            except UnicodeDecodeError:
                raise NtsKeyExchangeError(NtsFailure.KE, "NTS-KE server record is not "
                                          "ASCII") from None
            if not server or any(not 33 <= ord(c) < 127 for c in server):
                raise NtsKeyExchangeError(NtsFailure.KE, f"NTS-KE server record {server!r} "
                                          "is not a host name or address")
        elif r.type == RecordType.PORT:
            values = _u16s(r, "port")
            if len(values) != 1 or values[0] == 0:
                raise NtsKeyExchangeError(NtsFailure.KE, f"NTS-KE port record {values!r} "
                                          "is not one port in 1..65535")
            port = values[0]
        elif r.type == RecordType.WARNING:
            warnings.extend(_u16s(r, "warning"))
        elif r.type != RecordType.END_OF_MESSAGE and r.critical:
            raise NtsKeyExchangeError(NtsFailure.KE, f"NTS-KE server sent unknown critical "
                                      f"record type {r.type}")
    if protocols != (PROTOCOL_NTPV4,):
        raise NtsKeyExchangeError(NtsFailure.KE, f"NTS-KE server chose protocols {protocols}"
                                  f", expected exactly NTPv4 ({PROTOCOL_NTPV4})")
    if aead is None or len(aead) != 1 or aead[0] not in aead_ids:
        raise NtsKeyExchangeError(NtsFailure.KE, f"NTS-KE server chose AEAD {aead}, "
                                  f"expected one of {aead_ids}")
    if not cookies:
        raise NtsKeyExchangeError(NtsFailure.KE, "NTS-KE server sent no cookie")
    return KeResponse(aead[0], tuple(cookies), server, port, tuple(warnings))
