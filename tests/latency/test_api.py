"""The public surface of clocksync.latency, and the small shared helpers."""

from __future__ import annotations

import importlib
import pkgutil

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import clocksync.latency as latency
from clocksync.latency._arrow import (  # tests the private module clocksync.latency._arrow
    dictionary_codes,
    first_seen_dictionary,
    group_order,
    index_in,
    shared_codes,
)


def test_public_surface_and_module_all() -> None:
    for name in latency.__all__:
        assert hasattr(latency, name), name
    assert "compute_latencies" in latency.__all__ and "analyze" in latency.__all__
    for info in pkgutil.iter_modules(latency.__path__):
        module = importlib.import_module(f"clocksync.latency.{info.name}")
        assert isinstance(getattr(module, "__all__", None), list), info.name


def test_dictionary_codes_chunked_and_shared() -> None:
    a = pa.chunked_array([pa.array(["x", "y"]).dictionary_encode(),
                          pa.array(["z", "x"]).dictionary_encode()])
    codes, dictionary = dictionary_codes(a)
    assert [dictionary[int(c)].as_py() for c in codes] == ["x", "y", "z", "x"]
    plain = pa.chunked_array([["b", "a"], ["a"]])
    codes, dictionary = dictionary_codes(plain)
    assert [dictionary[int(c)].as_py() for c in codes] == ["b", "a", "a"]
    ca, cb, d = shared_codes(pa.array(["n1", "n2"]), pa.array(["n3", "n1"]))
    assert [d[int(c)].as_py() for c in ca] == ["n1", "n2"]
    assert [d[int(c)].as_py() for c in cb] == ["n3", "n1"]
    np.testing.assert_array_equal(index_in(pa.array(["b", "q", None, "a"]), ("a", "b")),
                                  [1, -1, -1, 0])


def _chunks(rng: np.random.Generator, encode: bool) -> tuple[list[str | None], pa.ChunkedArray]:
    """Random values with nulls, in up to four chunks; ``encode``: each chunk dictionary-
    encoded on its own, some dictionaries with values no row uses."""
    values = [None if rng.random() < 0.1 else f"v{int(v)}"
              for v in rng.integers(0, 20, int(rng.integers(0, 60)))]
    cuts = sorted(rng.integers(0, len(values) + 1, int(rng.integers(0, 4))).tolist())
    parts = [values[a:b] for a, b in zip([0, *cuts], [*cuts, len(values)], strict=True)]
    if not encode:
        return values, pa.chunked_array([pa.array(p, pa.string()) for p in parts], pa.string())
    unused = ["zz", "v3"] if rng.random() < 0.5 else []
    chunks = [pc.dictionary_encode(pa.array(p + unused, pa.string())).slice(0, len(p))
              for p in parts]
    return values, pa.chunked_array(chunks, pa.dictionary(pa.int32(), pa.string()))


@pytest.mark.parametrize("encode", [False, True])
def test_first_seen_dictionary_and_index_in_match_the_row_by_row_answer(encode: bool) -> None:
    rng = np.random.default_rng(4)
    for _ in range(300):
        values, column = _chunks(rng, encode)
        got = first_seen_dictionary(column)
        want = pc.dictionary_encode(pa.array(values, pa.string()))
        assert got.dictionary.equals(want.dictionary)
        assert got.indices.equals(want.indices.cast(pa.int32()))
        chain = ("v1", "v3", "v7")
        np.testing.assert_array_equal(index_in(column, chain),
                                      [chain.index(v) if v in chain else -1 for v in values])


def test_group_order() -> None:
    g = np.array([2, 0, 2, 1, 0], dtype=np.int64)
    order, bounds = group_order(g, 4)
    assert bounds.tolist() == [0, 2, 3, 5, 5]
    assert order.tolist() == [1, 4, 3, 0, 2]  # stable within a group
