"""The store interface and the URL factory."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from ..._model._errors import StoreError
from ..._model._table import CorrectionTable
from ..._model._tablekey import TableKey

__all__ = ["TableStore", "open_store"]


@runtime_checkable
class TableStore(Protocol):
    """Publishes and reads correction tables; a reader never sees a torn table."""

    url: str

    def write(self, table: CorrectionTable) -> None:
        """Publish ``table`` (replacing the node's previous one) atomically."""

    def read_all(self, errors: dict[str, str] | None = None) -> dict[str, CorrectionTable]:
        """Every node's current table. With ``errors``, a table that cannot be read or
        validated is left out and recorded there (node, or file/agent when the node is
        unknown -> reason) instead of raising; failures of the whole store still raise."""

    def version(self) -> Any:
        """A value that changes whenever any table changes (cheap to compute)."""

    def close(self) -> None:
        """Release connections (idempotent; a store without any does nothing)."""


def open_store(url: str, *, table_key: TableKey | None = None) -> TableStore:
    """``DIR``, ``file://DIR``, ``memory://NAME``, ``redis://[:password@]host:port/db`` or
    ``http://agent:port[,http://agent2:port...]`` (read-only, from running agents).

    With ``table_key``, tables are signed on write and every table read must carry a valid
    signature by that key (:class:`clocksync.TableKey`)."""
    if url.startswith(("redis://", "rediss://", "unix://")):
        from ._redis import RedisStore, redact_url

        try:
            return RedisStore(url, table_key=table_key)
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise StoreError(f"{redact_url(url)}: the Redis store needs "
                             f"'pip install clocksync[redis]' ({exc})") from None
    if url.startswith(("http://", "https://")):
        from ._agents import AgentsStore

        return AgentsStore(url, table_key=table_key)
    if url.startswith("memory://"):
        from ._memory import MemoryStore

        return MemoryStore.named(url[len("memory://"):], table_key)
    if "://" in url and not url.startswith("file://"):
        scheme = url.split("://", 1)[0]
        raise StoreError(f"{url}: unknown store scheme '{scheme}' (use a directory, file://, "
                         "redis://, or http://AGENT:PORT)")
    from ._directory import DirectoryStore

    return DirectoryStore(url[len("file://"):] if url.startswith("file://") else url,
                          table_key=table_key)
