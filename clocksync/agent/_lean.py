"""Keep the long-running agent process small (the budget is 80 MB resident).

The agent does not import pyarrow at all: its sample log's Parquet work runs in a
short-lived child (:mod:`clocksync.agent._segments`). Should anything in the process import
pyarrow anyway (a plugin, an embedding program), two things in it would cost memory the
agent never uses:

* pyarrow imports pandas (~48 MB) the first time it converts a column to numpy or Python
  objects, whenever pandas happens to be installed — only to check for pandas types.
  clocksync does not depend on pandas; the agent hides it, so pyarrow takes the path it
  takes on a plain install.
* pyarrow's default allocator (mimalloc/jemalloc) keeps freed pages for reuse; the agent
  allocates a few kB per segment, so the C library's allocator, which returns them, is used.

Only ``clocksync agent run`` calls :func:`lean_process`; a program that embeds
:class:`~clocksync.agent.Agent` keeps its own process as it is.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType

__all__ = ["HIDDEN_PACKAGES", "hide_unused_packages", "lean_process"]

#: packages the agent process never needs and pyarrow would otherwise import
HIDDEN_PACKAGES = ("pandas",)


class _Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname.split(".", 1)[0] in HIDDEN_PACKAGES:
            raise ImportError(f"{fullname} is not used by this clocksync process")
        return None


def hide_unused_packages() -> None:
    """Hide :data:`HIDDEN_PACKAGES` from imports (unless already imported). Idempotent.
    ``clocksync collector run`` calls this alone: it picks its own Arrow pool
    (:func:`clocksync.collector.arrow_memory_pool`)."""
    if not any(isinstance(f, _Hide) for f in sys.meta_path) and not any(
            name in sys.modules for name in HIDDEN_PACKAGES):
        sys.meta_path.insert(0, _Hide())


def lean_process() -> None:
    """:func:`hide_unused_packages` and, if pyarrow is loaded, use the system allocator
    for Arrow buffers. Idempotent."""
    hide_unused_packages()
    pa = sys.modules.get("pyarrow")
    if pa is not None:
        pa.set_memory_pool(pa.system_memory_pool())
