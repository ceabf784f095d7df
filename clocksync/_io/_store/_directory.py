"""The default store: one JSON file per node in a directory, replaced atomically."""

from __future__ import annotations

import contextlib
import glob
import os
import re
import time
from pathlib import Path

from ..._model._errors import ClockSyncError, StoreError
from ..._model._table import CorrectionTable
from ..._model._tablekey import TableKey
from .._atomic import atomic_write_bytes

__all__ = ["DirectoryStore", "node_of_filename", "table_filename"]

_SAFE = re.compile(r"[^A-Za-z0-9._-]")
_SUFFIX = ".table.json"
#: a temporary file of this node's table older than this (s) was left by a killed writer
STALE_TMP_S = 60.0


def node_of_filename(name: str) -> str:
    """The node a table file name stands for (the inverse of :func:`table_filename`)."""
    stem = name[:-len(_SUFFIX)] if name.endswith(_SUFFIX) else name
    return re.sub(r"%([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), stem)


def table_filename(node: str) -> str:
    """File name for a node's table; unsafe characters are %-escaped, never dropped."""
    name = _SAFE.sub(lambda m: f"%{ord(m.group()):02X}", node)
    if name.startswith("."):
        name = "%2E" + name[1:]
    return name + _SUFFIX


class DirectoryStore:
    """``DIR/<node>.table.json``; writes go to a temporary name, are fsynced and renamed."""

    def __init__(self, path: str | os.PathLike[str], *,
                 table_key: TableKey | None = None) -> None:
        self.path = Path(path)
        self.url = str(self.path)
        self.table_key = table_key

    def _remove_stale_tmp(self, name: str) -> None:
        """Temporary files of ``name`` left by a writer killed mid-write. Only this node's
        agent writes ``name`` and a write takes milliseconds, so one older than
        :data:`STALE_TMP_S` is nobody's; other nodes' files are never touched."""
        now = time.time()
        for tmp in self.path.glob(f".{glob.escape(name)}.*.tmp"):
            with contextlib.suppress(OSError):
                if now - tmp.stat().st_mtime > STALE_TMP_S:
                    tmp.unlink()

    def write(self, table: CorrectionTable) -> None:
        name = table_filename(table.node)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._remove_stale_tmp(name)
            atomic_write_bytes(self.path / name, table.to_json(self.table_key).encode("utf-8"))
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot write table of {table.node!r}: "
                             f"{exc.strerror or exc}") from None

    def _files(self) -> list[Path]:
        if not self.path.is_dir():
            raise StoreError(f"{self.path}: no such table directory")
        return sorted(p for p in self.path.iterdir()
                      if p.name.endswith(_SUFFIX) and not p.name.startswith("."))

    def read_all(self, errors: dict[str, str] | None = None) -> dict[str, CorrectionTable]:
        tables: dict[str, CorrectionTable] = {}
        for file in self._files():
            try:
                try:
                    text = file.read_bytes()
                except OSError as exc:
                    raise StoreError(f"{file}: cannot read: {exc.strerror or exc}") from None
                table = CorrectionTable.from_json(text, source=str(file), key=self.table_key)
                if table.node in tables:
                    raise StoreError(f"{file}: second table for node {table.node!r}")
            except ClockSyncError as exc:
                if errors is None:
                    raise
                errors[node_of_filename(file.name)] = str(exc)
                continue
            tables[table.node] = table
        return tables

    def version(self) -> tuple[tuple[str, int, int], ...]:
        out = []
        for file in self._files():
            try:
                st = file.stat()
            except FileNotFoundError:
                continue
            out.append((file.name, st.st_mtime_ns, st.st_size))
        return tuple(out)

    def close(self) -> None:
        """Nothing to release."""
