"""A single wild sample (a 1 s offset jump on one reply) never moves the published table;
a genuine 1 s step confirmed by several samples starts a new segment.

Ground truth from :class:`SimClock` + :func:`simulate_samples` (30 min at a 16 s poll,
40 ppm skew, 1 ppb/s wander). "Never moves" is checked with the Corrector: across the whole
sampled span and a minute of holdover, the table fitted with the wild sample corrects every
timestamp to within the clean table's bound of the clean table's answer, the truth stays
inside both bounds, and the wild sample is counted as an outlier.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import numpy.typing as npt
import pytest

from clocksync import CorrectionTable, Corrector, SampleArrays, SimClock, fit_table
from clocksync.testing import LinkModel, simulate_samples

T0 = 1_767_225_600 * 10**9
JUMP_NS = 1e9
TRUTH_SLACK_NS = 100.0  # truth is evaluated at local, not reference, time: 40 ppm x 200 µs


def _clock(steps: tuple[tuple[int, float], ...] = ()) -> SimClock:
    return SimClock(t0_ns=T0, offset0_ns=2e5, skew_ppm=40.0, wander_ppb_per_s=1.0, seed=2,
                    steps=steps)


@functools.cache
def _clean() -> tuple[SampleArrays, CorrectionTable]:
    samples = simulate_samples(_clock(), "n1", T0, 1800, 16, LinkModel(),
                               np.random.default_rng(4))
    return samples, fit_table(samples, reference="sim")


def _with_wild(samples: SampleArrays, k: int, sign: float) -> SampleArrays:
    offsets = samples.offset_ns.copy()
    offsets[k] += sign * JUMP_NS  # the reply lies; its delay and bound look perfectly normal
    return dataclasses.replace(samples, offset_ns=offsets)


def _probe(samples: SampleArrays) -> npt.NDArray[np.int64]:
    return np.linspace(samples.t_local_ns[1], samples.t_local_ns[-1] + 60e9,
                       2000).astype(np.int64)


def _truth_inside(table: CorrectionTable, clock: SimClock, ts: npt.NDArray[np.int64]) -> None:
    ref, bound = Corrector([table]).correct(table.node, ts)
    truth = ts + clock.offset_ns(ts)
    assert np.all(np.abs(ref - truth) <= bound + TRUTH_SLACK_NS)


@pytest.mark.parametrize("k", [1, 5, 30, 56, 90, -3, -2])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_one_wild_sample_never_moves_the_table(k: int, sign: float) -> None:
    samples, clean = _clean()
    wild = fit_table(_with_wild(samples, k, sign), reference="sim")
    assert [s.started_by for s in wild.segments] == [s.started_by for s in clean.segments]
    assert wild.outlier_count == clean.outlier_count + 1
    assert wild.status == clean.status == "synchronised"
    ts = _probe(samples)
    ref_clean, bound_clean = Corrector([clean]).correct("n1", ts)
    ref_wild, bound_wild = Corrector([wild]).correct("n1", ts)
    assert np.all(np.abs(ref_wild - ref_clean) <= bound_clean)
    assert np.all(bound_wild <= 1.5 * bound_clean)  # not even noticeably wider
    _truth_inside(wild, _clock(), ts)


def test_wild_newest_sample_widens_but_never_lies_and_is_dropped_by_the_next() -> None:
    """The newest sample alone cannot be told from a step: the table says so (status
    disrupted, an unconfirmed segment whose bound covers both), the truth stays inside;
    one more normal sample makes it an outlier and the table is back."""
    samples, clean = _clean()
    ts = _probe(samples)
    newest = fit_table(_with_wild(samples, -1, 1.0), reference="sim")
    assert newest.status == "disrupted"
    assert [s.started_by for s in newest.segments] == ["start", "unconfirmed"]
    _truth_inside(newest, _clock(), ts)
    # a +1 s offset jump means the local clock may have stepped back 1 s: local times in
    # the last second before the previous sample could belong to either side (ambiguous)
    before = ts < samples.t_local_ns[-2] - JUMP_NS
    ref_clean, bound_clean = Corrector([clean]).correct("n1", ts[before])
    ref_new, _ = Corrector([newest]).correct("n1", ts[before])
    assert np.all(np.abs(ref_new - ref_clean) <= bound_clean)  # the past is untouched
    dropped = fit_table(_with_wild(samples, -2, 1.0), reference="sim")  # one sample later
    assert dropped.status == "synchronised" and dropped.outlier_count == 1


def test_genuine_step_confirmed_by_several_samples_starts_a_segment() -> None:
    step_at = T0 + 900 * 10**9
    clock = _clock(steps=((step_at, JUMP_NS),))
    samples = simulate_samples(clock, "n1", T0, 1800, 16, LinkModel(),
                               np.random.default_rng(4))
    table = fit_table(samples, reference="sim")
    assert [s.started_by for s in table.segments] == ["start", "step"]
    assert table.outlier_count == 0 and table.status == "synchronised"
    _, clean = _clean()
    after = _probe(samples)
    after = after[after > clock.local_ns(np.array([step_at]))[0] + 60 * 10**9]
    ref_step, bound_step = Corrector([table]).correct("n1", after)
    ref_clean, _ = Corrector([clean]).correct("n1", after)
    moved = ref_step - ref_clean
    assert np.all(np.abs(moved - JUMP_NS) <= 1e6)  # the whole second, to within a ms
    assert np.all(bound_step < 1e6)
    truth = after + clock.offset_ns(after + JUMP_NS)  # after the step local = ref - 1 s
    assert np.all(np.abs(ref_step - truth) <= bound_step + TRUTH_SLACK_NS)
