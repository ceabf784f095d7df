"""Human-readable time quantities: a value always shown with its bound, in one unit.

``format_ns(412_300, 18_000) == "412.3 µs ± 18.0 µs"``. The unit is chosen from the larger
of |value| and bound, so value and bound are comparable at a glance. In a table, a column
takes one unit and one number of decimals for all its cells (:func:`format_ns_column`), and
:func:`text_table` right-aligns it under its header.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

__all__ = [
    "column_digits",
    "column_unit",
    "format_duration_column",
    "format_duration_s",
    "format_ns",
    "format_ns_column",
    "parse_duration_s",
    "text_table",
    "unit_hint",
]

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


def column_unit(magnitudes_ns: Iterable[float]) -> tuple[float, str]:
    """``(scale_ns, name)`` for a column of durations: the largest of s/ms/µs/ns in which
    the median finite magnitude is at least 1 (ns when the column has none)."""
    finite = sorted(abs(v) for v in magnitudes_ns if v == v and math.isfinite(v))
    if not finite:
        return 1.0, "ns"
    return _unit(finite[(len(finite) - 1) // 2])


def column_digits(bounds: Iterable[float], scale: float, least: int = 1,
                  most: int = 6) -> int:
    """Decimals for a column in unit ``scale``: enough that its smallest positive finite
    bound keeps two significant figures, within ``[least, most]``."""
    positive = [b for b in bounds if b == b and math.isfinite(b) and b > 0]
    if not positive:
        return least
    need = 1 - math.floor(math.log10(min(positive) / scale))
    return max(least, min(most, need))


def format_ns_column(values_ns: Sequence[float],
                     bounds_ns: Sequence[float] | None = None, least: int = 1) -> list[str]:
    """One column of durations (with bounds, ``"412.3 ± 18.0 µs"``) in one unit and with one
    number of decimals, chosen for the whole column (:func:`column_unit`,
    :func:`column_digits`), so right-aligned cells line up on the decimal point. NaN values
    read ``"n/a"``, an infinite bound ``"± unbounded"``; ``least``: fewest decimals."""
    bounds = list(bounds_ns) if bounds_ns is not None else None
    mags = [abs(v) for v in values_ns]
    if bounds is not None:
        mags = [max(m, abs(b)) if math.isfinite(b) else m for m, b in zip(mags, bounds,
                                                                          strict=True)]
    scale, unit = column_unit(mags)
    shown = ([b for v, b in zip(values_ns, bounds, strict=True) if v == v]
             if bounds is not None else [])  # a row shown as n/a sets no digits
    digits = column_digits(shown, scale, least=least)
    out = []
    for i, value in enumerate(values_ns):
        if value != value:
            out.append("n/a")
            continue
        text = f"{value / scale:.{digits}f}"
        if bounds is None:
            out.append(f"{text} {unit}")
        elif not math.isfinite(bounds[i]):
            out.append(f"{text} {unit} ± unbounded")
        else:
            out.append(f"{text} ± {bounds[i] / scale:.{digits}f} {unit}")
    return out


_DURATION_UNITS = ((86_400.0, "d"), (3_600.0, "h"), (60.0, "min"), (1.0, "s"))


def format_duration_column(seconds: Sequence[float]) -> list[str]:
    """A column of ages in one unit (d/h/min/s, the largest in which the median finite
    value is at least 1; one decimal, none for seconds); non-finite read ``"n/a"``."""
    finite = sorted(abs(s) for s in seconds if math.isfinite(s))
    median = finite[(len(finite) - 1) // 2] if finite else 0.0
    scale, unit = next(((f, u) for f, u in _DURATION_UNITS if median >= f), (1.0, "s"))
    digits = 0 if unit == "s" else 1
    return [f"{s / scale:.{digits}f} {unit}" if math.isfinite(s) else "n/a" for s in seconds]


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]],
               left: Iterable[int] = (0,)) -> list[str]:
    """Lines of a plain-text table: each column as wide as its widest cell, right-aligned
    (the ``left`` column indices left-aligned), the header aligned like its column, a rule
    under it. Trailing blanks are stripped."""
    lefts = set(left)
    widths = [max([len(header[j])] + [len(r[j]) for r in rows]) for j in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if j in lefts else c.rjust(w)
                         for j, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    head = line(header)
    return [head, "-" * len(head), *(line(r) for r in rows)]


def _date(ns: float) -> str:
    import datetime

    try:
        when = datetime.datetime.fromtimestamp(ns / 1e9, datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return "out of range"
    return when.strftime("%Y-%m-%d")


def unit_hint(column: str, value_ns: int | float, expected_ns: int | float) -> str:
    """A hint when ``value_ns`` of ``column`` looks like µs, ms or s where ``expected_ns``
    (e.g. a table's first sample) is the magnitude nanoseconds would have: ``"; ts_ns values
    around 1.8e+15 look like µs (as ns since 1970 they fall on 1970-01-21; x1000 is
    2026-12-07)"``; ``""`` when no unit fits."""
    if not (value_ns > 0 and expected_ns > 0):
        return ""
    for factor, unit in ((1e3, "µs"), (1e6, "ms"), (1e9, "s")):
        ratio = float(value_ns) * factor / float(expected_ns)
        if 0.5 <= ratio <= 2.0:
            return (f"; {column} values around {float(value_ns):.3g} look like {unit}, not ns "
                    f"(as ns since 1970 they fall on {_date(value_ns)}; x{factor:g} is "
                    f"{_date(value_ns * factor)}, near the table's "
                    f"{_date(expected_ns)})")
    return ""
