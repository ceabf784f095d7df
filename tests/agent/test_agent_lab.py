"""Root smoke test of lab/agent_vs_chrony.py: the agent beside chronyd on a direct veth.

All namespaces share one system clock, so the true offset is 0: the agent's published model
must hold 0 inside its bound at every scored instant."""

from __future__ import annotations

import math
import shutil

import pytest

from lab.netlab import missing_requirements

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_agent_lab_direct_veth() -> None:
    why = missing_requirements("chronyd")
    if why:
        pytest.skip(why)
    assert shutil.which("chronyd")
    from lab.agent_vs_chrony import SCENARIOS, run_scenario

    direct = next(sc for sc in SCENARIOS if sc.bridge is None)
    result = run_scenario(direct, seconds=7.0)  # ~7 agent polls (1 s), chronyd at 0.25 s

    assert result.agent_exit_code == 0  # SIGTERM: flushed, published, exited cleanly
    raw = result.stats["agent samples"]
    final = result.stats["agent model (final)"]
    live = result.stats["agent model (live)"]
    assert raw.samples >= 3
    assert final.samples > 0 and live.samples > 0
    for st in (raw, final, live):
        assert st.coverage == 1.0, st
        assert math.isfinite(st.rms_ns), st
        assert st.median_bound_ns > 0, st
    assert result.stats["chronyd samples"].samples > 0  # the side-by-side client measured
