"""The statistical estimate: a weighted robust line through a segment's recent samples.

Weights follow chrony's idea: a sample's distance ``d = bound`` (half delay + dispersion)
scales its residual, so low-delay samples count more; a ``soft_l1`` (pseudo-Huber) loss,
``ρ(z) = 2(√(1+z) − 1)`` on ``z = (residual/(distance·scale))²``, keeps queueing spikes from
dragging the line. With two parameters and a convex loss the minimum is unique; damped
Newton steps reach it in numpy (the cost never rises). It is the objective and covariance
convention of scipy's ``least_squares(loss="soft_l1")`` — a test holds the two together —
without importing scipy.optimize (47 MB of resident memory; the agent's budget is 80 MB).
Old samples age out while a Wald–Wolfowitz runs test on the residual signs says a line no
longer fits (frequency moved). This is an *estimate* with a standard error — never the
guaranteed bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["LineFit", "fit_line", "runs_test_z", "soft_l1_line"]

F64 = npt.NDArray[np.float64]
_MIN_SAMPLES = 6
_MAX_SAMPLES = 512
_NEWTON_MAX_ITER = 100
_NEWTON_TOL = 1e-13


@dataclass(frozen=True, slots=True)
class LineFit:
    """``offset(t) ≈ offset_ns + slope_ns_per_s·(t - anchor_s)`` with 1σ errors.

    ``anchor_s`` is in the caller's time base (seconds); ``first_index`` is the oldest sample
    used (older ones aged out by the runs test); ``residual_rms_ns`` is weighted like the fit
    (by 1/distance²), so it describes the low-delay samples the line rests on.
    """

    anchor_s: float
    offset_ns: float
    slope_ns_per_s: float
    sigma_offset_ns: float
    sigma_slope_ns_per_s: float
    residual_rms_ns: float
    used: int
    first_index: int


def runs_test_z(residuals: F64) -> float:
    """z-score of the number of sign runs (negative: too few runs, a line does not fit)."""
    signs = residuals > 0
    n1 = int(signs.sum())
    n2 = len(signs) - n1
    if n1 == 0 or n2 == 0:
        return -math.inf if len(signs) >= _MIN_SAMPLES else 0.0
    runs = 1 + int(np.count_nonzero(signs[1:] != signs[:-1]))
    n = n1 + n2
    mean = 2.0 * n1 * n2 / n + 1.0
    var = (mean - 1.0) * (mean - 2.0) / (n - 1.0)
    return (runs - mean) / math.sqrt(var) if var > 0 else 0.0


def soft_l1_line(x: F64, y: F64, w: F64, scale: float, a0: float, slope0: float,
                 ) -> tuple[float, float, F64]:
    """Minimise ``Σ ρ(((y − a − slope·x)·w / scale)²)``, ``ρ(z) = 2(√(1+z) − 1)``.

    The cost is convex in ``(a, slope)`` with a positive definite Hessian, so damped Newton
    steps (halved until the cost falls) converge to its unique minimum, quadratically near
    it — also where IRLS crawls (a few points, one far outlier).

    Returns ``a``, ``slope`` and the loss-scaled Jacobian at the solution (rows
    ``[w, w·x]·(1+z)^(-3/4)``: ``JᵀJ`` is the Gauss-Newton Hessian of the cost, as scipy's
    ``least_squares`` reports it), from which the caller takes the covariance.
    """
    def cost(a_: float, s_: float) -> float:
        u = (y - a_ - s_ * x) * w / scale
        return float(np.sum(np.sqrt(1.0 + u * u) - 1.0))

    a, slope = a0, slope0
    current = cost(a, slope)
    for _ in range(_NEWTON_MAX_ITER):
        u = (y - a - slope * x) * w / scale
        q = 1.0 + u * u
        g = u / np.sqrt(q) * w  # d cost / d(-a) per point (times scale)
        h = w * w / (q * np.sqrt(q))  # second derivative per point (times scale²)
        g0, g1 = float(np.sum(g)), float(np.sum(g * x))
        h00, h01, h11 = float(np.sum(h)), float(np.sum(h * x)), float(np.sum(h * x * x))
        det = h00 * h11 - h01 * h01
        if not det > 0:
            break
        da = scale * (h11 * g0 - h01 * g1) / det
        ds = scale * (h00 * g1 - h01 * g0) / det
        t = 1.0
        for _ in range(60):
            trial = cost(a + t * da, slope + t * ds)
            if trial <= current:
                break
            t *= 0.5
        else:
            break  # no decrease at any step length: at the minimum to rounding
        a, slope, current = a + t * da, slope + t * ds, trial
        span = max(float(np.max(np.abs(x))), 1.0)
        if abs(t * da) + abs(t * ds) * span <= _NEWTON_TOL * (abs(a) + scale / float(np.max(w))):
            break
    z = ((y - a - slope * x) * w / scale) ** 2
    row_scale = (1.0 + z) ** -0.75
    jac = np.column_stack((w * row_scale, w * x * row_scale))
    return a, slope, jac


def _fit_once(t_s: F64, off_ns: F64, dist_ns: F64) -> tuple[LineFit, F64]:
    w = 1.0 / dist_ns
    anchor = float(np.sum(t_s * w * w) / np.sum(w * w))
    x = t_s - anchor
    # weighted least squares start, then a robust refinement
    sw = w * w
    xm = float(np.sum(sw * x) / np.sum(sw))
    ym = float(np.sum(sw * off_ns) / np.sum(sw))
    sxx = float(np.sum(sw * (x - xm) ** 2))
    slope0 = float(np.sum(sw * (x - xm) * (off_ns - ym)) / sxx) if sxx > 0 else 0.0
    a0 = ym - slope0 * xm
    if len(t_s) >= 3:
        scale = max(float(np.median(np.abs((off_ns - a0 - slope0 * x) * w))), 1e-3)
        a, slope, jac = soft_l1_line(x, off_ns, w, scale, a0, slope0)
        res = off_ns - a - slope * x
        dof = max(len(t_s) - 2, 1)
        s2 = float(np.sum((res * w) ** 2) / dof)
        try:
            cov = np.linalg.inv(jac.T @ jac) * s2
            sig_a, sig_s = math.sqrt(max(cov[0, 0], 0.0)), math.sqrt(max(cov[1, 1], 0.0))
        except np.linalg.LinAlgError:
            sig_a, sig_s = math.inf, math.inf
    else:
        a, slope = a0, slope0
        res = off_ns - a - slope * x
        sig_a = float(np.min(dist_ns))
        sig_s = math.inf if len(t_s) < 2 else sig_a / max(float(np.ptp(t_s)), 1e-9)
    # weighted like the fit: low-delay samples dominate, queueing spikes do not
    rms = float(np.sqrt(np.sum(res * res * w * w) / np.sum(w * w)))
    fit = LineFit(anchor, a, slope, sig_a, sig_s, rms, len(t_s), 0)
    return fit, res


def fit_line(t_s: F64, off_ns: F64, dist_ns: F64, runs_z: float = -2.6) -> LineFit:
    """Robust weighted line through the most recent samples a runs test accepts."""
    n = len(t_s)
    if n == 0:
        raise ValueError("fit_line: no samples")
    start = max(0, n - _MAX_SAMPLES)
    while True:
        fit, res = _fit_once(t_s[start:], off_ns[start:], dist_ns[start:])
        remaining = n - start
        if remaining <= _MIN_SAMPLES or runs_test_z(res) >= runs_z:
            break
        start += max(1, remaining // 4)  # age out the oldest quarter and refit
    return LineFit(fit.anchor_s, fit.offset_ns, fit.slope_ns_per_s, fit.sigma_offset_ns,
                   fit.sigma_slope_ns_per_s, fit.residual_rms_ns, fit.used, start)
