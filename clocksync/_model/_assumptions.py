"""The assumptions a guaranteed bound rests on — each declared once, with unit, default,
range and help; ``fit_table(**assumptions)``, the table JSON and the CLI all derive from here.

Defaults are safe for commodity crystal oscillators: skew up to ±1000 ppm (a ±500 ppm
crystal plus room for wander), frequency wander up to 10 ppb/s, steps of any size at any time.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from ._errors import InputError

__all__ = ["ASSUMPTION_SPECS", "AssumptionSpec", "Assumptions"]


@dataclass(frozen=True, slots=True)
class AssumptionSpec:
    """One assumption: name, default, inclusive range, and help text (with its unit)."""

    name: str
    default: float
    minimum: float
    maximum: float
    help: str


ASSUMPTION_SPECS: tuple[AssumptionSpec, ...] = (
    AssumptionSpec(
        "max_skew_ppm", 1000.0, 0.0, 100_000.0,
        "largest frequency error of the local clock against the reference (ppm); "
        "the true offset never changes faster than this (default: a ±500 ppm crystal "
        "plus room for wander on top)",
    ),
    AssumptionSpec(
        "max_wander_ppb_per_s", 10.0, 0.0, 1_000_000.0,
        "largest rate of change of the clock's frequency (ppb/s): temperature swings; "
        "widens the bound by wander·Δt²/2 away from samples",
    ),
    AssumptionSpec(
        "step_confirm", 3.0, 1.0, 100.0,
        "samples in a row that must disagree with a segment before it is declared a step; "
        "fewer are dropped as outliers (a trailing unconfirmed run makes the tail ambiguous)",
    ),
    AssumptionSpec(
        "step_min_ns", 0.0, 0.0, 1e12,
        "statistical level shifts smaller than this are never split as steps (ns); "
        "0 = decide from the noise alone",
    ),
    AssumptionSpec(
        "step_sigma", 8.0, 2.0, 1000.0,
        "a level shift of this many robust standard deviations of the offset noise is a step",
    ),
    AssumptionSpec(
        "holdover_horizon_s", 31_536_000.0, 1.0, 3.2e9,
        "how far past the last sample the table still gives a (growing) bound (s); "
        "beyond it corrections are refused",
    ),
)

_SPECS = {spec.name: spec for spec in ASSUMPTION_SPECS}


@dataclass(frozen=True, slots=True)
class Assumptions:
    """Validated assumption values (see :data:`ASSUMPTION_SPECS` for units and meaning)."""

    max_skew_ppm: float = 1000.0
    max_wander_ppb_per_s: float = 10.0
    step_confirm: float = 3.0
    step_min_ns: float = 0.0
    step_sigma: float = 8.0
    holdover_horizon_s: float = 31_536_000.0

    @classmethod
    def from_mapping(cls, values: dict[str, Any], where: str = "assumptions") -> Assumptions:
        """Build from keyword values; unknown names and out-of-range values raise
        :class:`InputError` naming the field."""
        out: dict[str, float] = {}
        for key, value in values.items():
            spec = _SPECS.get(key)
            if spec is None:
                known = ", ".join(_SPECS)
                raise InputError(f"{where}.{key}: unknown assumption (known: {known})")
            try:
                number = float(value)
            except (TypeError, ValueError, OverflowError):  # OverflowError: a huge integer
                raise InputError(f"{where}.{key}: must be a finite number, got {value!r}"
                                 ) from None
            if not math.isfinite(number) or not spec.minimum <= number <= spec.maximum:
                raise InputError(
                    f"{where}.{key}: must be within [{spec.minimum:g}, {spec.maximum:g}], "
                    f"got {value!r}"
                )
            out[key] = number
        return cls(**out)

    def to_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)

    # Derived values in the units the math uses.
    @property
    def max_skew_ns_per_s(self) -> float:
        return self.max_skew_ppm * 1_000.0

    @property
    def wander_ns_per_s2(self) -> float:
        return self.max_wander_ppb_per_s
