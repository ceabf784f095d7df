"""Table stores: where correction tables are published and read.

A store is a small interface (:class:`TableStore`) with one implementation per file:
directory (default), in-memory (tests), Redis (``redis://``). ``open_store(url)`` picks one.
"""

from ._base import TableStore, open_store
from ._directory import DirectoryStore
from ._memory import MemoryStore

__all__ = ["DirectoryStore", "MemoryStore", "TableStore", "open_store"]
