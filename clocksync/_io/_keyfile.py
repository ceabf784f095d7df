"""Table key files: a shared HMAC key read from a file (the key itself is a record in the
model layer)."""

from __future__ import annotations

import os
from pathlib import Path

from .._model._errors import InputError
from .._model._tablekey import TableKey

__all__ = ["load_table_key"]


def load_table_key(path: str | os.PathLike[str]) -> TableKey:
    """Read a key file (its bytes, surrounding whitespace stripped); errors name the file."""
    try:
        secret = Path(path).read_bytes().strip()
    except OSError as exc:
        raise InputError(f"{path}: cannot read table key file ({exc.strerror})") from None
    try:
        return TableKey(secret)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
