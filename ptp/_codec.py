"""Bytes <-> PTPv2 messages: one strict ``decode`` dispatcher and ``encode``.

:func:`decode` checks the structure itself (length, version, messageLength, type, TLV
framing, timestamp ranges) before scapy dissects, so malformed input can only ever raise
:class:`PtpDecodeError` — never a scapy, struct or index error.
"""

from __future__ import annotations

from scapy.packet import NoPayload

from ._errors import PtpDecodeError
from ._messages import HEADER_LEN, MESSAGE_CLASSES, MESSAGE_LENGTHS, MessageType, PtpMessage
from ._types import NS_PER_S, Timestamp

__all__ = ["decode", "encode", "with_sequence_id"]

_TLV_MANAGEMENT = 0x0001


def _check_tlvs(data: bytes, start: int, end: int, kind: str) -> None:
    """TLV framing (14.1): 4-octet type+length, then exactly ``lengthField`` octets."""
    pos = start
    while pos < end:
        if end - pos < 4:
            raise PtpDecodeError(f"{kind}: TLV at octet {pos}: {end - pos} octets left, need 4")
        tlv_type = int.from_bytes(data[pos : pos + 2], "big")
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if pos + 4 + length > end:
            raise PtpDecodeError(
                f"{kind}: TLV at octet {pos}: lengthField {length} overruns messageLength {end}"
            )
        if tlv_type == _TLV_MANAGEMENT and length < 2:
            raise PtpDecodeError(
                f"{kind}: management TLV at octet {pos}: lengthField {length} < 2 (managementId)"
            )
        pos += 4 + length


def _check_timestamps(msg: PtpMessage, kind: str) -> None:
    for field in msg.fields_desc:
        value = msg.getfieldval(field.name)
        if isinstance(value, Timestamp) and int(value.nanosecondsField) >= NS_PER_S:
            raise PtpDecodeError(
                f"{kind}: {field.name}.nanosecondsField {int(value.nanosecondsField)} >= 10^9"
            )


def decode(data: bytes, *, allow_padding: bool = False) -> PtpMessage:
    """Parse one PTPv2 message (IEEE 1588-2008 clause 13) from ``data``.

    Args:
        data: the UDP payload or Ethernet (0x88F7) payload.
        allow_padding: accept octets after ``messageLength`` (Ethernet's minimum-frame
            padding) and drop them; by default they are an error.

    Returns:
        The message, an instance of the class for its ``messageType``
        (:class:`~ptp.Sync`, :class:`~ptp.DelayResp`, ...).

    Raises:
        PtpDecodeError: on anything malformed; the message names the field.
    """
    data = bytes(data)
    if len(data) < HEADER_LEN:
        raise PtpDecodeError(f"PTP header: {len(data)} octets, need {HEADER_LEN}")
    version = data[1] & 0x0F
    if version != 2:
        raise PtpDecodeError(f"PTP header: versionPTP {version}, only 2 is supported")
    type_value = data[0] & 0x0F
    cls = MESSAGE_CLASSES.get(type_value)
    if cls is None:
        raise PtpDecodeError(f"PTP header: messageType {type_value:#x} is reserved/unknown")
    kind = MessageType(type_value).name
    length = int.from_bytes(data[2:4], "big")
    fixed = MESSAGE_LENGTHS[type_value]
    if length < fixed:
        raise PtpDecodeError(f"{kind}: messageLength {length} < {fixed} (header + body)")
    if length > len(data):
        raise PtpDecodeError(f"{kind}: messageLength {length} but only {len(data)} octets")
    if length < len(data) and not allow_padding:
        raise PtpDecodeError(
            f"{kind}: messageLength {length} but {len(data)} octets (trailing data)"
        )
    _check_tlvs(data, fixed, length, kind)
    try:
        msg = cls(data[:length])
    except Exception as exc:  # pragma: no cover - the checks above make this unreachable
        raise PtpDecodeError(f"{kind}: cannot dissect: {exc}") from exc
    _check_timestamps(msg, kind)
    return msg


def encode(msg: PtpMessage) -> bytes:
    """The wire bytes of ``msg`` (messageLength and TLV lengths filled in when unset).

    Only the message itself: a payload scapy attached after it (Ethernet padding) is left out.
    """
    if isinstance(msg.payload, NoPayload):
        return bytes(msg)
    alone = msg.copy()
    alone.remove_payload()
    return bytes(alone)


def with_sequence_id(wire: bytes, sequence_id: int) -> bytes:
    """``wire`` (an encoded message) with its sequenceId (octets 30-31, Table 18) replaced.

    Building a message with scapy takes a few hundred µs; patching a template does not, and
    the slave sends its Delay_Req as soon as possible after the Sync.
    """
    return wire[:30] + (sequence_id & 0xFFFF).to_bytes(2, "big") + wire[32:]
