"""The store interface and the URL factory."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from .._errors import StoreError
from .._table import CorrectionTable

__all__ = ["TableStore", "open_store"]


@runtime_checkable
class TableStore(Protocol):
    """Publishes and reads correction tables; a reader never sees a torn table."""

    url: str

    def write(self, table: CorrectionTable) -> None:
        """Publish ``table`` (replacing the node's previous one) atomically."""

    def read_all(self) -> dict[str, CorrectionTable]:
        """Every node's current table."""

    def version(self) -> Any:
        """A value that changes whenever any table changes (cheap to compute)."""


def open_store(url: str) -> TableStore:
    """``DIR``, ``file://DIR``, ``memory://NAME`` or ``redis://[:password@]host:port/db``."""
    if url.startswith(("redis://", "rediss://", "unix://")):
        try:
            from ._redis import RedisStore
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise StoreError(f"{url}: the Redis store needs 'pip install clocksync[redis]' "
                             f"({exc})") from None
        return RedisStore(url)
    if url.startswith("memory://"):
        from ._memory import MemoryStore

        return MemoryStore.named(url[len("memory://"):])
    if "://" in url and not url.startswith("file://"):
        scheme = url.split("://", 1)[0]
        raise StoreError(f"{url}: unknown store scheme '{scheme}' (use a directory, file://, "
                         "or redis://)")
    from ._directory import DirectoryStore

    return DirectoryStore(url[len("file://"):] if url.startswith("file://") else url)
