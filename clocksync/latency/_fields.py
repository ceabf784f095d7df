"""Field checks the trace readers share: integers (int64 as a JSON number or string, as the
proto3 JSON mapping allows), strings, lists, trace/span ids, and where a record is."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from ._spans import SpanError

__all__ = ["LINE_KEY", "as_int", "as_list", "as_str", "hex_id", "where_of"]

#: Key under which the JSON reader stores the line where each object starts.
LINE_KEY = "__line__"
_DIGITS = re.compile(r"\s*\+?\d+\s*")
_HEX = re.compile(r"[0-9a-fA-F]*")


def as_int(value: Any, what: str, scale: int = 1) -> int:
    """A non-negative integer (a JSON number, an integral float, or a decimal string) times
    ``scale``; :class:`SpanError` naming ``what`` otherwise."""
    if isinstance(value, bool) or value is None:
        raise SpanError(f"field '{what}' is missing or not an integer")
    out: int | None = None
    if isinstance(value, int):
        out = value
    elif (isinstance(value, float) and value.is_integer()) or (
            isinstance(value, str) and _DIGITS.fullmatch(value)):
        out = int(value)
    if out is None or out < 0:
        raise SpanError(f"field '{what}' must be a non-negative integer, got {value!r}")
    return out * scale


def as_str(value: Any, what: str, default: str | None = None) -> str:
    """A string; ``default`` when absent or empty (``None``: required)."""
    if value is None or value == "":
        if default is None:
            raise SpanError(f"field '{what}' is missing or not a string")
        return default
    if not isinstance(value, str):
        raise SpanError(f"field '{what}' must be a string, got {type(value).__name__}")
    return value


def as_list(value: Any, what: str) -> list[Any]:
    """A list; absent is empty."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise SpanError(f"field '{what}' must be a list")
    return value


def hex_id(value: Any, what: str, size: int, required: bool = False) -> str:
    """A trace (``size`` 16) or span (8) id as lower-case hex. OTLP JSON writes hex; the
    generic proto3 JSON mapping writes base64, which is converted; Zipkin and Jaeger may
    drop leading zeros. ``""`` when absent (or :class:`SpanError` if ``required``)."""
    if isinstance(value, bytes):
        return value.hex()
    if value is None or value == "":
        if required:
            raise SpanError(f"field '{what}' is missing or not a string")
        return ""
    if not isinstance(value, str):
        raise SpanError(f"field '{what}' must be a string, got {type(value).__name__}")
    if _HEX.fullmatch(value) and len(value) <= 2 * size:
        return value.lower()
    if len(value) == 4 * ((size + 2) // 3):
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) == size:
            return raw.hex()
    return value  # an id we cannot decode is still an id: kept as written


def where_of(path: str, obj: Any) -> str:
    """``"FILE:LINE"`` of a parsed JSON object (``"FILE:?"`` if it is not an object)."""
    return f"{path}:{obj.get(LINE_KEY, '?')}" if isinstance(obj, dict) else f"{path}:?"
