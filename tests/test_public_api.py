"""The public API is exactly what the public packages' ``__all__`` say, every type in a
public signature is exported, and nothing a user reads (README, docs/, the docstrings of the
public names) sends them to a private module."""

from __future__ import annotations
import __future__

import ast
import importlib
import importlib.util
import inspect
import re
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._layers import PUBLIC_NAMESPACES, unexported_types

ROOT = Path(__file__).resolve().parent.parent
PUBLIC = PUBLIC_NAMESPACES
#: a dotted name with a private part (``clocksync._io``, ``ptp._port.SlavePort``), or a
#: private module's path (``clocksync/_fit/``, ``clocksync/agent/_agent.py``)
PRIVATE = re.compile(r"\b(?:clocksync|ptp)(?:\.[A-Za-z]\w*)*\._[a-z]\w*"
                     r"|\b(?:clocksync|ptp)(?:/[A-Za-z]\w*)*/_[a-z]\w*")


def undeclared(module: types.ModuleType) -> tuple[set[str], set[str]]:
    """(public names missing from ``__all__``, names in ``__all__`` that are missing or
    private). Submodules and ``from __future__`` features are not names."""
    not_names = types.ModuleType | __future__._Feature
    public = {n for n, v in vars(module).items()
              if not n.startswith("_") and not isinstance(v, not_names)}
    listed = set(module.__all__)
    return public - listed, {n for n in listed if n.startswith("_") or n not in public}


@pytest.mark.parametrize("name", PUBLIC)
def test_all_is_exactly_the_public_names(name: str) -> None:
    module = importlib.import_module(name)
    assert undeclared(module) == (set(), set())
    assert len(module.__all__) == len(set(module.__all__))


def test_the_all_check_can_fail() -> None:
    fake = types.ModuleType("fake")
    fake.__dict__.update(shown=1, forgotten=2, helper=len, __all__=["shown", "ghost"])
    assert undeclared(fake) == ({"forgotten", "helper"}, {"ghost"})


@pytest.mark.parametrize("name", PUBLIC)
def test_public_signatures_name_exported_types(name: str) -> None:
    assert unexported_types(name) == []


def _public_docstrings() -> Iterator[tuple[str, str]]:
    seen: set[int] = set()
    for name in PUBLIC:
        module = importlib.import_module(name)
        yield name, module.__doc__ or ""
        for attr in module.__all__:
            obj = getattr(module, attr)
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            yield f"{name}.{attr}", _doc(obj)
            if inspect.isclass(obj):
                for key, member in vars(obj).items():
                    if not key.startswith("_") or key == "__init__":
                        yield f"{name}.{attr}.{key}", _doc(member)


def _doc(obj: Any) -> str:
    if isinstance(obj, staticmethod | classmethod):
        obj = obj.__func__
    if isinstance(obj, property):
        obj = obj.fget
    doc = getattr(obj, "__doc__", None)
    return doc if (isinstance(doc, str) and inspect.isroutine(obj)) or inspect.isclass(obj) \
        or inspect.ismodule(obj) else ""


def test_no_public_docstring_names_a_private_module() -> None:
    bad = [f"{where}: {m.group()}" for where, doc in _public_docstrings()
           for m in PRIVATE.finditer(doc or "")]
    assert bad == []


#: the contributors' map of the tree, which must name the private packages it maps
ARCHITECTURE = "docs/architecture.md"


@pytest.mark.parametrize("path", ["README.md", *sorted(
    str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")
    if str(p.relative_to(ROOT)) != ARCHITECTURE)])
def test_no_doc_names_a_private_module(path: str) -> None:
    text = (ROOT / path).read_text()
    bad = [f"{path}:{text.count(chr(10), 0, m.start()) + 1}: {m.group()}"
           for m in PRIVATE.finditer(text)]
    assert bad == []


def test_the_private_name_check_can_fail() -> None:
    found = [m.group() for m in PRIVATE.finditer(
        "see clocksync._io._store, ptp._port.SlavePort and clocksync/agent/_agent.py; "
        "clocksync.latency.dask and ptp.SlavePort are public")]
    assert found == ["clocksync._io", "ptp._port", "clocksync/agent/_agent"]


def test_architecture_doc_matches_the_tree() -> None:
    """Every top-level part of the package is in docs/architecture.md, and every package or
    module path it names exists."""
    text = (ROOT / ARCHITECTURE).read_text()
    parts = {p.stem if p.suffix == ".py" else p.name for p in (ROOT / "clocksync").iterdir()
             if (p.suffix == ".py" or (p / "__init__.py").exists()) and p.name != "__init__.py"}
    missing = [part for part in sorted(parts) if f"clocksync.{part}" not in text
               and f"clocksync/{part}" not in text]
    assert missing == []
    for dotted in set(re.findall(r"\b(?:clocksync|ptp)(?:\.\w+)*", text)):
        parts = dotted.split(".")
        while len(parts) > 1 and importlib.util.find_spec(".".join(parts)) is None:
            parts.pop()  # a name inside a module, e.g. clocksync.testing.__all__
        module = importlib.import_module(".".join(parts))
        rest = dotted.split(".")[len(parts):]
        assert not rest or hasattr(module, rest[0]), dotted
    for path in set(re.findall(r"`((?:clocksync|ptp)/[\w/]*)`", text)):
        assert (ROOT / path).exists(), path


#: the test files of private modules, and the private modules each of them tests; every
#: other test file, and all of lab/, imports public names only
PRIVATE_MODULE_TESTS = {
    "tests/agent/test_agent_agreement.py": {"clocksync.agent._crosscheck"},
    "tests/agent/test_agent_redis.py": {"clocksync._io._store._redis"},
    "tests/agent/test_agent_samplelog.py": {"clocksync.agent._segments"},
    "tests/collector/test_engine.py": {"clocksync.collector._config", "clocksync.collector._engine",
                                       "clocksync.latency._otlp"},
    "tests/collector/test_http.py": {"clocksync.collector._otlpin"},
    "tests/collector/test_online.py": {"clocksync.collector._online"},
    "tests/collector/test_online_pairs.py": {"clocksync.collector._online"},
    "tests/collector/test_service.py": {"clocksync.latency._otlp"},
    "tests/collector/test_raw.py": {"clocksync.collector._raw", "clocksync.latency._storage"},
    "tests/core/test_agreement.py": {"clocksync._fit._agreement"},
    "tests/core/test_display.py": {"clocksync._model._units", "clocksync.cli._skew"},
    "tests/core/test_report.py": {"clocksync._report"},
    "tests/core/test_robust.py": {"clocksync._fit._robust"},
    "tests/faults/test_hostile_http.py": {"clocksync.agent._http"},
    "tests/faults/test_hostile_redis.py": {"clocksync._io._store._redis"},
    "tests/latency/_reference_lp.py": {"clocksync.latency._causal"},
    "tests/latency/test_alerts.py": {"clocksync.latency._alerts"},
    "tests/latency/test_api.py": {"clocksync.latency._arrow"},
    "tests/latency/test_causal.py": {"clocksync.latency._causal"},
    "tests/latency/test_cli.py": {"clocksync.cli._latency", "clocksync.latency._arrow",
                                  "clocksync.latency._storage"},
    "tests/latency/test_cli_dask.py": {"clocksync.cli._scheduler", "clocksync.latency._dask"},
    "tests/latency/test_hop_speed_paths.py": {"clocksync.latency._hops",
                                              "clocksync.latency._pipeline"},
    "tests/latency/test_kernels.py": {"clocksync.latency._arrow", "clocksync._correct._cells",
                                      "clocksync.latency._select", "clocksync.latency._causal"},
    "tests/latency/test_pair_steps.py": {"clocksync.latency._hops", "clocksync.latency._pairs",
                                         "clocksync.latency._pipeline"},
    "tests/latency/test_percentile_speed_paths.py": {"clocksync.latency._percentiles",
                                                     "clocksync.latency._select"},
    "tests/latency/test_spanbatch.py": {"clocksync._io._tabular", "clocksync.latency._otlp",
                                        "clocksync.latency._spanbatch",
                                        "clocksync.latency._spans",
                                        "clocksync.latency._traces"},
    "tests/latency/test_percentiles.py": {"clocksync.latency._percentiles"},
    "tests/latency/test_sampling.py": {"clocksync.latency._sampling"},
    "tests/latency/test_storage.py": {"clocksync.latency._storage", "clocksync.latency._arrow",
                                      "clocksync._io._tabular"},
    "tests/ntp/test_ntp_packet.py": {"clocksync.ntp._packet"},
}
_PRIVATE_PART = re.compile(r"^(?:clocksync|ptp)(?:\.\w+)*\._")


def private_imports(path: Path) -> set[str]:
    """The private clocksync/ptp modules (and private names) a file imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if _PRIVATE_PART.match(node.module + "."):
                found.add(node.module)
            elif node.module.split(".")[0] in ("clocksync", "ptp"):
                found |= {f"{node.module}.{a.name}" for a in node.names
                          if a.name.startswith("_")}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if _PRIVATE_PART.match(a.name + ".")}
    return found


def test_tests_and_lab_import_public_names_only() -> None:
    found = {str(p.relative_to(ROOT)): private_imports(p)
             for base in ("tests", "lab") for p in sorted((ROOT / base).rglob("*.py"))}
    assert {f: m for f, m in found.items() if m} == PRIVATE_MODULE_TESTS


def test_the_private_import_check_can_fail(tmp_path: Path) -> None:
    path = tmp_path / "t.py"
    path.write_text("from clocksync._io._store import open_store\nimport ptp._port\n"
                    "from clocksync import Corrector\nfrom clocksync.latency import _x\n")
    assert private_imports(path) == {"clocksync._io._store", "ptp._port",
                                     "clocksync.latency._x"}
