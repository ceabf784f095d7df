"""Shared helpers of the PTP tests (a uniquely named module: several conftest.py exist)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scapy.packet import Packet

__all__ = ["CAPTURES", "flat_fields"]

CAPTURES = Path(__file__).parent / "captures"


def flat_fields(pkt: Packet, prefix: str = "") -> dict[str, Any]:
    """All fields of a message as ``{"a.b": value}``, sub-packets and TLV lists flattened."""
    out: dict[str, Any] = {}
    for f in pkt.fields_desc:
        value = pkt.getfieldval(f.name)
        if isinstance(value, Packet):
            out.update(flat_fields(value, f"{prefix}{f.name}."))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                out.update(flat_fields(item, f"{prefix}{f.name}[{i}]."))
        elif f.name == "flagField":
            out[prefix + f.name] = int(value)
        else:
            out[prefix + f.name] = value
    return out
