"""The statistical estimate: a weighted robust line through a segment's recent samples.

Weights follow chrony's idea: a sample's distance ``d = bound`` (half delay + dispersion)
scales its residual, so low-delay samples count more; scipy's ``least_squares`` with a
``soft_l1`` loss keeps queueing spikes from dragging the line. Old samples age out while a
Wald–Wolfowitz runs test on the residual signs says a line no longer fits (frequency moved).
This is an *estimate* with a standard error — never the guaranteed bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import optimize

__all__ = ["LineFit", "fit_line", "runs_test_z"]

F64 = npt.NDArray[np.float64]
_MIN_SAMPLES = 6
_MAX_SAMPLES = 512


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

        def resid(p: F64) -> F64:
            return np.asarray((off_ns - p[0] - p[1] * x) * w, dtype=np.float64)

        sol = optimize.least_squares(resid, np.array([a0, slope0]), loss="soft_l1",
                                     f_scale=scale, method="trf")
        a, slope = float(sol.x[0]), float(sol.x[1])
        jac = sol.jac
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
