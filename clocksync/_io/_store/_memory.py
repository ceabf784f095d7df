"""An in-memory store (tests, the demo): tables kept as JSON text, like a real store."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import ClassVar

from ..._model._errors import ClockSyncError
from ..._model._table import CorrectionTable
from ..._model._tablekey import TableKey

__all__ = ["MemoryStore"]


@dataclass
class _Shelf:
    """What every handle on one named store shares."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    json: dict[str, str] = field(default_factory=dict)
    version: int = 0


class MemoryStore:
    """Holds each node's table JSON; ``version()`` is a counter bumped on every write."""

    _named: ClassVar[dict[str, _Shelf]] = {}

    def __init__(self, url: str = "memory://", *, table_key: TableKey | None = None,
                 _shelf: _Shelf | None = None) -> None:
        self.url = url
        self.table_key = table_key
        self._shelf = _shelf if _shelf is not None else _Shelf()

    @classmethod
    def named(cls, name: str, table_key: TableKey | None = None) -> MemoryStore:
        """A handle on the process-wide store called ``name`` (``memory://NAME``)."""
        return cls(f"memory://{name}", table_key=table_key,
                   _shelf=cls._named.setdefault(name, _Shelf()))

    def write(self, table: CorrectionTable) -> None:
        text = table.to_json(self.table_key)
        with self._shelf.lock:
            self._shelf.json[table.node] = text
            self._shelf.version += 1

    def read_all(self, errors: dict[str, str] | None = None) -> dict[str, CorrectionTable]:
        with self._shelf.lock:
            items = list(self._shelf.json.items())
        tables: dict[str, CorrectionTable] = {}
        for node, text in items:
            try:
                tables[node] = CorrectionTable.from_json(text, source=f"{self.url}/{node}",
                                                         key=self.table_key)
            except ClockSyncError as exc:
                if errors is None:
                    raise
                errors[node] = str(exc)
        return tables

    def version(self) -> int:
        with self._shelf.lock:
            return self._shelf.version

    def close(self) -> None:
        """Nothing to release."""
