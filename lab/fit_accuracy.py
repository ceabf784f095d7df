"""Lab: coverage and tightness of the guaranteed bound on random simulated clocks.

Draws clocks inside the documented envelope (skew ±500 ppm, wander ≤ 10 ppb/s, steps,
gaps of minutes, heavy-tailed asymmetric delays with truthful per-sample bounds), fits a
table per clock with the default assumptions, corrects thousands of local timestamps taken
at random reference times (inside the samples, in gaps, around steps, in holdover) and
scores them against the hidden truth. Prints one row per class of clock:

* coverage: share of corrected timestamps whose truth lies inside ``ref ± bound``;
* tightness: median over interior timestamps of bound / smallest sample bound within ±60 s
  (the physical limit is about 1);
* median |error| and median bound, relative to the median sample bound.

    python -m lab.fit_accuracy [--trials 40] [--seed 1]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field

import numpy as np

from clocksync import OUT_OF_RANGE, Corrector, SimClock, fit_table
from clocksync.testing import LinkModel, simulate_samples

T0 = 1_767_225_600 * 10**9


@dataclass
class Tally:
    trials: int = 0
    clean_trials: int = 0
    queries: int = 0
    covered: int = 0
    unseen: int = 0
    tight: list[float] = field(default_factory=list)
    rel_err: list[float] = field(default_factory=list)
    rel_bound: list[float] = field(default_factory=list)
    fit_s: list[float] = field(default_factory=list)


def one_trial(rng: np.random.Generator, steps_kind: str) -> tuple[int, int, int, list[float],
                                                                   float, float, float]:
    skew = rng.uniform(-500, 500)
    wander = rng.uniform(0, 10)
    poll = float(rng.choice([0.5, 1, 2, 8, 16, 64]))
    asym = rng.uniform(-300e3, 300e3)
    link = LinkModel(base_delay_ns=rng.uniform(5e3, 500e3) + max(0.0, -asym),
                     jitter_ns=rng.uniform(1e3, 1e6), tail_probability=rng.uniform(0, 0.3),
                     tail_scale_ns=rng.uniform(1e5, 1e7), asymmetry_ns=asym)
    # median sample bound of this link, to size the steps relative to it
    probe = simulate_samples(SimClock(t0_ns=T0), "p", T0, 600, 1.0, link,
                             np.random.default_rng(0))
    med_bound = float(np.median(probe.bound_ns))
    steps: tuple[tuple[int, float], ...] = ()
    if steps_kind != "none":
        n = int(rng.integers(1, 3))
        lo, hi = (3.0, 1e4) if steps_kind == "large" else (0.2, 2.0)
        sizes = rng.choice([-1, 1], n) * med_bound * 10 ** rng.uniform(np.log10(lo),
                                                                          np.log10(hi), n)
        steps = tuple(sorted((T0 + int(rng.uniform(100, 3500) * 1e9), float(x))
                             for x in sizes))
    clock = SimClock(t0_ns=T0, offset0_ns=rng.uniform(-1e9, 1e9), skew_ppm=skew,
                     wander_ppb_per_s=wander, wander_knot_s=float(rng.choice([5, 30, 120])),
                     span_s=5000, steps=steps, seed=int(rng.integers(1 << 30)))
    g0 = rng.uniform(500, 3000)
    gaps = ((g0, g0 + rng.uniform(60, 900)),) if rng.random() < 0.6 else ()
    s = simulate_samples(clock, "n", T0, 3600, poll, link, rng, gaps_s=gaps)
    t = time.perf_counter()
    table = fit_table(s)
    fit_s = time.perf_counter() - t
    cor = Corrector([table])
    t_ref = T0 + (rng.uniform(0, 4200, 5000) * 1e9).astype(np.int64)
    # a step after the last sample is invisible to any table (docs/model.md, assumption 4):
    # queries after it are counted apart, not scored
    last_ref_ns = float(np.max(s.t_local_ns + s.offset_ns) + np.max(s.bound_ns))
    unseen = [at for at, _ in steps if at > last_ref_ns]
    observable = t_ref < min(unseen) if unseen else np.ones(len(t_ref), dtype=bool)
    t_ref = t_ref[observable]
    t_local = clock.local_ns(t_ref)
    flags = cor.flags("n", t_local)
    ok = (flags & OUT_OF_RANGE) == 0
    ref, bound = cor.correct("n", t_local[ok])
    err = (ref - t_ref[ok]).astype(np.float64)
    covered = int(np.sum(np.abs(err) <= bound))
    interior = flags[ok] == 0
    order = np.argsort(s.t_local_ns)
    st, sb = s.t_local_ns[order], s.bound_ns[order]
    tq = t_local[ok][interior]
    a = np.searchsorted(st, tq - 60 * 10**9)
    b = np.searchsorted(st, tq + 60 * 10**9)
    ratios = [float(bound[interior][i] / sb[x:y].min())
              for i, (x, y) in enumerate(zip(a, b, strict=True)) if y > x]
    med = float(np.median(s.bound_ns))
    return (int(ok.sum()), covered, int(np.sum(~observable)), ratios,
            float(np.median(np.abs(err))) / med, float(np.median(bound)) / med, fit_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40, help="clocks per class")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    classes = {"no steps": "none", "steps >= 3x bound": "large",
               "steps 0.2-2x bound": "small"}
    tallies = {name: Tally() for name in classes}
    for name, kind in classes.items():
        tally = tallies[name]
        for _ in range(args.trials):
            n, covered, unseen, ratios, rel_err, rel_bound, fit_s = one_trial(rng, kind)
            tally.unseen += unseen
            tally.trials += 1
            tally.clean_trials += covered == n
            tally.queries += n
            tally.covered += covered
            tally.tight.extend(ratios)
            tally.rel_err.append(rel_err)
            tally.rel_bound.append(rel_bound)
            tally.fit_s.append(fit_s)
    print(f"fit accuracy on random clocks (seed {args.seed}, {args.trials} clocks per class, "
          "1 h of samples each, 5000 queries per clock)")
    header = (f"{'class':<20} {'clocks':>6} {'all-covered':>11} {'coverage':>10} "
              f"{'tight p50':>9} {'tight p90':>9} {'|err|/b~':>8} {'bound/b~':>8} "
              f"{'fit s p50':>9} {'unseen':>6}")
    print(header)
    print("-" * len(header))
    for name, t in tallies.items():
        print(f"{name:<20} {t.trials:>6} {t.clean_trials:>11} "
              f"{100 * t.covered / max(t.queries, 1):>9.3f}% "
              f"{np.median(t.tight):>9.2f} {np.percentile(t.tight, 90):>9.2f} "
              f"{np.median(t.rel_err):>8.3f} {np.median(t.rel_bound):>8.3f} "
              f"{np.median(t.fit_s):>9.2f} {t.unseen:>6}")
    print("tight = bound / smallest sample bound within ±60 s (interior); b~ = median sample "
          "bound; steps sized against the link's median sample bound; unseen = queries after "
          "a step that no sample followed (holdover cannot see it; not scored)")


if __name__ == "__main__":
    main()
