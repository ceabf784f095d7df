"""A read-only store over running agents: ``http://host:port[,http://host2:port...]``.

Each agent serves its current table at ``GET /table`` (see :mod:`clocksync.agent._http`);
this store fetches them all, so ``clocksync skew report --store http://a:9465,http://b:9465``
reads a fleet without a shared directory or Redis. An agent that has no table yet (404) is
left out; one that cannot be reached, or serves a bad table, is an error naming its URL
(with ``read_all(errors)``: recorded there under its URL, and the others read).
"""

from __future__ import annotations

import urllib.error
import urllib.request

from ..._model._errors import ClockSyncError, StoreError
from ..._model._table import CorrectionTable
from ..._model._tablekey import TableKey

__all__ = ["AgentsStore"]

#: largest table accepted from an agent (bytes)
MAX_TABLE_BYTES = 64 * 1024 * 1024


class AgentsStore:
    """Tables read from agents' HTTP endpoints; :meth:`write` is refused."""

    def __init__(self, url: str, timeout_s: float = 5.0, *,
                 table_key: TableKey | None = None) -> None:
        self.url = url
        self.table_key = table_key
        self.timeout_s = timeout_s
        self.agents = [u.strip().rstrip("/") for u in url.split(",") if u.strip()]
        for agent in self.agents:
            if not agent.startswith(("http://", "https://")):
                raise StoreError(f"{url}: {agent!r} is not an http:// agent URL")
        if not self.agents:
            raise StoreError(f"{url}: no agent URLs")

    def _fetch(self, agent: str) -> CorrectionTable | None:
        try:
            with urllib.request.urlopen(agent + "/table", timeout=self.timeout_s) as reply:
                body = reply.read(MAX_TABLE_BYTES + 1)
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 404:
                return None
            raise StoreError(f"{agent}/table: HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise StoreError(f"{agent}/table: cannot reach the agent ({reason})") from None
        if len(body) > MAX_TABLE_BYTES:
            raise StoreError(f"{agent}/table: larger than {MAX_TABLE_BYTES} bytes")
        return CorrectionTable.from_json(body, source=f"{agent}/table", key=self.table_key)

    def write(self, table: CorrectionTable) -> None:
        raise StoreError(f"{self.url}: agent URLs are read-only; agents publish their own "
                         "tables")

    def read_all(self, errors: dict[str, str] | None = None) -> dict[str, CorrectionTable]:
        tables: dict[str, CorrectionTable] = {}
        for agent in self.agents:
            try:
                table = self._fetch(agent)
                if table is None:
                    continue
                if table.node in tables:
                    raise StoreError(f"{agent}/table: second table for node {table.node!r}")
            except ClockSyncError as exc:
                if errors is None:
                    raise
                errors[agent] = str(exc)
                continue
            tables[table.node] = table
        return tables

    def version(self) -> tuple[tuple[str, int, int], ...]:
        """Each node's ``(node, generation, generated_at_ns)`` (fetches every table)."""
        return tuple((t.node, t.generation, t.generated_at_ns)
                     for t in self.read_all().values())

    def close(self) -> None:
        """Nothing to release (each read opens and closes its own connections)."""
