"""Names shared by the latency pipeline: the event columns, the default stage chain, and the
record of a malformed input record.

Stages (docs/latency.md): ``pp_enqueue`` and ``pp_exit`` are taken on the partition-processor (PP)
node, ``bifrost_arrive`` and ``bifrost_done`` on the Bifrost node. A *hop* is a pair of stages
``"<from>-><to>"``; the default hops are the consecutive pairs of the chain plus the
end-to-end hop ``pp_enqueue->bifrost_done``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pyarrow as pa

from .._io._tabular import Column

__all__ = [
    "DEFAULT_STAGES",
    "EVENT_COLUMNS",
    "BadRecord",
    "Events",
    "hop_name",
    "hops_of",
]

#: The default stage chain, in causal order.
DEFAULT_STAGES: tuple[str, ...] = ("pp_enqueue", "pp_exit", "bifrost_arrive", "bifrost_done")

#: Required columns of an events file; any other column is a context attribute.
EVENT_COLUMNS: list[Column] = [
    Column("request_id", "string"),
    Column("stage", "string"),
    Column("node", "string"),
    Column("ts_ns", "int64", nonnegative=True),
]


def hop_name(src_stage: str, dst_stage: str) -> str:
    """``"<src>-><dst>"``, the name of the hop between two stages."""
    return f"{src_stage}->{dst_stage}"


def hops_of(stages: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """Consecutive stage pairs of the chain, then the end-to-end pair (first -> last).

    A chain of two stages has one hop (it is also the end-to-end one).
    """
    if len(stages) < 2:
        raise ValueError(f"a stage chain needs at least two stages, got {stages!r}")
    if len(set(stages)) != len(stages):
        raise ValueError(f"stage names must be distinct, got {stages!r}")
    pairs = tuple(itertools.pairwise(stages))
    if len(stages) > 2:
        pairs += ((stages[0], stages[-1]),)
    return pairs


@dataclass(frozen=True, slots=True)
class BadRecord:
    """One malformed input record: where it is and what is wrong with it.

    Attributes:
        where: ``"FILE:LINE"`` (text files) or ``"FILE: row N"`` (Parquet).
        reason: what is wrong, naming the field.
    """

    where: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Events:
    """Events read from one or more inputs.

    Attributes:
        table: columns ``request_id, stage, node, ts_ns`` (+ context attribute columns).
        bad: malformed records that were skipped (empty unless reading with ``skip_bad``).
        records: records looked at, good and bad.
    """

    table: pa.Table
    bad: tuple[BadRecord, ...] = ()
    records: int = 0
