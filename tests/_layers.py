"""Checks shared by the layering tests: what a module imports, and what a public API names.

* :func:`forbidden_chains` — import chains (static, through our own modules: grimp, the
  graph library of import-linter) from a module to networking modules. Imports inside
  third-party packages are not followed (scapy, for one, imports ``socket`` itself).
* :func:`unexported_types` — classes named in the public signatures of a module's
  ``__all__`` (function and method annotations, dataclass fields, properties) that no
  public namespace exports.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import importlib
import importlib.util
import inspect
import sys
import types
import typing
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import grimp

__all__ = ["NETWORKING", "PUBLIC_NAMESPACES", "forbidden_chains", "public_imports_only",
           "unexported_types"]

#: Modules a pure (socket-free) module may not reach.
NETWORKING = ("socket", "select", "selectors", "ssl", "asyncio", "clocksync.net")


@cache
def _graph() -> Any:
    return grimp.build_graph("ptp", "clocksync", include_external_packages=True)


def forbidden_chains(module: str, forbidden: Iterable[str] = NETWORKING) -> list[tuple[str, ...]]:
    """The shortest import chain from ``module`` to each ``forbidden`` module it reaches."""
    graph = _graph()
    out: list[tuple[str, ...]] = []
    for target in forbidden:
        if target not in graph.modules or target == module:
            continue
        chain = graph.find_shortest_chain(importer=module, imported=target, as_packages=True)
        if chain is not None:
            out.append(tuple(chain))
    return out


def public_imports_only(module: str, package: str) -> list[str]:
    """``module``'s imports of ``package`` (and its submodules) that are not a public name.

    A public name is one in the ``__all__`` of a module whose dotted path has no part
    starting with ``_``.
    """
    path = importlib.util.find_spec(module).origin  # type: ignore[union-attr]
    tree = ast.parse(Path(str(path)).read_text())
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            bad += [a.name for a in node.names
                    if a.name.split(".")[0] == package and a.name.split(".") != [package]]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] == package:
            if any(part.startswith("_") for part in node.module.split(".")):
                bad.append(node.module)
                continue
            public = set(importlib.import_module(node.module).__all__)
            bad += [f"{node.module}.{a.name}" for a in node.names if a.name not in public]
    return bad


#: the public packages: each one's ``__all__`` is exactly its public names
PUBLIC_NAMESPACES = ("clocksync", "clocksync.testing", "clocksync.net", "clocksync.ntp",
                     "clocksync.agent", "clocksync.latency", "clocksync.latency.dask",
                     "clocksync.collector", "ptp")


@cache
def _exported() -> frozenset[int]:
    ids = set()
    for name in PUBLIC_NAMESPACES:
        module = importlib.import_module(name)
        ids.update(id(getattr(module, n)) for n in module.__all__)
    return frozenset(ids)


def _ours(obj: Any) -> bool:
    return getattr(obj, "__module__", "").split(".")[0] in ("clocksync", "ptp")


def _classes(hint: Any) -> Iterator[type]:
    """The classes a type hint names (``list[Foo | None]`` -> list, Foo, NoneType)."""
    if isinstance(hint, typing.TypeVar) or hint is Any:
        return
    origin = typing.get_origin(hint)
    if origin is not None:
        if isinstance(origin, type):
            yield origin
        for arg in typing.get_args(hint):
            yield from _classes(arg)
    elif isinstance(hint, type):
        yield hint


def _annotations(obj: Any) -> dict[str, Any]:
    try:
        return inspect.get_annotations(obj, eval_str=True)
    except NameError:  # a name imported only under ``if TYPE_CHECKING:``
        module = sys.modules[obj.__module__]
        return inspect.get_annotations(obj, eval_str=True,
                                       locals=_type_checking_names(module))


def _type_checking_names(module: types.ModuleType) -> dict[str, Any]:
    """The names a module imports only for type checkers (``if TYPE_CHECKING:``)."""
    names: dict[str, Any] = {}
    for node in ast.parse(inspect.getsource(module)).body:
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
            block = ast.Module(body=[n for n in node.body
                                     if isinstance(n, ast.Import | ast.ImportFrom)],
                               type_ignores=[])
            exec(compile(block, module.__name__, "exec"), vars(module).copy(), names)
    return names


def _signature_hints(name: str, obj: Any) -> Iterator[tuple[str, Any]]:
    if inspect.isfunction(obj):
        for key, hint in _annotations(obj).items():
            if not key.startswith("_"):  # a dataclass's init=True private field
                yield f"{name}({key})", hint
    elif inspect.isclass(obj):
        for klass in obj.__mro__:
            if not _ours(klass):
                continue
            fields = {f.name for f in dataclasses.fields(klass)} \
                if dataclasses.is_dataclass(klass) else set()
            for key, hint in _annotations(klass).items():
                if not key.startswith("_") and (not fields or key in fields):
                    yield f"{name}.{key}", hint
            for key, member in vars(klass).items():
                if key.startswith("_") and key != "__init__":
                    continue
                if isinstance(member, staticmethod | classmethod):
                    member = member.__func__
                if isinstance(member, property) and member.fget is not None:
                    yield from _signature_hints(f"{name}.{key}", member.fget)
                elif inspect.isfunction(member):
                    yield from _signature_hints(f"{name}.{key}", member)


def unexported_types(module_name: str) -> list[str]:
    """``where: type`` for each class in a public signature of ``module_name`` that is
    ours (clocksync or ptp) but exported by none of the public namespaces."""
    module = importlib.import_module(module_name)
    bad = []
    for name in module.__all__:
        obj = getattr(module, name)
        if isinstance(obj, enum.EnumType) or not callable(obj):
            continue
        for where, hint in _signature_hints(name, obj):
            for cls in _classes(hint):
                if cls.__module__ in sys.stdlib_module_names or cls.__module__ == "builtins":
                    continue
                if isinstance(cls, types.GenericAlias) or not _ours(cls):
                    continue
                if id(cls) not in _exported():
                    bad.append(f"{where}: {cls.__module__}.{cls.__qualname__}")
    return sorted(set(bad))
