"""Declared columns of row files (no pyarrow here: the agent process imports this)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Column", "Kind"]

Kind = Literal["int64", "float64", "string"]


@dataclass(frozen=True, slots=True)
class Column:
    """A declared column: its name, kind, whether it must be present, and value checks."""

    name: str
    kind: Kind
    required: bool = True
    nonnegative: bool = False
