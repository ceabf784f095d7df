"""Publishing an agent's table: stamping, signing, one pending write per store, retries.

:meth:`Publisher.publish` stamps the fitted table with the agent's status, the local time,
the next generation number and the :class:`clocksync.PublisherBlock`, signs its JSON (with
a table key) for ``/table``, and hands it to every store. A failed write is retried with
exponential backoff (0.5 s, doubling, up to ``backoff_max_s``) without blocking the loop:
only the newest table is pending per store, so a store that comes back gets the current
one, never a backlog.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from dataclasses import dataclass

from .._io._store import TableStore
from .._model._errors import StoreError
from .._model._status import PublisherBlock, Status
from .._model._table import CorrectionTable
from .._model._tablekey import TableKey
from ._time import Timer

__all__ = ["BACKOFF_FIRST_S", "Publisher"]

log = logging.getLogger("clocksync.agent")

#: first wait before retrying a failed publish (s)
BACKOFF_FIRST_S = 0.5


@dataclass
class _StoreState:
    store: TableStore
    pending: CorrectionTable | None = None
    failures: int = 0
    next_try: float = 0.0
    errors: int = 0


class Publisher:
    """Publishes one node's tables to its stores (see the module docstring).

    Args:
        stores: where to publish.
        timer: monotonic seconds (retry times).
        table_key: sign published tables with this key (None: unsigned).
        backoff_max_s: longest wait between retries of a failed write (s).
        owns_stores: :meth:`close` closes the stores (they were opened for the agent).
    """

    def __init__(self, stores: list[TableStore], timer: Timer, *,
                 table_key: TableKey | None = None, backoff_max_s: float = 60.0,
                 owns_stores: bool = True) -> None:
        self._states = [_StoreState(s) for s in stores]
        self.timer = timer
        self.table_key = table_key
        self.backoff_max_s = backoff_max_s
        self.owns_stores = owns_stores
        self.generation = 0
        self.publishes = 0
        self._lock = threading.Lock()
        self._published: CorrectionTable | None = None
        self._published_json: str | None = None

    @property
    def urls(self) -> list[str]:
        """The stores' URLs (passwords redacted)."""
        return [s.store.url for s in self._states]

    @property
    def published(self) -> tuple[CorrectionTable | None, str | None]:
        """The last published table and its (signed) JSON (thread-safe)."""
        with self._lock:
            return self._published, self._published_json

    def errors(self) -> dict[str, int]:
        """Failed writes per store URL."""
        return {s.store.url: s.errors for s in self._states}

    def publish(self, table: CorrectionTable, *, status: Status, block: PublisherBlock,
                now_local_ns: int, force: bool = False) -> CorrectionTable:
        """Stamp ``table`` and write it to every store whose retry time has come (all of
        them with ``force``); returns the published table."""
        self.generation += 1
        published = dataclasses.replace(table, status=str(status), generated_at_ns=now_local_ns,
                                        generation=self.generation, publisher=block)
        text = published.to_json(self.table_key)
        with self._lock:
            self._published, self._published_json = published, text
        now = self.timer.monotonic()
        for state in self._states:
            state.pending = published
            if force or now >= state.next_try:
                self._try(state, now)
        return published

    def retry_at(self) -> float | None:
        """When the earliest pending write is due (timer s), or None."""
        due = [s.next_try for s in self._states if s.pending is not None]
        return min(due) if due else None

    def retry(self) -> None:
        """Write the pending table to every store whose retry time has come."""
        now = self.timer.monotonic()
        for state in self._states:
            if state.pending is not None and now >= state.next_try:
                self._try(state, now)

    def _try(self, state: _StoreState, now: float) -> None:
        table = state.pending
        if table is None:
            return
        try:
            state.store.write(table)
        except (StoreError, OSError) as exc:
            state.failures += 1
            state.errors += 1
            delay = min(self.backoff_max_s, BACKOFF_FIRST_S * 2 ** min(state.failures - 1, 64))
            state.next_try = now + delay
            log.warning("store %s: publish failed (retry in %.1f s): %s",
                        state.store.url, delay, exc)
            return
        state.pending = None
        state.failures = 0
        state.next_try = now
        self.publishes += 1

    def close(self) -> None:
        """Close the stores the publisher owns."""
        if self.owns_stores:
            for state in self._states:
                state.store.close()
