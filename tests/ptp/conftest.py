"""Fixtures for the PTP tests: golden captures and the root-only lab."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from ptp_helpers import CAPTURES


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
