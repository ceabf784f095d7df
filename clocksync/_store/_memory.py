"""An in-memory store (tests, the demo): tables kept as JSON text, like a real store."""

from __future__ import annotations

import threading
from typing import ClassVar

from .._table import CorrectionTable

__all__ = ["MemoryStore"]


class MemoryStore:
    """Holds each node's table JSON; ``version()`` is a counter bumped on every write."""

    _named: ClassVar[dict[str, MemoryStore]] = {}

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._lock = threading.Lock()
        self._json: dict[str, str] = {}
        self._version = 0

    @classmethod
    def named(cls, name: str) -> MemoryStore:
        """The process-wide store called ``name`` (``memory://NAME``)."""
        return cls._named.setdefault(name, cls(f"memory://{name}"))

    def write(self, table: CorrectionTable) -> None:
        text = table.to_json()
        with self._lock:
            self._json[table.node] = text
            self._version += 1

    def read_all(self) -> dict[str, CorrectionTable]:
        with self._lock:
            items = list(self._json.items())
        return {node: CorrectionTable.from_json(text, source=f"{self.url}/{node}")
                for node, text in items}

    def version(self) -> int:
        with self._lock:
            return self._version
