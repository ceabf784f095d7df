"""Fixtures for the PTP tests: golden captures, flattened fields, the root-only lab."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from scapy.packet import Packet

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


@pytest.fixture(scope="session")
def captures() -> dict[str, bytes]:
    """The golden captures (tests/ptp/captures/*.hex) by name."""
    return {p.stem: bytes.fromhex(p.read_text().strip()) for p in sorted(CAPTURES.glob("*.hex"))}


@pytest.fixture
def ptp_lab() -> Iterator[Any]:
    """A fresh two-namespace lab, nothing started (root only; skipped with the reason
    otherwise)."""
    from lab.ptp_vs_ptp4l import PtpLab, missing_requirements

    reason = missing_requirements()
    if reason is not None:
        pytest.skip(reason)
    with PtpLab() as lab:
        yield lab
