"""Corrector: scalar/array/sorted/unsorted agree, invalid input refused, latency bounds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import clocksync
from clocksync import (
    AMBIGUOUS,
    OUT_OF_RANGE,
    Corrector,
    DirectoryStore,
    InvalidTimestampError,
    OutOfRangeError,
    SimClock,
    UnknownNodeError,
    fit_table,
)
from clocksync.testing import LinkModel, simulate_samples

T0 = 1_767_225_600 * 10**9


@pytest.fixture
def corrector(stepped_samples) -> Corrector:  # type: ignore[no-untyped-def]
    return Corrector([fit_table(stepped_samples)])


def _times(cor: Corrector, n: int, seed: int = 0) -> np.ndarray:
    c = cor.table("n1").cells
    rng = np.random.default_rng(seed)
    last = int(cor.table("n1").last_sample_local_ns or 0)
    return rng.integers(int(c.start_ns[0]), last + 10**11, n, dtype=np.int64)


def test_scalar_array_sorted_unsorted_agree(corrector: Corrector) -> None:
    ts = _times(corrector, 5000)
    ref_u, b_u = corrector.correct("n1", ts)
    order = np.argsort(ts)
    ref_s, b_s = corrector.correct("n1", ts[order])
    assert ref_s.tolist() == ref_u[order].tolist() and b_s.tolist() == b_u[order].tolist()
    for i in range(0, 5000, 500):
        r, b = corrector.correct("n1", int(ts[i]))
        assert (r, b) == (ref_u[i], b_u[i])
        assert isinstance(r, int) and isinstance(b, float)
    two_d = ts[:100].reshape(10, 10)
    r2, _ = corrector.correct("n1", two_d)
    assert r2.shape == (10, 10) and np.array_equal(r2.reshape(-1), ref_u[:100])


def test_interval_contains_correction(corrector: Corrector) -> None:
    ts = _times(corrector, 1000, seed=1)
    ref, bound = corrector.correct("n1", ts)
    lo, hi = corrector.interval("n1", ts)
    assert np.all((ref - lo) >= bound) and np.all((hi - ref) >= bound)
    assert np.all((hi - lo) <= 2 * np.ceil(bound))


def test_unknown_node(corrector: Corrector) -> None:
    with pytest.raises(UnknownNodeError, match=r"'nope'.*known: n1"):
        corrector.correct("nope", 1)


@pytest.mark.parametrize("bad", [np.array([1.5e18, np.nan]), np.array([1.0e18, 2.5]),
                                 np.array([-5], dtype=np.int64), np.array(["x"])])
def test_invalid_timestamps(corrector: Corrector, bad: np.ndarray) -> None:
    with pytest.raises(InvalidTimestampError):
        corrector.correct("n1", bad)


def test_negative_scalar(corrector: Corrector) -> None:
    with pytest.raises(InvalidTimestampError):
        corrector.correct("n1", -1)


def test_before_first_sample_is_refused_or_flagged(corrector: Corrector) -> None:
    first = int(corrector.table("n1").cells.start_ns[0])
    ts = np.array([first - 1, first, first + 10**9], dtype=np.int64)
    with pytest.raises(OutOfRangeError, match="1 timestamp"):
        corrector.correct("n1", ts)
    with pytest.raises(OutOfRangeError):
        corrector.correct("n1", first - 1)
    ref, bound = corrector.correct("n1", ts, on_invalid="inf")
    assert ref[0] == ts[0] and np.isinf(bound[0]) and np.all(np.isfinite(bound[1:]))
    assert corrector.flags("n1", ts)[0] & OUT_OF_RANGE
    # a same-node latency from an out-of-range start: infinite bound, no warning (-W error)
    lat, lat_bound = corrector.latency("n1", ts, "n1", ts + 10**9, on_invalid="inf")
    assert np.isinf(lat_bound[0]) and np.all(np.isfinite(lat_bound[1:]))
    assert np.all(np.abs(lat[1:] - 1e9) <= 1e6)  # 1 s at most 1000 ppm off


def test_past_holdover_horizon_is_refused(stepped_samples) -> None:  # type: ignore[no-untyped-def]
    cor = Corrector([fit_table(stepped_samples, holdover_horizon_s=60)])
    last = int(cor.table("n1").last_sample_local_ns)
    cor.correct("n1", last + 59 * 10**9)
    with pytest.raises(OutOfRangeError):
        cor.correct("n1", last + 61 * 10**9)


def test_latency_same_node_is_tighter_than_two_corrections(  # type: ignore[no-untyped-def]
    corrector: Corrector, stepped_clock
) -> None:
    rng = np.random.default_rng(2)
    t_ref = T0 + (rng.uniform(20, 3700, 2000) * 1e9).astype(np.int64)
    src, dst = stepped_clock.local_ns(t_ref), stepped_clock.local_ns(t_ref + 300_000)
    keep = ((corrector.flags("n1", src) | corrector.flags("n1", dst)) & AMBIGUOUS) == 0
    src, dst = src[keep], dst[keep]
    lat, bound = corrector.latency("n1", src, "n1", dst)
    _, b1 = corrector.correct("n1", src)
    _, b2 = corrector.correct("n1", dst)
    assert np.all(bound <= b1 + b2)
    assert np.all(np.abs(lat - 300_000) <= bound)  # the truth is inside
    # 300 µs on one clock: only the rate error over 300 µs (+ rounding) remains
    assert np.median(bound) < 200
    assert np.any(np.abs(dst - src - 300_000) > 30)  # raw local difference is off by skew


def test_latency_across_nodes_covers_truth() -> None:
    rng = np.random.default_rng(4)
    a = SimClock(t0_ns=T0, offset0_ns=5e6, skew_ppm=80, wander_ppb_per_s=5, span_s=4000, seed=1)
    b = SimClock(t0_ns=T0, offset0_ns=-3e6, skew_ppm=-150, wander_ppb_per_s=8, span_s=4000,
                 seed=2)
    link = LinkModel()
    tables = [fit_table(simulate_samples(c, name, T0, 3000, 8, link, rng))
              for c, name in ((a, "pp"), (b, "bifrost"))]
    cor = Corrector({t.node: t for t in tables})
    send = T0 + (rng.uniform(100, 2900, 3000) * 1e9).astype(np.int64)
    true_lat = rng.uniform(50_000, 900_000, 3000).astype(np.int64)
    raw = b.local_ns(send + true_lat) - a.local_ns(send)
    lat, bound = cor.latency("pp", a.local_ns(send), "bifrost", b.local_ns(send + true_lat))
    assert np.all(np.abs(lat - true_lat) <= bound)
    assert np.any(raw < 0)  # raw differences lie; corrected ones carry their bound


def test_from_directory_store_and_refresh(tmp_path: Path, stepped_samples) -> None:  # type: ignore[no-untyped-def]
    store = DirectoryStore(tmp_path)
    table = fit_table(stepped_samples)
    store.write(table)
    cor = Corrector.from_store(str(tmp_path))
    assert cor.nodes == ("n1",)
    assert Corrector.from_store(f"file://{tmp_path}").nodes == ("n1",)
    assert not cor.refresh()
    other = fit_table(stepped_samples.take(np.arange(50)))
    store.write(other)
    assert cor.refresh()
    assert cor.table("n1").sample_count == 50
    assert [p.name for p in tmp_path.iterdir()] == ["n1.table.json"]


def test_directory_store_removes_its_stale_temporary_files(tmp_path: Path,
                                                           stepped_samples) -> None:  # type: ignore[no-untyped-def]
    """A writer killed mid-write leaves ``.n1.table.json.XXXX.tmp``: the node's next write
    removes it once it is old; a fresh one (a write in flight) and other nodes' stay."""
    import os
    import time

    store = DirectoryStore(tmp_path)
    stale, fresh = tmp_path / ".n1.table.json.abc.tmp", tmp_path / ".n1.table.json.def.tmp"
    other = tmp_path / ".n2.table.json.abc.tmp"
    for path in (stale, fresh, other):
        path.write_bytes(b"{")
    old = time.time() - 86_400  # a day old: long past the store's minute of grace
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    store.write(fit_table(stepped_samples))
    assert not stale.exists() and fresh.exists() and other.exists()
    assert Corrector.from_store(str(tmp_path)).nodes == ("n1",)  # readers ignore temp files


def test_public_api_is_exactly_all() -> None:
    names = {n for n in dir(clocksync) if not n.startswith("_")}
    modules = {"cli"}
    assert set(clocksync.__all__) == names - modules - {n for n in names if n.islower()
                                                         and n not in clocksync.__all__}
    for name in clocksync.__all__:
        assert getattr(clocksync, name) is not None
    for required in ("Sample", "fit_table", "CorrectionTable", "Corrector"):
        assert required in clocksync.__all__


def test_every_module_has_an_all_that_resolves() -> None:
    """Every module of the package lists its public names in ``__all__``, and each exists
    (a name left behind by a move between modules fails here)."""
    import importlib
    import pkgutil

    seen = 0
    for info in pkgutil.walk_packages(clocksync.__path__, "clocksync."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        names = getattr(module, "__all__", None)
        assert isinstance(names, list), info.name
        for name in names:
            assert hasattr(module, name), f"{info.name}.{name}"
        seen += 1
    assert seen > 50
