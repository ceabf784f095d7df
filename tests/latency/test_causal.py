"""Causal tightening on synthetic offset truth (no tables needed): the tightened interval
holds the true latency, beats the table-only interval when traffic flows both ways, and
contradictions are flagged rather than hidden."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from clocksync.latency import CausalAssumptions, tighten

T0 = 1_764_129_600_000_000_000


def _traffic(
    rng: np.random.Generator, n: int, both_ways: bool, step_ns: float = 0.0,
    table_bound_ns: float = 150_000.0,
) -> dict[str, npt.NDArray[np.generic]]:
    """Messages between nodes 0 and 1 over 5 s; δ(t) = off_1 - off_0 drifts at 40 ppm."""
    t = np.sort(rng.uniform(0, 5e9, n)).astype(np.int64) + T0
    src = rng.integers(0, 2, n).astype(np.int32) if both_ways else np.zeros(n, np.int32)
    dst = (1 - src).astype(np.int32)
    lat = 20_000 + rng.exponential(60_000, n)  # true latency >= 20 µs

    def delta(tt: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        d = 300_000 + 40e-6 * (tt - T0).astype(np.float64)
        return d + np.where(tt >= T0 + 2_500_000_000, step_ns, 0.0)

    # off_0 = 0: node 0's local = ref; node 1's local = ref - δ
    send_local = np.where(src == 0, t, t - np.rint(delta(t)).astype(np.int64))
    recv_ref = t + np.rint(lat).astype(np.int64)
    recv_local = np.where(dst == 0, recv_ref, recv_ref - np.rint(delta(recv_ref)).astype(np.int64))
    true_lat = (recv_ref - t).astype(np.float64)
    # a truthful table interval, not centred on the truth
    centre = true_lat + rng.uniform(-0.9, 0.9, n) * table_bound_ns
    return {"src": src, "dst": dst, "t": t, "raw": recv_local - send_local,
            "true": true_lat, "tlo": centre - table_bound_ns, "thi": centre + table_bound_ns,
            "beta": np.full(n, table_bound_ns / 2)}


def _run(d: dict[str, npt.NDArray[np.generic]], ca: CausalAssumptions | None = None):  # type: ignore[no-untyped-def]
    return tighten(d["src"], d["dst"], ("a", "b"), d["t"], d["beta"], d["raw"],  # type: ignore[arg-type]
                   d["tlo"], d["thi"], ca)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_both_ways_contains_truth_and_tightens(seed: int) -> None:
    d = _traffic(np.random.default_rng(seed), 4000, both_ways=True)
    res = _run(d, CausalAssumptions(min_wire_delay_ns=10_000.0))
    assert not res.inconsistent.any()
    assert np.all(res.low_ns <= d["true"]) and np.all(d["true"] <= res.high_ns)
    width = res.high_ns - res.low_ns
    table_width = d["thi"] - d["tlo"]
    assert np.all(width <= table_width + 1e-6)
    assert np.median(width) < 0.5 * np.median(table_width)
    assert {w.status for w in res.windows} == {"ok"}
    # δ(window centre) inside the reported offset interval; drift interval holds 40 ppm
    for w in res.windows:
        centre = (w.start_ns + w.end_ns) // 2
        true_delta = 300_000 + 40e-6 * (centre - T0)
        assert w.offset_low_ns <= true_delta <= w.offset_high_ns
        assert w.drift_low_ppm <= 40.0 <= w.drift_high_ppm


def test_one_way_never_wrong_and_half_bounded() -> None:
    d = _traffic(np.random.default_rng(7), 2000, both_ways=False)
    res = _run(d)
    assert np.all(res.low_ns <= d["true"]) and np.all(d["true"] <= res.high_ns)
    assert {w.status for w in res.windows} == {"one-way"}
    assert all(np.isinf(w.offset_high_ns) for w in res.windows)
    np.testing.assert_array_equal(res.high_ns, d["thi"])  # nothing bounds it from above


def test_step_inside_window_is_flagged() -> None:
    d = _traffic(np.random.default_rng(11), 4000, both_ways=True, step_ns=400_000.0,
                 table_bound_ns=1_000_000.0)
    res = _run(d, CausalAssumptions(window_s=5.0))
    assert res.inconsistent.any()
    assert any(w.status == "inconsistent" and w.reason for w in res.windows)


def test_table_contradicting_causality_is_flagged() -> None:
    d = _traffic(np.random.default_rng(5), 2000, both_ways=True)
    # a wrong table: claims latencies 1 ms below the truth with a tight bound
    d["tlo"] = d["true"] - 1_010_000.0
    d["thi"] = d["true"] - 990_000.0
    res = _run(d)
    assert res.inconsistent.all()
    np.testing.assert_array_equal(res.low_ns, d["tlo"])  # kept table-only, flagged
    assert all(w.status == "inconsistent" for w in res.windows)


def test_same_node_entries_pass_through() -> None:
    n = 10
    src = np.zeros(n, np.int32)
    res = tighten(src, src, ("a",), np.arange(n, dtype=np.int64) + T0, np.ones(n),
                  np.full(n, 5, np.int64), np.full(n, 4.0), np.full(n, 6.0))
    assert res.windows == () and np.all(res.low_ns == 4.0) and np.all(res.high_ns == 6.0)


def test_assumptions_validated() -> None:
    with pytest.raises(ValueError, match="window_s"):
        CausalAssumptions(window_s=0)
    with pytest.raises(ValueError, match="max_skew_ppm"):
        CausalAssumptions(max_skew_ppm=-1)


@pytest.mark.parametrize("seed", range(12))
def test_vertex_solver_matches_linprog(seed: int) -> None:
    from clocksync.latency._causal import _reduce  # tests the private module latency._causal
    from tests.latency._reference_lp import _solve, solve_linprog

    rng = np.random.default_rng(seed)
    n_lo, n_up = int(rng.integers(0, 200)), int(rng.integers(0, 200))
    if seed == 0:
        n_up = 0  # one-way: unbounded above
    true_d0, true_rho = rng.normal(0, 1e5), rng.normal(0, 1e4)
    lo_x, up_x = rng.uniform(-0.5, 0.5, n_lo), rng.uniform(-0.5, 0.5, n_up)
    lo_c = true_d0 + true_rho * lo_x - rng.exponential(3e4, n_lo)
    up_u = true_d0 + true_rho * up_x + rng.exponential(3e4, n_up)
    if seed == 5:
        up_u -= 1e6  # contradictory: infeasible
    kl, ku = _reduce(lo_x, lo_c, upper=True), _reduce(up_x, up_u, upper=False)
    fast = _solve(lo_x[kl], lo_c[kl], up_x[ku], up_u[ku], (-0.5, 0.5), 1e6)
    ref = solve_linprog(lo_x, lo_c, up_x, up_u, (-0.5, 0.5), 1e6)
    assert (fast is None) == (ref is None)
    if fast is None or ref is None:
        assert seed == 5
        return
    for got, want in zip(fast[:2], ref[:2], strict=True):
        for g, w in zip(got, want, strict=True):
            assert (np.isinf(g) and np.isinf(w) and np.sign(g) == np.sign(w)) or (
                abs(g - w) <= 1e-6 * max(1.0, abs(w)) + 0.5)
    assert fast[2] == pytest.approx(ref[2], rel=1e-6, abs=1e-3)
