"""Steps, wild samples and unconfirmed steps: split, drop, or stay ambiguous — never a
confident wrong answer."""

from __future__ import annotations

import numpy as np

from clocksync import AMBIGUOUS, Corrector, SampleArrays, SimClock, fit_table
from clocksync.testing import LinkModel, simulate_samples

T0 = 1_767_225_600 * 10**9


def _base(n_s: float = 1200, poll: float = 4.0, steps=()):  # type: ignore[no-untyped-def]
    clock = SimClock(t0_ns=T0, offset0_ns=1e6, skew_ppm=30, wander_ppb_per_s=1, span_s=3000,
                     steps=steps, seed=4)
    s = simulate_samples(clock, "n", T0, n_s, poll, LinkModel(jitter_ns=5_000,
                         tail_probability=0.0), np.random.default_rng(3))
    return clock, s


def _with_offsets(s: SampleArrays, idx: list[int], delta_ns: float) -> SampleArrays:
    off = s.offset_ns.copy()
    off[idx] += delta_ns
    return SampleArrays(s.node, s.t_local_ns, off, s.delay_ns, s.bound_ns, s.source)


def test_single_wild_sample_is_an_outlier_not_a_step() -> None:
    _, s = _base()
    clean = fit_table(s)
    wild = fit_table(_with_offsets(s, [150], 1e9))  # a 1 s jump on one reply
    assert wild.outlier_count == 1 and len(wild.segments) == 1
    ts = s.t_local_ns[100:200]
    a = Corrector([clean]).correct("n", ts)
    b = Corrector([wild]).correct("n", ts)
    # the published corrections are unaffected except right at the dropped sample
    assert np.max(np.abs(a[0] - b[0])) < 10_000


def test_confirmed_step_starts_a_new_segment() -> None:
    clock, s = _base(steps=((T0 + 600 * 10**9, -2e6),))
    table = fit_table(s)
    assert [g.started_by for g in table.segments] == ["start", "step"]
    cor = Corrector([table])
    q = T0 + np.arange(10, 1190, 0.25).astype(np.int64) * 10**9 // 1
    q = T0 + (np.arange(10, 1190, 0.25) * 1e9).astype(np.int64)
    ref, bound = cor.correct("n", clock.local_ns(q))
    assert np.all(np.abs(ref - q) <= bound)
    assert np.any(cor.flags("n", clock.local_ns(q)) & AMBIGUOUS)  # the gap around the step


def test_trailing_unconfirmed_step_makes_the_tail_ambiguous() -> None:
    clock, s = _base()
    n = len(s)
    table = fit_table(_with_offsets(s, [n - 1], 5e6))
    assert table.status == "disrupted"
    assert table.segments[-1].started_by == "unconfirmed"
    cor = Corrector([table])
    after = int(s.t_local_ns[-1]) + 2 * 10**9
    ref, bound = cor.correct("n", after)
    # both the old model and the jumped sample are inside: ± at least half the jump
    assert bound >= 2.4e6
    truth_ref = after + float(clock.offset_ns(T0 + int(1200.5 * 1e9)))
    assert abs(ref - truth_ref) <= bound
    assert cor.flags("n", np.array([after]))[0] & AMBIGUOUS
