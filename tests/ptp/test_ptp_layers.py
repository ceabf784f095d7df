"""The shape of the ptp package: a socket-free protocol part, public names only.

* The protocol part (codec, BMCA, exchange arithmetic, port state machine, ptp4l text)
  reaches no networking module and no I/O module of ptp, through any chain of our imports.
* Of clocksync, ptp imports public names only; the protocol part only the error classes and
  ``Assumptions``.
* ``ptp.__all__`` is exactly the package's public names, and every type its signatures name
  is exported.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pkgutil
import re
import sys
import types
from pathlib import Path

import pytest

import ptp
from tests._layers import NETWORKING, forbidden_chains, public_imports_only, unexported_types

#: The socket-free protocol part.
PROTOCOL = (
    "ptp._types",
    "ptp._messages",
    "ptp._codec",
    "ptp._errors",
    "ptp._bmca",
    "ptp._exchange",
    "ptp._port",
    "ptp._ptp4l",
)
#: The modules that do I/O (sockets, the clock, rendering for the CLI).
IO = ("ptp._transport", "ptp._slave", "ptp._pmc", "ptp._probe")
#: What the protocol part may take from clocksync: the bottom layer's errors and assumptions.
PROTOCOL_FROM_CLOCKSYNC = {"ClockSyncError", "InputError", "Assumptions"}


def _all_modules() -> list[str]:
    return ["ptp"] + [m.name for m in pkgutil.iter_modules(ptp.__path__, "ptp.")]


def test_every_module_is_classified() -> None:
    assert set(_all_modules()) == {"ptp", *PROTOCOL, *IO}


@pytest.mark.parametrize("module", PROTOCOL)
def test_protocol_module_reaches_no_socket(module: str) -> None:
    assert forbidden_chains(module, (*NETWORKING, *IO)) == []


def test_the_check_sees_io() -> None:
    """The I/O modules do reach sockets, so the check above can fail."""
    for module in ("ptp._transport", "ptp._slave", "ptp._pmc"):
        assert (module, "socket") in forbidden_chains(module)
    assert ("ptp._slave", "ptp._transport") in forbidden_chains("ptp._slave", IO)


@pytest.mark.parametrize("module", _all_modules())
def test_ptp_imports_public_clocksync_names_only(module: str) -> None:
    assert public_imports_only(module, "clocksync") == []


def _clocksync_names(module: str) -> set[str]:
    path = importlib.util.find_spec(module).origin  # type: ignore[union-attr]
    names = set()
    for node in ast.walk(ast.parse(Path(str(path)).read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "clocksync":
            names |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.split(".")[0] == "clocksync"}
    return names


def test_protocol_part_takes_only_errors_and_assumptions_from_clocksync() -> None:
    used = set().union(*(_clocksync_names(m) for m in PROTOCOL))
    assert used <= {f"clocksync.{n}" for n in PROTOCOL_FROM_CLOCKSYNC}
    assert "clocksync.net.StampKind" in _clocksync_names("ptp._slave")  # the check sees names


def test_all_is_exactly_the_public_names() -> None:
    public = {n for n in dir(ptp) if not n.startswith("_")}
    assert set(ptp.__all__) == public
    assert len(ptp.__all__) == len(set(ptp.__all__))


def test_public_signatures_name_exported_types() -> None:
    assert unexported_types("ptp") == []


def test_the_signature_check_can_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("ptp._fake")

    class Hidden:
        pass

    def shown(x: int) -> Hidden | None:
        return None

    Hidden.__module__ = shown.__module__ = "ptp._fake"
    shown.__annotations__ = {"x": int, "return": Hidden | None}
    fake.__dict__.update(Hidden=Hidden, shown=shown, __all__=["shown"])
    monkeypatch.setitem(sys.modules, "ptp._fake", fake)
    assert unexported_types("ptp._fake") == [f"shown(return): ptp._fake.{Hidden.__qualname__}"]


def _imports_ptp(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "ptp" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.level == 0 \
                and (node.module or "").split(".")[0] == "ptp":
            return True
    return False


def test_only_the_agent_and_the_cli_import_ptp() -> None:
    """ptp depends on clocksync's public names; in clocksync only the agent (its PTP
    sources) and the CLI import ptp back, so the core never needs ptp."""
    root = Path(importlib.import_module("clocksync").__file__).parent  # type: ignore[arg-type]
    importers = {p.relative_to(root).parts[0] for p in root.rglob("*.py") if _imports_ptp(p)}
    assert importers == {"agent", "cli"}


_PRIVATE_MODULE = re.compile(r"\b(?:clocksync|ptp)(?:\.[A-Za-z]\w*)*\._[a-z]\w*")


def test_docs_and_docstrings_name_no_private_module() -> None:
    """The PTP/NTP docs, the README and ptp's and clocksync.net's sources (docstrings,
    comments) send readers to public names only."""
    root = Path(__file__).resolve().parents[2]
    files = [root / "README.md", root / "docs" / "ptp.md", root / "docs" / "ntp.md"]
    files += sorted((root / "ptp").glob("*.py")) + sorted((root / "clocksync" / "net").glob("*.py"))
    found = [f"{p.relative_to(root)}: {m}" for p in files
             for m in _PRIVATE_MODULE.findall(p.read_text())]
    assert found == []
    assert _PRIVATE_MODULE.findall("see ptp._port.REJECT_* and clocksync.net._x") == [
        "ptp._port", "clocksync.net._x"]
