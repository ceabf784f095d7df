"""Hops between spans and their parents: stage events that carry ``span_id`` and
``parent_span_id`` (a trace map with ``pair_by = "parent"``) pair each event with its parent
span's event, whatever the stages.

A pair is one hop ``"<parent stage>-><child stage>"`` of the child's request id. Each span
is identified by ``(trace_id, span_id)``; a span that yields several stage events is paired
through its first one. Exact repeats of an event (same trace, span and stage: a retried
export) count as duplicates and are dropped. A child whose parent span gave no event is
incomplete: it lacks ``"parent of <stage>"``.

The pairs are laid out as a two-stage :class:`Pivot` (``parent``, ``child``; one row per
pair) so that correction, table intervals, causal tightening and percentiles are the chain
pipeline's own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from .._model._errors import InputError
from ._arrow import dictionary_codes, first_seen_order
from ._hops import Pivot, slot_resolution
from ._schema import hop_name

__all__ = ["PAIR_COLUMNS", "PAIR_STAGES", "PairPivot", "Paired", "is_paired", "pair_events",
           "pair_layout", "pair_pivot", "pivot_of_pairs"]

#: event columns that make a table pair by parent span
PAIR_COLUMNS: tuple[str, ...] = ("trace_id", "span_id", "parent_span_id")
#: the two slots of a pair in its :class:`Pivot`
PAIR_STAGES: tuple[str, str] = ("parent", "child")

I64 = npt.NDArray[np.int64]


def is_paired(table: pa.Table) -> bool:
    """Whether the events pair by parent span (they carry ``span_id`` and
    ``parent_span_id``)."""
    return "span_id" in table.column_names and "parent_span_id" in table.column_names


@dataclass(frozen=True, slots=True)
class PairPivot:
    """Pairs as a two-stage pivot, and which hop each pair is.

    Attributes:
        pivot: one row per pair; stage 0 the parent's event, stage 1 the child's.
        hop: per pair, an index into :attr:`hop_names`.
        hop_names: ``"<parent stage>-><child stage>"`` of each hop, in first-seen order.
    """

    pivot: Pivot
    hop: I64
    hop_names: tuple[str, ...]


def _text(table: pa.Table, name: str) -> pa.Array:
    if name not in table.column_names:
        raise InputError(f"events that pair by parent span need the column '{name}'")
    col = table.column(name)
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(pa.string())
    return pc.if_else(pc.is_null(arr), "", arr.cast(pa.string()))


@dataclass(frozen=True, slots=True)
class Paired:
    """Events paired by parent span: ``parents[i]`` is the parent event of ``children[i]``
    (row indices into the events).

    Attributes:
        duplicates: exact repeats dropped (same trace, span and stage).
        orphans: ``"parent of <stage>"`` -> children whose parent gave no event.
    """

    parents: I64
    children: I64
    duplicates: int
    orphans: dict[str, int]


def pair_events(table: pa.Table) -> Paired:
    """Pair every event of ``table`` with its parent span's event (see the module
    docstring)."""
    trace, span, parent = (_text(table, n) for n in PAIR_COLUMNS)
    stage_code, stage_names = dictionary_codes(table.column("stage"))
    # exact repeats (same trace, span, stage): the first wins
    key_codes, _ = dictionary_codes(pc.binary_join_element_wise(
        trace, span, pa.array(stage_code.astype(str)), "/"))
    _, first = np.unique(key_codes, return_index=True)
    keep = np.sort(first)
    own = pc.binary_join_element_wise(trace, span, "/").take(pa.array(keep))
    has_parent = pc.not_equal(parent, "").to_numpy(zero_copy_only=False)[keep]
    child_rows = keep[has_parent]
    parent_key = pc.binary_join_element_wise(trace, parent, "/").take(pa.array(child_rows))
    where = pc.index_in(parent_key, value_set=own)
    found = np.asarray(where.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)
    paired = found >= 0
    lost = child_rows[~paired]
    orphans: dict[str, int] = {}
    if len(lost):
        stages = stage_names.to_pylist()
        counts = np.bincount(stage_code[lost], minlength=len(stages))
        orphans = {f"parent of {stages[k]}": int(n) for k, n in enumerate(counts) if n}
    return Paired(keep[found[paired]], child_rows[paired], len(key_codes) - len(keep), orphans)


def pair_layout(parents: pa.Table, children: pa.Table) -> pa.Table:
    """The events of pairs laid out for :func:`pivot_of_pairs`: the parent events, then the
    child events in the same order, every row with its child's request id; the context
    columns stay with their own rows."""
    if parents.num_rows != children.num_rows:
        raise ValueError("pair_layout: as many parents as children")
    ids = children.column("request_id")
    parents = parents.set_column(parents.schema.get_field_index("request_id"), "request_id",
                                 ids)
    return pa.concat_tables([parents, children], promote_options="default")


def _first_seen_codes(code: I64, span: int) -> tuple[I64, I64]:
    """``(rank, distinct)``: the distinct values of ``code`` in the order they first occur,
    and each row's index into them. Codes in ``[0, span)`` with ``span`` small next to the
    rows are counted, not sorted."""
    n = len(code)
    if not n:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if span > 4 * n + 1024 or int(code.min()) < 0:
        distinct, first_seen, inverse = np.unique(code, return_index=True,
                                                  return_inverse=True)
        order = np.argsort(first_seen, kind="stable")  # first-seen order
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        return rank[inverse.reshape(-1)], distinct[order]
    order, by_code = first_seen_order(code, span)
    return by_code[code], order


def pivot_of_pairs(layout: pa.Table, duplicates: int = 0,
                   orphans: dict[str, int] | None = None) -> PairPivot:
    """Pairs (as laid out by :func:`pair_layout`) as a two-stage pivot."""
    n = layout.num_rows // 2
    stage_code, stage_names = dictionary_codes(layout.column("stage"))
    stages = stage_names.to_pylist()
    n_st = max(len(stages), 1)
    hop_code = stage_code[:n] * n_st + stage_code[n:]
    hop, distinct = _first_seen_codes(hop_code, n_st * n_st)
    names = tuple(hop_name(stages[int(c) // n_st], stages[int(c) % n_st]) for c in distinct)
    at = np.arange(n, dtype=np.int64)
    row = np.stack([at, at + n], axis=1)
    nid, node_names = dictionary_codes(layout.column("node"))
    ts_all = layout.column("ts_ns").to_numpy().astype(np.int64, copy=False)
    request_ids = layout.column("request_id").slice(n).combine_chunks()
    if pa.types.is_dictionary(request_ids.type):
        request_ids = request_ids.cast(pa.string())
    lost = orphans or {}
    pivot = Pivot(
        events=layout, request_ids=request_ids, stages=PAIR_STAGES,
        node_names=tuple(node_names.to_pylist()), row=row, ts_ns=ts_all[row],
        node=nid.astype(np.int32)[row], duplicates=duplicates, duplicate_examples=(),
        unknown_stage=0, incomplete=sum(lost.values()), event_node=nid, event_ts=ts_all,
        resolution_ns=slot_resolution(layout, row), missing_extra=dict(lost))
    return PairPivot(pivot, hop.astype(np.int64), names)


def pair_pivot(table: pa.Table) -> PairPivot:
    """Pair the events of ``table`` by parent span and lay the pairs out as a pivot."""
    paired = pair_events(table)
    layout = pair_layout(table.take(pa.array(paired.parents)),
                         table.take(pa.array(paired.children)))
    return pivot_of_pairs(layout, paired.duplicates, paired.orphans)
