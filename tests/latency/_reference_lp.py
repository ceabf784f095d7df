"""Reference solvers of the causal LP of :mod:`clocksync.latency._causal`, for tests only:
``_solve`` enumerates one window's polygon vertices (what :func:`solve_windows` does for
many windows at once), ``solve_linprog`` solves the same LP with
:func:`scipy.optimize.linprog` (HiGHS)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.optimize import linprog

from clocksync.latency._causal import (  # the tolerances of the private module it checks
    _BOX_NS,
    _FEAS_TOL_NS,
    _LP_TOL_NS,
)

__all__ = ["_solve", "solve_linprog"]

F64 = npt.NDArray[np.float64]


def _vertices(a: F64, c: F64) -> F64:
    """Vertices of the polygon ``{v : a @ v <= c}`` (2-D), by intersecting every pair of
    constraint lines and keeping the feasible points; empty when infeasible."""
    i, j = np.triu_indices(len(c), k=1)
    det = a[i, 0] * a[j, 1] - a[j, 0] * a[i, 1]
    ok = np.abs(det) > 1e-12
    i, j, det = i[ok], j[ok], det[ok]
    v0 = (c[i] * a[j, 1] - c[j] * a[i, 1]) / det
    v1 = (a[i, 0] * c[j] - a[j, 0] * c[i]) / det
    pts = np.column_stack([v0, v1])
    slack = c[None, :] - pts @ a.T
    tol = _FEAS_TOL_NS + 1e-9 * np.abs(c)[None, :]
    return np.asarray(pts[np.all(slack >= -tol, axis=1)])


def _solve(
    lo_x: F64, lo_c: F64, up_x: F64, up_u: F64, xs: tuple[float, float], rho_max: float
) -> tuple[F64, F64, tuple[float, float]] | None:
    """Least and greatest linear-part δ at ``xs`` and the ρ range; ``None`` if infeasible.

    A two-variable LP: ``min/max δ0 + ρ·x`` subject to ``δ0 + ρ·x_i >= c_i`` (A->B),
    ``δ0 + ρ·x_j <= u_j`` (B->A), ``|ρ| <= rho_max``. Solved exactly by enumerating the
    vertices of the feasible polygon (δ0 boxed at ±1e18 ns; hitting the box = unbounded);
    :func:`solve_linprog` is the same LP through :func:`scipy.optimize.linprog`.
    """
    a = np.concatenate([
        np.column_stack([-np.ones(len(lo_x)), -lo_x]),
        np.column_stack([np.ones(len(up_x)), up_x]),
        np.array([[0.0, 1.0], [0.0, -1.0], [1.0, 0.0], [-1.0, 0.0]]),
    ])
    c = np.concatenate([-lo_c, up_u, [rho_max, rho_max, _BOX_NS, _BOX_NS]])
    verts = _vertices(a, c)
    if not len(verts):
        return None

    def unbox(value: float) -> float:
        return value if abs(value) < _BOX_NS / 2 else float(np.sign(value) * np.inf)

    mins, maxs = [], []
    for x in xs:
        vals = verts[:, 0] + verts[:, 1] * x
        mins.append(unbox(float(vals.min())) - _LP_TOL_NS)
        maxs.append(unbox(float(vals.max())) + _LP_TOL_NS)
    rho = (float(verts[:, 1].min()), float(verts[:, 1].max()))
    return np.asarray(mins), np.asarray(maxs), rho




def solve_linprog(
    lo_x: F64, lo_c: F64, up_x: F64, up_u: F64, xs: tuple[float, float], rho_max: float
) -> tuple[F64, F64, tuple[float, float]] | None:
    """The LP of :func:`_solve` through :func:`scipy.optimize.linprog` (HiGHS): slower,
    kept as the reference the fast solver is tested against."""
    a_ub = np.concatenate([np.column_stack([-np.ones(len(lo_x)), -lo_x]),
                           np.column_stack([np.ones(len(up_x)), up_x])])
    b_ub = np.concatenate([-lo_c, up_u])
    bounds = [(None, None), (-rho_max, rho_max)]

    def extreme(obj: list[float]) -> float | None:
        res = linprog(obj, A_ub=a_ub if len(b_ub) else None, b_ub=b_ub if len(b_ub) else None,
                      bounds=bounds, method="highs")
        if res.status == 2:
            return None
        if res.status == 3:
            return -np.inf
        if res.status != 0:
            raise RuntimeError(f"linprog failed: {res.message}")
        return float(res.fun)

    mins, maxs = [], []
    for x in xs:
        lo = extreme([1.0, x])
        hi = extreme([-1.0, -x])
        if lo is None or hi is None:
            return None
        mins.append(lo - _LP_TOL_NS)
        maxs.append(-hi + _LP_TOL_NS)
    rho_lo, rho_hi = extreme([0.0, 1.0]), extreme([0.0, -1.0])
    if rho_lo is None or rho_hi is None:
        return None
    return np.asarray(mins), np.asarray(maxs), (rho_lo, -rho_hi)


