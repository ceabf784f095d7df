"""Server side of NTS extension fields, for tests only: build the reply a server would send."""

from __future__ import annotations

import struct

from cryptography.hazmat.primitives.ciphers.aead import AESSIV

from clocksync.ntp import ExtensionField, FieldType, NtpPacket, encode, encode_fields

__all__ = ["C2S", "S2C", "UID", "nts_reply"]

C2S = bytes(range(32))
S2C = bytes(range(32, 64))
UID = bytes(range(100, 132))
NOW = 3_976_000_000 << 32


def nts_reply(cookies: tuple[bytes, ...] = (b"c" * 100,), *, uid: bytes = UID,
              key: bytes = S2C, stratum: int = 1, reference_id: int = 0x4C4F434C,
              nonce: bytes = b"n" * 16, after: bytes = b"") -> bytes:
    """A server reply: header, Unique Identifier, authenticator with ``cookies`` encrypted."""
    header = encode(NtpPacket(mode=4, stratum=stratum, reference_id=reference_id,
                              origin_ts=1, receive_ts=NOW, transmit_ts=NOW + 1))
    associated = header + ExtensionField(FieldType.UNIQUE_ID, uid).encode()
    plain = encode_fields(ExtensionField(FieldType.COOKIE, c) for c in cookies)
    ciphertext = AESSIV(key).encrypt(plain, [associated, nonce])
    pad = (-len(ciphertext)) % 4
    body = struct.pack("!HH", len(nonce), len(ciphertext)) + nonce + ciphertext + bytes(pad)
    return associated + ExtensionField(FieldType.AUTHENTICATOR, body).encode() + after
