"""Small helpers shared by the pipeline stages: dictionary codes of string columns, and
grouping rows by small integer codes without a Python loop per row."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["UNIQUE_DICTIONARY", "dictionary_codes", "first_seen_dictionary", "first_seen_order",
           "group_order", "index_in", "join_disjoint_dictionaries", "shared_codes",
           "unique_dictionary"]

#: field metadata of a dictionary column whose chunks share one dictionary of distinct
#: values (set by the event reader, see :func:`join_disjoint_dictionaries`)
UNIQUE_DICTIONARY = b"clocksync.unique_dictionary"


def _buffers(arr: pa.Array) -> tuple[int | None, ...]:
    return tuple(None if b is None else b.address for b in arr.buffers())


def _one_dictionary(chunks: list[pa.DictionaryArray]) -> bool:
    """Whether every chunk shares the first chunk's dictionary (the same buffers)."""
    first = _buffers(chunks[0].dictionary)
    return all(_buffers(c.dictionary) == first for c in chunks[1:])


def _with_dictionary(chunks: list[pa.DictionaryArray], dictionary: pa.Array
                     ) -> pa.DictionaryArray:
    """The chunks' indices, concatenated, over ``dictionary``."""
    idx = pa.concat_arrays([c.indices for c in chunks]) if len(chunks) > 1 else chunks[0].indices
    return pa.DictionaryArray.from_arrays(idx, dictionary)


def _unified(chunks: list[pa.DictionaryArray]) -> pa.DictionaryArray:
    """One dictionary array from chunks with dictionaries of their own (e.g. one per Parquet
    row group): the distinct dictionaries (told apart by their buffers) are hashed once with
    one memo table, and each chunk's indices are mapped through its dictionary's codes, so
    only the distinct values are hashed, never every row again. Repeated values (within or
    across dictionaries) get one code; codes follow the order of first appearance over the
    dictionaries in chunk order."""
    distinct: dict[tuple[int | None, ...], int] = {}
    dicts: list[pa.Array] = []
    for c in chunks:
        if distinct.setdefault(_buffers(c.dictionary), len(dicts)) == len(dicts):
            dicts.append(c.dictionary.cast(pa.string()))
    enc = pc.dictionary_encode(pa.concat_arrays(dicts))
    dictionary = enc.dictionary
    flat = enc.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    ends = np.cumsum([len(d) for d in dicts])
    maps = np.split(flat, ends[:-1])
    if len(maps) == 1 and len(dictionary) == len(dicts[0]) and not dictionary.null_count:
        # one dictionary of unique values (one row group, or Arrow's own encoding): as it is
        return _with_dictionary(chunks, dictionary)
    parts: list[npt.NDArray[Any]] = []
    for c in chunks:
        lookup = maps[distinct[_buffers(c.dictionary)]]
        if not c.indices.null_count:  # (the common case: a plain gather)
            parts.append(lookup[c.indices.to_numpy()])
            continue
        idx = c.indices.fill_null(-1).to_numpy(zero_copy_only=False)
        parts.append(np.where(idx >= 0, lookup[np.maximum(idx, 0)] if len(lookup) else -1, -1))
    codes = np.concatenate(parts).astype(np.int32, copy=False)
    return pa.DictionaryArray.from_arrays(pa.array(codes, mask=codes < 0), dictionary)


def join_disjoint_dictionaries(
    arr: pa.ChunkedArray, run_rows: list[int]
) -> pa.ChunkedArray | None:
    """One dictionary for a column read from row groups whose dictionaries are known to share
    no value (and each to hold distinct values, as Parquet dictionary pages do): the
    dictionaries are concatenated and each chunk's indices shifted, so no value is hashed.
    ``run_rows``: the rows of each row group, in order. ``None`` when the chunks are not
    laid out as one run of chunks per row group, each run sharing its own dictionary (a
    row group that fell back to plain encoding, a filtered or concatenated table...)."""
    if not pa.types.is_dictionary(arr.type) or not arr.num_chunks:
        return None
    runs: list[tuple[pa.Array, int]] = []  # (dictionary, rows)
    run_of: list[int] = []  # per chunk
    seen: set[tuple[int | None, ...]] = set()
    last: tuple[int | None, ...] | None = None
    for c in arr.chunks:
        key = _buffers(c.dictionary)
        if key != last:
            if key in seen:
                return None
            seen.add(key)
            runs.append((c.dictionary, 0))
            last = key
        runs[-1] = (runs[-1][0], runs[-1][1] + len(c))
        run_of.append(len(runs) - 1)
    if [n for _, n in runs] != run_rows or any(d.null_count for d, _ in runs):
        return None
    joined = pa.concat_arrays([d for d, _ in runs])
    if len(joined) >= 2**31:
        return None
    index_type = pa.int32()
    offsets = np.cumsum([0] + [len(d) for d, _ in runs[:-1]]).tolist()
    chunks = []
    for c, run in zip(arr.chunks, run_of, strict=True):
        idx = c.indices.cast(index_type)
        if offsets[run]:
            idx = pc.add(idx, pa.scalar(offsets[run], index_type))
        chunks.append(pa.DictionaryArray.from_arrays(idx, joined))
    return pa.chunked_array(chunks, pa.dictionary(index_type, joined.type))


def unique_dictionary(table: pa.Table, name: str) -> bool:
    """Whether column ``name`` carries the reader's mark of one dictionary of distinct
    values (:data:`UNIQUE_DICTIONARY`)."""
    meta = table.schema.field(name).metadata or {}
    return meta.get(UNIQUE_DICTIONARY) == b"1"


def _as_dictionary(arr: pa.ChunkedArray | pa.Array, unique: bool = False) -> pa.DictionaryArray:
    chunks = arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]
    if chunks and not pa.types.is_dictionary(arr.type):
        # chunk by chunk with one memo table: every chunk gets the same dictionary, and the
        # values are never copied into one array first
        enc = pc.dictionary_encode(arr)
        chunks = enc.chunks if isinstance(enc, pa.ChunkedArray) else [enc]
    if not chunks:
        return pa.DictionaryArray.from_arrays(pa.array([], pa.int32()), pa.array([], pa.string()))
    if (unique or not pa.types.is_dictionary(arr.type)) and _one_dictionary(chunks):
        # encoded here, or known to hold distinct values: one dictionary, as it is
        return _with_dictionary(chunks, chunks[0].dictionary)
    # dictionary-typed input (Parquet read with ``read_dictionary``, a filtered table...):
    # its dictionaries are unified, the rows are not hashed again
    return _unified(list(chunks))


def dictionary_codes(
    arr: pa.ChunkedArray | pa.Array, dtype: type[np.signedinteger[Any]] = np.int64,
    used_only: bool = False, unique: bool = False,
) -> tuple[npt.NDArray[Any], pa.Array]:
    """``(codes, dictionary)`` of a string (or dictionary-typed) column, codes as ``dtype``
    (-1 for nulls; a narrow ``dtype`` such as int32 avoids a copy of Arrow's indices; the
    caller makes sure the dictionary fits it). The dictionary's values are unique; with
    ``used_only`` it holds only values that occur (a dictionary-typed column may carry
    unused ones, e.g. after a filter), in the same order. ``unique``: a dictionary-typed
    column whose chunks share one dictionary is known to hold distinct values (see
    :func:`unique_dictionary`), so it is not hashed again."""
    enc = _as_dictionary(arr, unique)
    dictionary = enc.dictionary
    if not pa.types.is_string(dictionary.type) and not pa.types.is_large_string(dictionary.type):
        dictionary = dictionary.cast(pa.string())
    indices = enc.indices
    if indices.null_count:
        indices = indices.fill_null(-1)
    idx = indices.to_numpy(zero_copy_only=False)
    if used_only and pa.types.is_dictionary(arr.type) and len(dictionary):
        used = np.bincount(idx[idx >= 0] if indices is not enc.indices else idx,
                           minlength=len(dictionary)) > 0
        if not used.all():
            new = np.cumsum(used) - 1
            idx = np.where(idx >= 0, new[np.maximum(idx, 0)], -1)
            dictionary = dictionary.filter(pa.array(used))
    return idx.astype(dtype, copy=False), dictionary


def first_seen_order(codes: npt.NDArray[np.integer[Any]], n_values: int
                     ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """``(order, rank)`` of codes in ``[0, n_values)`` (-1: none): the values that occur,
    in the order they first occur, and each value's place in that order (-1: it does not
    occur). Counted, not sorted: one pass over the rows."""
    n_rows = len(codes)
    first = np.full(n_values, n_rows, dtype=np.int64)
    named = codes >= 0
    if named.all():
        np.minimum.at(first, codes, np.arange(n_rows, dtype=np.int64))
    else:
        np.minimum.at(first, codes[named], np.flatnonzero(named))
    order = np.argsort(first, kind="stable")[:np.count_nonzero(first < n_rows)]
    rank = np.full(n_values, -1, dtype=np.int64)
    rank[order] = np.arange(len(order))
    return order.astype(np.int64, copy=False), rank


def first_seen_dictionary(arr: pa.ChunkedArray | pa.Array) -> pa.DictionaryArray:
    """``arr`` (strings, or dictionary-typed) as one dictionary array whose dictionary holds
    its distinct values in the order they first appear in the rows: what
    ``pc.dictionary_encode`` of its values gives, but a dictionary-typed column has only
    its dictionaries hashed (its rows are mapped and ordered with numpy)."""
    codes, dictionary = dictionary_codes(arr, np.int32)
    named = codes >= 0
    every = bool(named.all())
    order, rank = first_seen_order(codes, len(dictionary))
    if not np.array_equal(order, np.arange(len(dictionary))):
        # (else every value is used, in the order it first appears)
        codes = np.append(rank, -1).astype(np.int32)[codes]  # (code -1: null, stays -1)
        dictionary = dictionary.take(pa.array(order))
    indices = pa.array(codes, pa.int32(), mask=None if every else ~named)
    return pa.DictionaryArray.from_arrays(indices, dictionary)


def index_in(arr: pa.ChunkedArray | pa.Array, values: tuple[str, ...]) -> npt.NDArray[np.int64]:
    """Position of each element of ``arr`` in ``values``, -1 when absent (or null). A string
    column is looked up row by row in a table of ``values``; a dictionary-typed one by its
    dictionary."""
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        where = pc.index_in(arr, value_set=pa.array(values, arr.type))
        return np.asarray(where.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)
    chunks = arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]
    if pa.types.is_dictionary(arr.type) and pa.types.is_string(arr.type.value_type):
        value_set = pa.array(values, pa.string())
        lookups: dict[tuple[int | None, ...], npt.NDArray[np.int64]] = {}
        parts = []  # each dictionary looked up once, the rows mapped through it
        for chunk in chunks:
            lookup = lookups.get(key := _buffers(chunk.dictionary))
            if lookup is None:
                where = pc.index_in(chunk.dictionary, value_set=value_set).fill_null(-1)
                lookup = lookups[key] = np.append(where.to_numpy(), -1).astype(np.int64)
            indices = chunk.indices
            parts.append(lookup[indices.to_numpy() if not indices.null_count else
                                indices.fill_null(-1).to_numpy()])
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)
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
