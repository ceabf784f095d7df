"""The NTP arithmetic is pure, and kernel timestamping is the public ``clocksync.net``.

* ``clocksync.ntp._exchange`` and ``_poll`` reach no networking module through any chain of
  our imports, and import at run time with ``socket`` and ``select`` blocked; the codec
  ``_packet`` reaches none through our own modules.
* ``clocksync.net.__all__`` is exactly its public names, and its signatures name exported
  types only.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import clocksync.net
from tests._layers import forbidden_chains, unexported_types

PURE = ("clocksync.ntp._exchange", "clocksync.ntp._poll", "clocksync.ntp._packet")


@pytest.mark.parametrize("module", PURE)
def test_pure_module_reaches_no_socket(module: str) -> None:
    assert forbidden_chains(module) == []


def test_the_check_sees_the_client() -> None:
    assert ("clocksync.ntp._client", "clocksync.net") in forbidden_chains("clocksync.ntp._client")


@pytest.mark.parametrize("module", ["clocksync.ntp._exchange", "clocksync.ntp._poll"])
def test_pure_module_imports_with_sockets_blocked(module: str) -> None:
    """Run time: the module and everything it imports load without ``socket``/``select``
    (the ``clocksync.ntp`` package itself, which holds the client, is not run)."""
    ntp_dir = Path(clocksync.net.__file__).parent.parent / "ntp"  # type: ignore[arg-type]
    code = textwrap.dedent(f"""
        import sys, types
        for name in ("socket", "select", "selectors", "ssl"):
            sys.modules[name] = None
        import clocksync
        package = types.ModuleType("clocksync.ntp")
        package.__path__ = [{str(ntp_dir)!r}]
        sys.modules["clocksync.ntp"] = package
        import {module}
        assert "clocksync.net" not in sys.modules
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    blocked = subprocess.run(
        [sys.executable, "-c", code.replace(module, "clocksync.ntp._client")],
        capture_output=True, text=True, check=False,
    )
    assert "ModuleNotFoundError" in blocked.stderr  # the client needs sockets: the check bites


def test_net_all_is_exactly_the_public_names() -> None:
    public = {n for n in dir(clocksync.net) if not n.startswith("_")}
    assert set(clocksync.net.__all__) == public
    for name in ("StampedSocket", "StampKind", "Stamp", "Received", "SO_TIMESTAMPING",
                 "MSG_ERRQUEUE", "parse_rx_stamp_ns"):
        assert name in clocksync.net.__all__


def test_net_signatures_name_exported_types() -> None:
    assert unexported_types("clocksync.net") == []


def test_exchange_bound_takes_the_public_stamp_kind() -> None:
    """``exchange_bound_ns(tx_kind: StampKind)``: the kind is exported by clocksync.net."""
    import clocksync.ntp

    assert not [b for b in unexported_types("clocksync.ntp") if "exchange_bound_ns" in b]
    assert clocksync.ntp.STAMP_ERROR_NS[clocksync.net.StampKind.KERNEL] == 100.0
