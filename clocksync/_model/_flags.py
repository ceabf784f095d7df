"""The flag bits of a correction (``Corrector.flags``, ``Cells.flags``).

:class:`Flag` names the bits; the module constants are the same values as plain ints, which
is what numpy arrays of flags are combined with (an ``IntFlag`` operand would widen a
``uint8`` array to ``int64``).
"""

from __future__ import annotations

import enum

__all__ = ["AMBIGUOUS", "HOLDOVER", "OUT_OF_RANGE", "VOID", "Flag"]


class Flag(enum.IntFlag):
    """What is special about a corrected timestamp (bits; 0 = interpolated between samples)."""

    #: extrapolated beyond the samples of its segment (holdover: the bound grows with age)
    HOLDOVER = 1
    #: several segments could hold this local time (a step gap, an unconfirmed step): the
    #: bound is the hull of all of them
    AMBIGUOUS = 2
    #: no segment can hold this local time (refused)
    VOID = 4
    #: no answer for this timestamp (before the first sample, void, past the horizon)
    OUT_OF_RANGE = 8


HOLDOVER = int(Flag.HOLDOVER)
AMBIGUOUS = int(Flag.AMBIGUOUS)
VOID = int(Flag.VOID)
OUT_OF_RANGE = int(Flag.OUT_OF_RANGE)
