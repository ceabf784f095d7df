"""The public surface of clocksync.latency, and the small shared helpers."""

from __future__ import annotations

import importlib
import pkgutil

import numpy as np
import pyarrow as pa

import clocksync.latency as latency
from clocksync.latency._arrow import (  # tests the private module clocksync.latency._arrow
    dictionary_codes,
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


def test_group_order() -> None:
    g = np.array([2, 0, 2, 1, 0], dtype=np.int64)
    order, bounds = group_order(g, 4)
    assert bounds.tolist() == [0, 2, 3, 5, 5]
    assert order.tolist() == [1, 4, 3, 0, 2]  # stable within a group
