"""Human-readable time quantities: a value always shown with its bound, in one unit.

``format_ns(412_300, 18_000) == "412.3 µs ± 18.0 µs"``. The unit is chosen from the larger
of |value| and bound, so value and bound are comparable at a glance.
"""

from __future__ import annotations

import math

__all__ = ["format_duration_s", "format_ns", "parse_duration_s"]

_UNITS = ((1e9, "s"), (1e6, "ms"), (1e3, "µs"), (1.0, "ns"))


def _unit(magnitude_ns: float) -> tuple[float, str]:
    for scale, name in _UNITS:
        if magnitude_ns >= scale:
            return scale, name
    return 1.0, "ns"


def format_ns(value_ns: float, bound_ns: float | None = None, digits: int = 1) -> str:
    """``"412.3 µs ± 18.0 µs"``; ``"412.3 µs"`` when no bound is given; ``± inf`` shown as
    ``"± unbounded"``."""
    if value_ns is None or (isinstance(value_ns, float) and math.isnan(value_ns)):
        return "n/a"
    big = abs(value_ns)
    if bound_ns is not None and math.isfinite(bound_ns):
        big = max(big, abs(bound_ns))
    scale, unit = _unit(big)
    if bound_ns is not None and math.isfinite(bound_ns) and bound_ns > 0:
        # enough digits that the bound keeps two significant figures
        digits = max(digits, min(6, 1 - math.floor(math.log10(bound_ns / scale))))
    text = f"{value_ns / scale:.{digits}f} {unit}"
    if bound_ns is None:
        return text
    if not math.isfinite(bound_ns):
        return f"{text} ± unbounded"
    return f"{text} ± {bound_ns / scale:.{digits}f} {unit}"


def format_duration_s(seconds: float) -> str:
    """``"42 s"``, ``"3.5 min"``, ``"2.1 h"``, ``"4.0 d"``."""
    if not math.isfinite(seconds):
        return "n/a"
    if abs(seconds) < 120:
        return f"{seconds:.0f} s"
    if abs(seconds) < 7200:
        return f"{seconds / 60:.1f} min"
    if abs(seconds) < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def parse_duration_s(text: str) -> float:
    """``"10s"``, ``"500ms"``, ``"2m"``, ``"1h"``, or plain seconds -> seconds."""
    raw = text.strip().lower()
    units = (("ms", 1e-3), ("us", 1e-6), ("µs", 1e-6), ("ns", 1e-9), ("s", 1.0),
             ("min", 60.0), ("m", 60.0), ("h", 3600.0), ("d", 86400.0))
    suffix, scale = next(((u, f) for u, f in units if raw.endswith(u)), ("", 1.0))
    number = raw[: len(raw) - len(suffix)]
    try:
        value = float(number) * scale
    except ValueError:
        raise ValueError(f"not a duration: {text!r} (examples: 10s, 500ms, 2m, 1h)") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"not a duration: {text!r}")
    return value
