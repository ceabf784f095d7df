"""Small helpers shared by the pipeline stages: dictionary codes of string columns, and
grouping rows by small integer codes without a Python loop per row."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["dictionary_codes", "group_order", "index_in", "shared_codes"]


def _buffers(arr: pa.Array) -> tuple[int | None, ...]:
    return tuple(None if b is None else b.address for b in arr.buffers())


def _as_dictionary(arr: pa.ChunkedArray | pa.Array) -> pa.DictionaryArray:
    if isinstance(arr, pa.ChunkedArray):
        if not pa.types.is_dictionary(arr.type) and arr.num_chunks:
            # chunk by chunk with one memo table: every chunk gets the same dictionary, and
            # the values are never copied into one array first
            arr = pc.dictionary_encode(arr)
        if arr.num_chunks == 0:
            return pa.DictionaryArray.from_arrays(pa.array([], pa.int32()),
                                                  pa.array([], pa.string()))
        if arr.num_chunks > 1:
            first = arr.chunk(0).dictionary
            same = _buffers(first)
            if not all(_buffers(c.dictionary) == same or c.dictionary.equals(first)
                       for c in arr.chunks[1:]):
                arr = arr.unify_dictionaries()  # hashes the dictionaries: only when needed
            dictionary = arr.chunk(0).dictionary
            idx = pa.concat_arrays([c.indices for c in arr.chunks])
            return pa.DictionaryArray.from_arrays(idx, dictionary)
        arr = arr.chunk(0)
    if not pa.types.is_dictionary(arr.type):
        arr = pc.dictionary_encode(arr)
    return arr


def dictionary_codes(
    arr: pa.ChunkedArray | pa.Array, dtype: type[np.signedinteger[Any]] = np.int64
) -> tuple[npt.NDArray[Any], pa.Array]:
    """``(codes, dictionary)`` of a string (or dictionary-typed) column, codes as ``dtype``
    (-1 for nulls; a narrow ``dtype`` such as int32 avoids a copy of Arrow's indices; the
    caller makes sure the dictionary fits it)."""
    # Dictionary-typed input (e.g. Parquet read with ``read_dictionary``) is used as it is,
    # with no hashing of the values again.
    enc = _as_dictionary(arr)
    dictionary = enc.dictionary
    if not pa.types.is_string(dictionary.type) and not pa.types.is_large_string(dictionary.type):
        dictionary = dictionary.cast(pa.string())
    indices = enc.indices
    if indices.null_count:
        indices = indices.fill_null(-1)
    idx = indices.to_numpy(zero_copy_only=False)
    return idx.astype(dtype, copy=False), dictionary


def index_in(arr: pa.ChunkedArray | pa.Array, values: tuple[str, ...]) -> npt.NDArray[np.int64]:
    """Position of each element of ``arr`` in ``values``, -1 when absent (or null)."""
    codes, dictionary = dictionary_codes(arr)
    where = pc.index_in(dictionary, value_set=pa.array(values, pa.string()))
    lookup = np.asarray(where.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)
    if not len(lookup):
        return np.full(len(codes), -1, np.int64)
    return np.where(codes >= 0, lookup[np.maximum(codes, 0)], -1)


def shared_codes(
    a: pa.ChunkedArray | pa.Array, b: pa.ChunkedArray | pa.Array,
    dtype: type[np.signedinteger[Any]] = np.int64,
) -> tuple[npt.NDArray[Any], npt.NDArray[Any], pa.Array]:
    """Codes (as ``dtype``) of two string columns into one shared dictionary (maps the small
    dictionaries, never re-hashes the rows)."""
    ca, da = dictionary_codes(a, np.int32)
    cb, db = dictionary_codes(b, np.int32)
    if da.equals(db) and len(set(da.to_pylist())) == len(da):  # one dictionary already
        return ca.astype(dtype, copy=False), cb.astype(dtype, copy=False), da
    values = list(dict.fromkeys(da.to_pylist() + db.to_pylist()))
    pos = {v: i for i, v in enumerate(values)}
    map_a = np.array([pos[v] for v in da.to_pylist()], dtype=dtype)
    map_b = np.array([pos[v] for v in db.to_pylist()], dtype=dtype)
    return (map_a[ca] if len(ca) else ca.astype(dtype), map_b[cb] if len(cb) else cb.astype(dtype),
            pa.array(values, pa.string()))


def group_order(
    group: npt.NDArray[np.integer[Any]], n_groups: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Rows ordered by group (stable; a radix sort when codes fit 16 bits) and each group's
    ``[bounds[k], bounds[k+1])`` in that order."""
    small = group.astype(np.uint16) if n_groups <= 65_536 else group
    order = np.argsort(small, kind="stable").astype(np.int64, copy=False)
    bounds = np.zeros(n_groups + 1, dtype=np.int64)
    if len(group):
        np.cumsum(np.bincount(group, minlength=n_groups), out=bounds[1:])
    return order, bounds
