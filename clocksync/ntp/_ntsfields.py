"""NTPv4 extension fields for NTS (RFC 7822, RFC 8915 §5); pure, no sockets.

An extension field (EF) after the 48-octet header is ``type`` (16 bits), ``length`` (16 bits,
whole field in octets, a multiple of 4) and a zero-padded body. NTS uses four types:

====== ================================================ ==========================
type   field                                            body
====== ================================================ ==========================
0x0104 Unique Identifier                                32 random octets, echoed
0x0204 NTS Cookie                                       an opaque cookie
0x0304 NTS Cookie Placeholder                           zeros, as long as a cookie
0x0404 NTS Authenticator and Encrypted Extension Fields see below
====== ================================================ ==========================

Authenticator body: nonce length (16 bits), ciphertext length (16 bits), nonce and ciphertext
each padded to 4 octets. The ciphertext is AES-SIV-CMAC-256 (``cryptography``'s ``AESSIV``)
of the encrypted EFs under the associated data ``[everything before the authenticator,
nonce]``: a 16-octet tag then the encrypted octets. The client encrypts nothing (empty
plaintext: the tag alone authenticates header, Unique Identifier and cookie); the server
returns its new cookies encrypted. Keys: client-to-server for requests, server-to-client
for replies (NTS-KE, :mod:`._ntske`).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._model._errors import InputError
from ._errors import NtsRejectError, RejectReason
from ._packet import HEADER_BYTES

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESSIV

__all__ = [
    "NONCE_BYTES",
    "UNIQUE_ID_BYTES",
    "ExtensionField",
    "FieldType",
    "NtsReply",
    "decode_fields",
    "encode_fields",
    "open_reply",
    "seal_request",
]

UNIQUE_ID_BYTES = 32  #: RFC 8915 §5.3: at least 32 octets of randomness
NONCE_BYTES = 16  #: our authenticator nonce (AES-SIV takes any length; 16 needs no padding)
TAG_BYTES = 16  #: the AES-SIV synthetic IV that leads every ciphertext
KEY_BYTES = 32  #: AES-SIV-CMAC-256 key (two AES-128 keys)
_HEAD = struct.Struct("!HH")
_AUTH_HEAD = struct.Struct("!HH")
MIN_FIELD_BYTES = 16  #: RFC 7822: an extension field is at least 16 octets


class FieldType(enum.IntEnum):
    """NTS extension field types (RFC 8915 §7.5)."""

    UNIQUE_ID = 0x0104
    COOKIE = 0x0204
    COOKIE_PLACEHOLDER = 0x0304
    AUTHENTICATOR = 0x0404


def _pad4(n: int) -> int:
    return (n + 3) & ~3


@dataclass(frozen=True, slots=True)
class ExtensionField:
    """One extension field: type and body (the body is zero-padded to a multiple of 4 and
    the field to at least 16 octets on the wire)."""

    type: int
    body: bytes = b""

    @property
    def wire_length(self) -> int:
        return max(MIN_FIELD_BYTES, _HEAD.size + _pad4(len(self.body)))

    def encode(self) -> bytes:
        length = self.wire_length
        if not 0 <= self.type <= 0xFFFF or length > 0xFFFF:
            raise ValueError(f"ExtensionField: type {self.type:#x} or length {length} "
                             "out of range")
        padding = length - _HEAD.size - len(self.body)
        return _HEAD.pack(self.type, length) + self.body + bytes(padding)


def encode_fields(fields: Iterable[ExtensionField]) -> bytes:
    """The wire octets of ``fields`` in order."""
    return b"".join(f.encode() for f in fields)


def _field_spans(data: bytes) -> list[tuple[int, int, int]]:
    """``(type, start, end)`` of every EF in ``data``; raises on a broken layout."""
    spans: list[tuple[int, int, int]] = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < _HEAD.size:
            raise NtsRejectError(RejectReason.NTS_AUTH, f"{len(data) - offset} stray octets "
                                 "after the last extension field")
        kind, length = _HEAD.unpack_from(data, offset)
        if length < _HEAD.size or length % 4 or offset + length > len(data):
            raise NtsRejectError(RejectReason.NTS_AUTH, f"extension field {kind:#06x} at "
                                 f"octet {HEADER_BYTES + offset} has a bad length {length}")
        spans.append((kind, offset, offset + length))
        offset += length
    return spans


def decode_fields(data: bytes) -> tuple[ExtensionField, ...]:
    """The extension fields in ``data`` (octets after the NTP header); bodies keep their
    padding.

    Raises:
        NtsRejectError: (``nts_auth``) a length that is not a multiple of 4, shorter than the
            field header, or running past the end; stray octets at the end.
    """
    return tuple(ExtensionField(kind, bytes(data[start + _HEAD.size:end]))
                 for kind, start, end in _field_spans(data))


def _siv(key: bytes) -> AESSIV:
    try:  # the optional "nts" extra: the package loads without it
        from cryptography.hazmat.primitives.ciphers.aead import AESSIV
    except ImportError:  # pragma: no cover - depends on the install
        raise InputError("NTS needs the cryptography package: pip install "
                         "'clocksync[nts]'") from None
    if len(key) != KEY_BYTES:
        raise ValueError(f"NTS key: {len(key)} octets, AES-SIV-CMAC-256 needs {KEY_BYTES}")
    return AESSIV(key)


def seal_request(header: bytes, *, unique_id: bytes, cookie: bytes, placeholders: int,
                 c2s_key: bytes, nonce: bytes) -> bytes:
    """An NTS request: ``header`` + Unique Identifier + Cookie + ``placeholders`` Cookie
    Placeholders (each as long as the cookie) + Authenticator (empty plaintext)."""
    if len(header) != HEADER_BYTES or len(unique_id) < UNIQUE_ID_BYTES or not nonce:
        raise ValueError("seal_request: a 48-octet header, a unique id of at least "
                         f"{UNIQUE_ID_BYTES} octets and a nonce are needed")
    fields = [ExtensionField(FieldType.UNIQUE_ID, unique_id),
              ExtensionField(FieldType.COOKIE, cookie)]
    fields += [ExtensionField(FieldType.COOKIE_PLACEHOLDER, bytes(len(cookie)))] * placeholders
    associated = header + encode_fields(fields)
    ciphertext = _siv(c2s_key).encrypt(b"", [associated, nonce])
    body = (_AUTH_HEAD.pack(len(nonce), len(ciphertext))
            + nonce + bytes(_pad4(len(nonce)) - len(nonce))
            + ciphertext + bytes(_pad4(len(ciphertext)) - len(ciphertext)))
    return associated + ExtensionField(FieldType.AUTHENTICATOR, body).encode()


@dataclass(frozen=True, slots=True)
class NtsReply:
    """What an authentic NTS reply carried besides the header: its new cookies."""

    cookies: tuple[bytes, ...]


def _is_nak(data: bytes) -> bool:
    return data[1] == 0 and data[12:16] == b"NTSN"  # stratum 0, kiss code NTSN


def open_reply(data: bytes, *, unique_id: bytes, s2c_key: bytes) -> NtsReply:
    """Check an NTS reply to our request with Unique Identifier ``unique_id``; return the
    cookies it carries. The header itself is left to :func:`~._packet.validate_reply`.

    Checks, in order: the layout of the extension fields; exactly one Unique Identifier,
    equal to ours; an NTS NAK (stratum 0, kiss code ``NTSN``; unauthenticated by design);
    an authenticator that is the last field and verifies under ``s2c_key`` over everything
    before it (so every header octet is covered); the encrypted fields' layout.

    Raises:
        NtsRejectError: ``nts_unique_id``, ``nts_nak`` or ``nts_auth`` as above (fewer than
            48 octets: ``nts_auth``). Nothing else, whatever the octets.
    """
    if len(data) < HEADER_BYTES:
        raise NtsRejectError(RejectReason.NTS_AUTH, f"NTS reply of {len(data)} octets, "
                             f"shorter than the {HEADER_BYTES}-octet header")
    spans = _field_spans(data[HEADER_BYTES:])
    ids = [data[HEADER_BYTES + s + _HEAD.size:HEADER_BYTES + e]
           for kind, s, e in spans if kind == FieldType.UNIQUE_ID]
    if len(ids) != 1 or ids[0] != unique_id:
        raise NtsRejectError(RejectReason.NTS_UNIQUE_ID,
                             "reply does not echo our request's Unique Identifier"
                             if ids else "reply carries no Unique Identifier")
    if _is_nak(data):
        raise NtsRejectError(RejectReason.NTS_NAK, "server sent NTS NAK: it cannot use our "
                             "cookie (new NTS-KE needed)")
    auth = [(s, e) for kind, s, e in spans if kind == FieldType.AUTHENTICATOR]
    if len(auth) != 1 or auth[0][1] != spans[-1][2]:
        raise NtsRejectError(RejectReason.NTS_AUTH, "reply lacks an authenticator as its "
                             "last extension field" if not auth else
                             "reply has fields after, or several, authenticators")
    start, end = (HEADER_BYTES + auth[0][0], HEADER_BYTES + auth[0][1])
    body = data[start + _HEAD.size:end]
    if len(body) < _AUTH_HEAD.size:
        raise NtsRejectError(RejectReason.NTS_AUTH, "authenticator too short")
    nonce_len, ct_len = _AUTH_HEAD.unpack_from(body)
    nonce_at = _AUTH_HEAD.size
    ct_at = nonce_at + _pad4(nonce_len)
    if nonce_len == 0 or ct_len < TAG_BYTES or ct_at + _pad4(ct_len) > len(body):
        raise NtsRejectError(RejectReason.NTS_AUTH, f"authenticator lengths nonce {nonce_len}"
                             f", ciphertext {ct_len} do not fit its {len(body)} octets")
    nonce = body[nonce_at:nonce_at + nonce_len]
    siv = _siv(s2c_key)
    from cryptography.exceptions import InvalidTag

    try:
        plain = siv.decrypt(body[ct_at:ct_at + ct_len], [data[:start], nonce])
    except InvalidTag:
        raise NtsRejectError(RejectReason.NTS_AUTH, "reply's authenticator does not verify "
                             "(forged or altered)") from None
    cookies = tuple(f.body for f in decode_fields(plain) if f.type == FieldType.COOKIE)
    return NtsReply(cookies)
