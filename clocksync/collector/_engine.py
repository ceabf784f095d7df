"""The collector's engine: decoded input in, corrected hops per step, windows out.

Receivers (HTTP, gRPC threads) map spans to stage events and put them in an inbox; one
engine thread (:meth:`Engine.tick`, every ``tick_s``) does everything else in order:

1. appends the inbox to the raw layer, then completes pairs or requests
   (:mod:`._online`), taking the bodies that came since the last round as one batch: its
   entries wait the request timeout from the last of them;
2. keeps the *watermark*: per node, the newest event's corrected time; the watermark is the
   slowest active node's minus ``lateness_s`` (a node silent for ``max(10 s, 2·lateness)``
   stops holding it back; with every node silent it advances with the monotonic clock);
3. closes every step ``[k·step, (k+1)·step)`` (reference time) that the watermark passed:
   the completed units whose approximate corrected time lies near the step are run through
   the batch pipeline (:func:`clocksync.latency.hop_table` and its pair form) with the
   newest tables, and the hops whose corrected source time lies in the step are the step's
   result, published once and never recomputed;
4. the window (the last ``window/step`` steps) gives the percentiles with their intervals,
   latency alerts, metrics and the report.

A step holds whole causal windows (the step is a multiple of the causal window), so causal
tightening sees, per node pair and window, exactly the messages batch analysis sees: the
same spans give the same numbers. A unit that completes after its step closed is counted
late (it is in the raw layer, not in the metrics).
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import math
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .._correct._cellstack import CellStack
from .._corrector import Corrector
from .._model._errors import ClockSyncError
from .._report import reader_status
from ..latency import (
    AlertConfig,
    BadRecord,
    Span,
    TraceMapping,
)
from ..latency._alerts import Alert, inconsistency_alerts, latency_alerts, worst_requests
from ..latency._arrow import (
    UNIQUE_DICTIONARY,
    dictionary_codes,
    first_seen_dictionary,
    group_order,
)
from ..latency._hops import EventCorrections
from ..latency._otlp import otlp_request
from ..latency._pairs import is_paired, pair_layout, pivot_of_pairs
from ..latency._percentiles import summary_and_window
from ..latency._pipeline import HopCount, chain_hop_table, hop_counts, pairs_hop_table
from ..latency._traces import span_events
from ._config import CollectorConfig
from ._metrics import AlertKey, QuantileRow
from ._online import ChainCompleter, Completed, PairCompleter
from ._sink import Accepted

__all__ = ["ROUND_YIELD_S", "Engine"]

log = logging.getLogger(__name__)

#: the most values a dictionary the engine keeps (stage, node) may hold
_DICTIONARY_MAX = 4096
_NO_STRINGS = pa.nulls(0, pa.string())  # (pa.array would import pandas at start)
_CODED = pa.dictionary(pa.int32(), pa.string())
#: how far a step's selection reaches past its end (a chain request's later hops are
#: tightened with the messages of the causal windows they fall in), and before and after it
#: while some buffered keys were made with other tables than the step's (ns)
_MARGIN_NS = 1_000_000_000
_IDLE_MIN_S = 10.0
#: the most rows of bodies a round takes as one batch (bounds the round's scratch memory)
_MERGED_MAX_ROWS = 65_536
#: the longest a receiver waits for the engine's round before it decodes anyway (s)
ROUND_YIELD_S = 1.0


@dataclass(slots=True)
class StepResult:
    """One closed step: its hops, the causal windows they were tightened in, and the
    percentile rows of the window that ends with it; ``counts``: its hops' counts (those
    of the rows of ``hops``, with a count for every hop of the chain, those without a row
    too), when the pipeline made them."""

    start_ns: int
    end_ns: int
    hops: pa.Table
    causal: tuple[Any, ...]
    window: pa.Table | None = None
    counts: tuple[HopCount, ...] | None = None


@dataclass
class _Done:
    """Completed units of one tick, keyed by their approximate corrected time (ns)."""

    key_ns: np.ndarray
    end_ns: np.ndarray  # per unit, its latest corrected time (chain: the request's last event)
    parents: pa.Table | None
    children: pa.Table | None
    events: pa.Table | None
    last_ns: int  # the largest time a unit here can reach (for retention)
    corrections: EventCorrections | None = None  # chain: per row of events, if made
    tables: _Tables | None = None  # the tables the keys were made with (None: not known)
    nbytes: int = 0  # of its tables (and corrections)

    def __post_init__(self) -> None:
        self.nbytes = sum(int(t.nbytes) for t in (self.parents, self.children, self.events)
                          if t is not None)
        if self.corrections is not None:
            self.nbytes += self.corrections.nbytes


@dataclass(frozen=True, slots=True)
class _Tables:
    """Correction tables by identity: the nodes and each one's compiled table."""

    nodes: tuple[str, ...]
    compiled: tuple[Any, ...]

    def same(self, other: _Tables) -> bool:
        return self.nodes == other.nodes and all(  # (one table per node)
            a is b for a, b in zip(self.compiled, other.compiled, strict=True))


class Engine:
    """Implements :class:`~clocksync.collector.Sink`; see the module docstring.

    ``corrector``: its tables (a store-backed one is refreshed every ``refresh_s``);
    ``metrics``: a :class:`CollectorMetrics` (or ``None``); ``raw``: a :class:`RawLayer`
    (or ``None``); ``monotonic_s``: the clock of timeouts and idle watermarks."""

    def __init__(self, config: CollectorConfig, corrector: Corrector, *, metrics: Any = None,
                 raw: Any = None, monotonic_s: Callable[[], float] = time.monotonic,
                 on_alert: Callable[[Alert], None] | None = None,
                 forwarder: Any = None) -> None:
        self.config = config
        self.corrector = corrector
        self.metrics = metrics
        self.raw = raw
        self.mapping: TraceMapping | None = config.mapping()
        self.span_mapping = self.mapping or TraceMapping()
        self.paired = self.mapping is not None and self.mapping.pair_by == "parent"
        if self.mapping is not None and not self.paired:
            self.chain = tuple(dict.fromkeys(r.stage for r in self.mapping.rules))
        else:
            self.chain = tuple(config.stages)
        self.causal = config.assumptions()
        self.alert_config = AlertConfig()
        self._mono = monotonic_s
        self.forwarder = forwarder
        self._on_alert = on_alert
        self._lock = threading.Lock()
        self._between_rounds = threading.Event()  # clear while a round runs
        self._between_rounds.set()
        self._decoders = threading.BoundedSemaphore(config.decoder_count)
        self._closing = False
        self._inbox: list[tuple[float, pa.Table]] = []
        self._inbox_bytes = 0
        self._held_bytes = 0  # pending + windowed bytes, as of the engine's last round
        self._pending_count = 0  # pending units, as of the engine's last round
        self._pairs = PairCompleter(config.request_timeout_s)
        self._chain = ChainCompleter(self.chain, config.request_timeout_s)
        self._done: collections.deque[_Done] = collections.deque()
        self._steps: collections.deque[StepResult] = collections.deque(
            maxlen=max(1, config.window_ns // config.step_ns))
        self._history: collections.deque[pa.Table] = collections.deque(
            maxlen=self.alert_config.baseline_windows + 1)
        self._closed_until: int | None = None  # end of the last closed step (ns)
        self._node_ref: dict[str, tuple[int, float]] = {}  # node -> (newest ref, mono)
        self._idle_wm: tuple[int, float] | None = None
        self._last_refresh = -math.inf
        # the published report, and (summary, window rows, window) its lists are made of on
        # the first read (None once made): a step publishes without making them
        self._report: tuple[dict[str, Any], tuple[pa.Table, pa.Table | None, pa.Table] | None]
        self._report = ({}, None)
        self._active: dict[tuple[str, str, str, str], Alert] = {}
        self.counts: collections.Counter[str] = collections.Counter()
        self.incomplete: collections.Counter[str] = collections.Counter()
        self.uncorrectable: collections.Counter[str] = collections.Counter()
        self.bad: collections.deque[str] = collections.deque(maxlen=20)
        self._dictionaries: dict[str, pa.Array] = {}  # chain: stage and node values seen

    # -- receivers' side (any thread) -------------------------------------------------------
    def retry_after_s(self) -> float | None:
        if self._closing:
            return 1.0
        used = self._inbox_bytes + self._held_bytes  # plain ints: safe from any thread
        return 1.0 if used > self.config.memory_budget_bytes else None

    @contextlib.contextmanager
    def decoding(self) -> Iterator[None]:
        """A receiver's turn to decode: one of ``config.decoder_count`` at once (the others
        wait), started once no round runs (waiting at most :data:`ROUND_YIELD_S`)."""
        with self._decoders:
            self._between_rounds.wait(ROUND_YIELD_S)
            yield

    def accept_spans(self, spans: Sequence[Span], bad: Sequence[BadRecord] = ()) -> Accepted:
        """Map spans to stage events (spans no rule matches are ignored) into the inbox."""
        failed: list[BadRecord] = []
        table = span_events(spans, self.span_mapping, failed, "spans")
        rejected = len(bad) + len(failed)
        why = "; ".join(str(b) for b in [*bad, *failed][:3])
        if table.num_rows:
            self._put(table)
        self._count("spans", len(spans) + len(bad), rejected)
        return Accepted(len(spans) - len(failed), rejected, why)

    def accept_events(self, events: pa.Table, bad: Sequence[BadRecord] = ()) -> Accepted:
        """Stage events (``request_id, stage, node, ts_ns`` + context) into the inbox."""
        if events.num_rows:
            self._put(events)
        self._count("events", events.num_rows + len(bad), len(bad))
        return Accepted(events.num_rows, len(bad), "; ".join(str(b) for b in bad[:3]))

    def forward_body(self, body: bytes, media: str) -> None:
        """Relay an accepted OTLP traces body upstream (when forwarding): the forwarder
        annotates every span with its corrected start and bound, off this thread."""
        if self.forwarder is None:
            return
        try:
            request = otlp_request(body, media)
        except ValueError as exc:
            log.warning("forward: %s", exc)
            return
        self.forwarder.offer(request)

    def rejected_payload(self, endpoint: str, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.count_rejected_payload(endpoint, reason)
        self.counts["rejected_payloads"] += 1

    def _count(self, endpoint: str, received: int, rejected: int) -> None:
        with self._lock:
            self.counts[f"received_{endpoint}"] += received
            self.counts[f"rejected_{endpoint}"] += rejected
        if self.metrics is not None:
            self.metrics.count_received(endpoint, received)
            if rejected:
                self.metrics.count_rejected_items(endpoint, rejected)

    def _put(self, table: pa.Table) -> None:
        with self._lock:
            if self._closing:  # after the last drain: refuse (the client is not acked)
                raise RuntimeError("the collector is shutting down")
            self._inbox.append((self._mono(), table))
            self._inbox_bytes += table.nbytes

    # -- engine thread ----------------------------------------------------------------------
    @property
    def pending(self) -> int:
        return self._pairs.pending if self.paired else self._chain.pending

    @property
    def pending_bytes(self) -> int:
        return int(self._pairs.pending_bytes if self.paired else self._chain.pending_bytes)

    @property
    def window_bytes(self) -> int:
        """Bytes of completed units and the window's hops (engine thread only)."""
        done = sum(d.nbytes for d in self._done)
        return int(done + sum(s.hops.nbytes for s in self._steps))

    def tick(self, flush: bool = False) -> list[StepResult]:
        """One round of the engine (see the module docstring); ``flush``: time out every
        pending unit and close every step that holds data (shutdown, end of a replay).
        Returns the steps closed. Receivers that ask for :meth:`decoding` meanwhile wait
        for it to end."""
        self._between_rounds.clear()
        try:
            return self._round(flush)
        finally:
            self._between_rounds.set()

    def _round(self, flush: bool) -> list[StepResult]:
        now = self._mono()
        if now - self._last_refresh >= self.config.refresh_s:
            self._refresh()
            self._last_refresh = now
        with self._lock:
            inbox, self._inbox, self._inbox_bytes = self._inbox, [], 0
        out = Completed()
        if self.raw is not None:
            for _, table in inbox:
                self.raw.append(table)
        merged = _merged(inbox)
        # chain: stage and node hashed once here, not again at every grouping by them
        coded = merged if self.paired else [(arrival, self._coded(table))
                                            for arrival, table in merged]
        self._watch(coded)
        for arrival, events in coded:
            self.counts["records"] += events.num_rows
            self._add(events, arrival, out)
        budget = self.config.memory_budget_bytes / 2
        completer = self._pairs if self.paired else self._chain
        if flush:
            completer.flush(out)
        else:
            completer.expire(now, out, budget)
        self._take(out)
        if self.raw is not None:
            self.raw.maybe_rotate()
        closed = self._close_steps(now, flush)
        self._held_bytes = self.pending_bytes + self.window_bytes
        self._pending_count = self.pending
        self._publish_state(now)
        return closed

    def close(self) -> None:
        """Refuse new input, take in the inbox (into the raw layer too) and close the raw
        layer: nothing accepted is lost."""
        with self._lock:
            self._closing = True
        self.tick()
        if self.raw is not None:
            self.raw.close()

    def _refresh(self) -> None:
        try:
            self.corrector.refresh()
        except ClockSyncError as exc:
            log.warning("table store: %s (keeping the tables loaded)", exc)

    def _add(self, table: pa.Table, arrival: float, out: Completed) -> None:
        if self.paired:
            if not is_paired(table) or "trace_id" not in table.column_names:
                self.counts["unpairable_events"] += table.num_rows
                return
            self._pairs.add(table, arrival, out)
        else:
            self._chain.add(table, arrival, out)

    def _coded(self, table: pa.Table) -> pa.Table:
        """A chain's batch with ``stage`` and ``node`` dictionary-encoded over dictionaries
        the engine keeps (values in the order they first came): hashed once here, and every
        batch shares one dictionary, so nothing unifies them later. A dictionary that would
        grow past :data:`_DICTIONARY_MAX` values is the batch's own."""
        for name in ("stage", "node"):
            at = table.schema.get_field_index(name)
            if at < 0 or not pa.types.is_string(table.schema.field(at).type):
                continue
            column = table.column(at)
            known = self._dictionaries.get(name, _NO_STRINGS)
            where = pc.index_in(column, value_set=known)
            if where.null_count > column.null_count:  # values not seen before
                new = pc.unique(column.filter(pc.and_(pc.is_null(where), pc.is_valid(column))))
                if len(known) + len(new) > _DICTIONARY_MAX:
                    table = table.set_column(at, name, pc.dictionary_encode(column))
                    continue
                known = self._dictionaries[name] = pa.concat_arrays([known, new])
                where = pc.index_in(column, value_set=known)
            coded = [pa.DictionaryArray.from_arrays(c, known) for c in where.chunks]
            table = table.set_column(at, name, pa.chunked_array(coded, _CODED))
        return table

    @staticmethod
    def _node_codes(node: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, list[str]]:
        """Each row's node as a code into the list of node names (-1: no node); a column
        the engine dictionary-encoded (distinct values: :meth:`_coded`) as it is."""
        coded = pa.types.is_dictionary(node.type) and node.type.value_type == pa.string()
        codes, names = dictionary_codes(node if coded else pc.cast(node, pa.string()),
                                        unique=coded)
        return codes, [str(n) for n in names.to_pylist()]

    def _correct_node(self, name: str, ts: np.ndarray) -> np.ndarray:
        """Corrected times of node ``name``'s stamps (ns; NaN where not correctable)."""
        try:
            r, b = self.corrector.correct(name, ts, on_invalid="inf")
        except ClockSyncError:
            return np.full(len(ts), np.nan)
        ok = np.isfinite(np.asarray(b, dtype=np.float64))
        return np.where(ok, np.asarray(r, dtype=np.float64), np.nan)

    def _approx_ref(self, node: pa.ChunkedArray | pa.Array, ts: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
        """Corrected times (ns, NaN where not correctable) and which rows they are."""
        ref = np.full(len(ts), np.nan)
        codes, names = self._node_codes(node)
        for k, name in enumerate(names):
            m = codes == k
            ref[m] = self._correct_node(name, ts[m])
        return ref, ~np.isnan(ref)

    def _watch(self, inbox: Sequence[tuple[float, pa.Table]]) -> None:
        """Each node's newest corrected event time, batch by batch: a batch's newest local
        stamp of the node, corrected (a correction is monotonic in local time); all of its
        stamps of the node when that one cannot be corrected. The newest stamps of a node
        in every batch are corrected in one call."""
        seen: list[tuple[int, str, int]] = []  # (batch, node, its newest stamp there)
        stamps: list[tuple[np.ndarray, np.ndarray, list[str]]] = []
        for b, (_, table) in enumerate(inbox):
            ts = table.column("ts_ns").to_numpy().astype(np.int64)
            codes, names = self._node_codes(table.column("node"))
            stamps.append((ts, codes, names))
            mine = codes >= 0
            top = np.full(len(names), np.iinfo(np.int64).min)
            np.maximum.at(top, codes[mine], ts[mine])
            has = np.bincount(codes[mine], minlength=len(names)) > 0
            seen += [(b, names[k], int(top[k])) for k in np.flatnonzero(has).tolist()]
        corrected: dict[str, list[float]] = {}
        for name in dict.fromkeys(n for _, n, _ in seen):
            newest = np.array([t for _, n, t in seen if n == name], dtype=np.int64)
            corrected[name] = self._correct_node(name, newest).tolist()[::-1]
        for b, name, _ in seen:
            ref = corrected[name].pop()
            if math.isnan(ref):
                ts, codes, names = stamps[b]
                every = self._correct_node(name, ts[codes == names.index(name)])
                if np.isnan(every).all():
                    continue
                ref = float(np.nanmax(every))
            old = self._node_ref.get(name)
            self._node_ref[name] = (int(ref) if old is None else max(int(ref), old[0]),
                                    inbox[b][0])

    def watermark_ns(self, now: float) -> int | None:
        """The reference time up to which steps may close (``None``: no data yet)."""
        if not self._node_ref:
            return None
        lateness = round(self.config.lateness_s * 1e9)
        idle = max(_IDLE_MIN_S, 2 * self.config.lateness_s)
        active = [ref for ref, seen in self._node_ref.values() if now - seen < idle]
        if active:
            mark = min(active) - lateness
            self._idle_wm = (mark, now)
            return mark
        newest_ref, newest_at = max(self._node_ref.values(), key=lambda v: v[1])
        base, at = self._idle_wm or (newest_ref - lateness, newest_at)
        return base + round((now - at) * 1e9)

    def _take(self, out: Completed) -> None:
        """Completed units into the buffer, keyed by their approximate corrected time."""
        self.counts["duplicates"] += out.duplicates
        self.counts["evicted"] += out.evicted
        for stage, n in out.incomplete.items():
            self.incomplete[stage] += n
            if self.metrics is not None:
                self.metrics.count_incomplete(stage, n)
        if self.metrics is not None and out.evicted:
            self.metrics.count_evicted(out.evicted)
        keyed_with = self._tables()
        if self.paired:
            for parents, children in zip(out.parents, out.children, strict=True):
                # stage and node hashed once here, not at every step that reads the pair
                parents, children = self._coded(parents), self._coded(children)
                ts = parents.column("ts_ns").to_numpy().astype(np.int64)
                key, ok = self._approx_ref(parents.column("node"), ts)
                self._keep(key, key, ok, parents, children, None, parents, tables=keyed_with)
        else:
            # one buffer entry per run of tables with one schema; a request's events (one
            # code per request and table) share its earliest corrected time
            at = 0
            while at < len(out.events):
                run = at + 1
                while run < len(out.events) and out.events[run].schema == out.events[at].schema:
                    run += 1
                tables = out.events[at:run]
                codes = [dictionary_codes(t.column("request_id"), unique=True)[0]
                         for t in tables]
                offsets = np.cumsum([0] + [len(c) and int(c.max()) + 1 for c in codes[:-1]])
                rid = np.concatenate([c + o for c, o in zip(codes, offsets.tolist(),
                                                            strict=True)])
                events = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
                at = run
                ts = events.column("ts_ns").to_numpy().astype(np.int64)
                corrections = self._corrections(events.column("node"), ts)
                if corrections is None:
                    key, ok = self._approx_ref(events.column("node"), ts)
                else:  # (the same bits _approx_ref gives)
                    ok = np.isfinite(corrections.bound_ns)
                    key = np.where(ok, corrections.ref_ns.astype(np.float64), np.nan)
                n_ids = int(rid.max()) + 1
                first = np.full(n_ids, np.inf)
                np.minimum.at(first, rid, np.where(ok, key, np.inf))
                last = np.full(n_ids, -np.inf)
                np.maximum.at(last, rid, np.where(ok, key, -np.inf))
                whole_ok = np.isfinite(first)[rid]
                self._keep(np.where(whole_ok, first[rid], np.nan),
                           np.where(whole_ok, last[rid], np.nan), whole_ok, None, None,
                           events, events, rid, corrections, keyed_with)

    def _corrections(self, node: pa.ChunkedArray | pa.Array, ts: np.ndarray
                     ) -> EventCorrections | None:
        """Every event's correction, made once for every step that reads it (``None``
        when the tables offer no :class:`~clocksync.CellStack`, or a stamp is refused:
        :meth:`_approx_ref` then judges)."""
        stack = self._stack()
        if stack is None:
            return None
        codes, names = self._node_codes(node)
        index = {name: k for k, name in enumerate(stack.nodes)}
        to_stack = np.array([index.get(name, -1) for name in names] + [-1], dtype=np.int64)
        try:
            return EventCorrections.of(stack, to_stack[codes], ts)
        except ClockSyncError:  # (a negative stamp)
            return None

    def _keep(self, key: np.ndarray, end: np.ndarray, ok: np.ndarray,
              parents: pa.Table | None, children: pa.Table | None, events: pa.Table | None,
              nodes_of: pa.Table, rid: np.ndarray | None = None,
              corrections: EventCorrections | None = None,
              tables: _Tables | None = None) -> None:
        """Buffer completed units (rows: pairs, or the events of whole requests with their
        request codes ``rid`` and, if made, corrections) under their first (``key``) and
        last (``end``) corrected times; uncorrectable ones are counted by node, late ones
        counted."""
        if not ok.all():
            bad_nodes = np.asarray(pc.cast(nodes_of.column("node"), pa.string()).to_pylist(),
                                   dtype=object)[~ok]
            for name, n in collections.Counter(bad_nodes.tolist()).items():
                self.uncorrectable[str(name)] += n
                if self.metrics is not None:
                    self.metrics.count_uncorrectable(str(name), n)
            keep = pa.array(np.flatnonzero(ok))
            key, end = key[ok], end[ok]
            rid = None if rid is None else rid[ok]
            parents = None if parents is None else parents.take(keep)
            children = None if children is None else children.take(keep)
            events = None if events is None else events.take(keep)
            corrections = None if corrections is None else corrections.rows(ok)
        if not len(key):
            return
        key_ns, end_ns = key.astype(np.int64), end.astype(np.int64)
        if self._closed_until is not None:
            late = key_ns < self._closed_until  # a hop in a closed step
            n_late = int(late.sum()) if rid is None else len(np.unique(rid[late]))
            if n_late:
                self.counts["late"] += n_late
                if self.metrics is not None:
                    self.metrics.count_late(n_late)
        self._done.append(_Done(key_ns, end_ns, parents, children, events,
                                int(end_ns.max()) + _MARGIN_NS, corrections, tables))

    def _close_steps(self, now: float, flush: bool) -> list[StepResult]:
        step = self.config.step_ns
        closed: list[StepResult] = []
        if flush:
            if not self._done:
                return closed
            mark = max(d.last_ns for d in self._done) + step
        else:
            wm = self.watermark_ns(now)
            if wm is None:
                return closed
            mark = wm
            if self.metrics is not None:
                self.metrics.set_watermark(wm)
        if self._closed_until is None:
            if not self._done:
                return closed
            first = min(int(d.key_ns.min()) for d in self._done)
            if (first // step) * step + step > mark:
                return closed  # the first step is still open: do not fix its start yet
            self._closed_until = (first // step) * step
        while self._closed_until + step <= mark:
            start = self._closed_until
            result = self._compute_step(start, start + step)
            self._closed_until = start + step
            self._drop_done(self._closed_until)
            if result is not None:
                self._steps.append(result)
                closed.append(result)
                self._publish_step(result)
            if not self._done and not flush:
                # nothing buffered: jump to the watermark's step
                self._closed_until = max(self._closed_until, (mark // step) * step)
        return closed

    def _selection(self, lo: int, hi: int) -> list[tuple[np.ndarray, _Done]]:
        out = []
        for d in self._done:
            m = (d.key_ns < hi) & (d.end_ns >= lo)
            if m.any():
                out.append((np.flatnonzero(m), d))
        return out

    def _stack(self) -> CellStack | None:
        """The tables' :class:`~clocksync.CellStack` (``None``: the corrector offers none)."""
        make = getattr(self.corrector, "cell_stack", None)
        return None if make is None else make(self.corrector.nodes)

    def _tables(self) -> _Tables | None:
        """The correction tables as they are now, by identity (``None``: the corrector
        offers no :class:`~clocksync.CellStack`, so keys cannot be matched to tables)."""
        stack = self._stack()
        return None if stack is None else _Tables(stack.nodes, stack.compiled)

    def _reach(self) -> tuple[int, int]:
        """How far (ns) before and after a step its selection reaches. Keys made with the
        step's tables are the corrected times the step computes: a unit overlaps the step
        or it has no hop there; a chain's selection reaches one margin past the step, so
        that a request's later hops are tightened with every message of their causal
        windows. Keys made with other tables may be off: the margin on both sides."""
        now = self._tables()
        if now is None or any(d.tables is None or not d.tables.same(now) for d in self._done):
            return _MARGIN_NS, _MARGIN_NS
        return 0, 0 if self.paired else _MARGIN_NS

    def _compute_step(self, start: int, end: int) -> StepResult | None:
        before, after = self._reach()
        sel = self._selection(start - before, end + after)
        if not sel:  # an empty step with units near it is kept
            sel = self._selection(start - _MARGIN_NS, end + _MARGIN_NS)
        if not sel:
            return None
        try:
            if self.paired:
                parents = pa.concat_tables([_rows(d.parents, m) for m, d in sel
                                            if d.parents is not None],
                                           promote_options="default")
                children = pa.concat_tables([_rows(d.children, m) for m, d in sel
                                             if d.children is not None],
                                            promote_options="default")
                # nodes coded in the order they first appear, as batch codes them; the
                # table holds the step's hops only (no output rows for the margin's pairs)
                layout = _one_dictionary(pair_layout(parents, children))
                result = pairs_hop_table(pivot_of_pairs(layout),
                                         self.corrector, self.causal, skip_bad=True,
                                         ref_range_ns=(start, end))
            else:
                chosen = [(m, d) for m, d in sel if d.events is not None]
                events = pa.concat_tables([_rows(d.events, m) for m, d in chosen],
                                          promote_options="default")
                corrections = None
                if all(d.corrections is not None for _, d in chosen):
                    corrections = EventCorrections.concat([
                        d.corrections if len(m) == d.events.num_rows else d.corrections.rows(m)
                        for m, d in chosen if d.corrections is not None and d.events is not None])
                # the table holds the step's hops only (tightening sees the margin's too)
                events = _one_dictionary(events)
                result = chain_hop_table(events, self.corrector, self.chain, self.causal,
                                         skip_bad=True, ref_range_ns=(start, end),
                                         corrections=corrections)
                if not result.table.num_rows and not chain_hop_table(
                        events, self.corrector, self.chain, self.causal, skip_bad=True,
                        corrections=corrections).table.num_rows:
                    return None  # no hop at all (an empty step with hops near it is kept)
        except (ClockSyncError, ValueError) as exc:  # never let one step stop the engine
            log.error("step %d..%d ns: %s", start, end, exc)
            self.counts["failed_steps"] += 1
            return None
        hops = result.table
        if self.paired and not result.hops:  # no pair of the selection could be corrected
            return None
        windows = tuple(w for w in result.pair_windows if start <= w.start_ns < end)
        # a chain's counts are those of the step's rows (hop_table's ref_range_ns)
        return StepResult(start, end, hops, windows,
                          counts=None if self.paired else result.hops)

    def _drop_done(self, closed_until: int) -> None:
        lo = closed_until - _MARGIN_NS
        while self._done and self._done[0].last_ns < lo:
            self._done.popleft()
        if len(self._done) > 1:  # out-of-order ticks: keep only what may still be needed
            self._done = collections.deque(d for d in self._done if d.last_ns >= lo)

    def window_hops(self) -> pa.Table:
        """The hops of the current window (the last ``window/step`` closed steps)."""
        parts = [s.hops for s in self._steps]
        if not parts:
            return pa.table({})
        return pa.concat_tables(parts, promote_options="default")

    def _publish_step(self, result: StepResult) -> None:
        """Histograms and counters of a step's hops; window percentiles, alerts, report."""
        hops = result.hops
        if self.metrics is not None and hops.num_rows:
            low = hops.column("low_ns").to_numpy()
            high = hops.column("high_ns").to_numpy()
            unknown = hops.column("order_unknown").to_numpy(zero_copy_only=False)
            bad = hops.column("inconsistent").to_numpy(zero_copy_only=False)
            for (hop, src, dst), at in _groups(hops):
                self.metrics.observe_hops(hop, src, dst, low[at], high[at],
                                          int(unknown[at].sum()), int(bad[at].sum()))
        window = self.window_hops()
        end = result.end_ns
        start = end - self.config.window_ns
        rows: pa.Table | None = None
        summary = pa.table({})
        if window.num_rows:  # the window's summary and its window rows, from one reading
            summary, rows = summary_and_window(window, self.config.window_s,
                                               self.config.step_s or None, start)
            result.window = rows
            self._history.append(rows)
            self._alerts(rows, window, start)
            if self.metrics is not None:
                self._publish_quantiles(rows)
        self._report = (self._make_report(window, start, end), (summary, rows, window))

    def _publish_quantiles(self, rows: pa.Table) -> None:
        out = []
        for r in rows.to_pylist():
            for q, name in ((0.5, "p50"), (0.9, "p90"), (0.99, "p99")):
                out.append(QuantileRow(r["hop"], r["src_node"], r["dst_node"], q,
                                       float(r[f"{name}_low_ns"]), float(r[f"{name}_high_ns"])))
        self.metrics.set_quantiles(out)

    def _alerts(self, rows: pa.Table, window: pa.Table, start: int) -> None:
        history = pa.concat_tables(list(self._history), promote_options="default")
        found = [a for a in latency_alerts(history, window, self.alert_config)
                 if a.window_start_ns == start]
        causal = tuple(w for s in self._steps for w in s.causal)
        first_cross = next((h for h in window.column("hop").unique().to_pylist()), "")
        found += [a for a in inconsistency_alerts(causal, window, str(first_cross),
                                                  self.alert_config)
                  if a.window_start_ns >= start]
        active = {(a.kind, a.hop, a.src_node, a.dst_node): a for a in found}
        for key, alert in active.items():
            if key not in self._active:
                self.counts["alerts"] += 1
                if self.metrics is not None:
                    self.metrics.count_alert(alert.kind)
                if self._on_alert is not None:
                    self._on_alert(alert)
        self._active = active
        if self.metrics is not None:
            self.metrics.set_alerts([AlertKey(*k) for k in active])

    def _window_counts(self, window: pa.Table) -> tuple[HopCount, ...]:
        """The window's counts per hop: a window of one step has them made already."""
        only = self._steps[-1].counts if len(self._steps) == 1 else None
        if only is not None:
            return tuple(c for c in only if c.requests)
        return hop_counts(window) if window.num_rows else ()

    def _make_report(self, window: pa.Table, start: int, end: int) -> dict[str, Any]:
        """The report of a step, but for ``summary``, ``windows`` and ``slowest``, which
        :meth:`report` makes from the step's tables when it is read."""
        causal = [w for s in self._steps for w in s.causal]
        return {
            "records": self.counts["records"],
            "bad_records": list(self.bad),
            "requests": window.num_rows,
            "incomplete_requests": sum(self.incomplete.values()),
            "missing_stages": dict(self.incomplete),
            "duplicate_events": self.counts["duplicates"],
            "duplicate_examples": [],
            "unknown_stage_events": sum(self._chain.unknown_stage.values()),
            "unknown_stages": dict(self._chain.unknown_stage),
            "uncorrectable_requests": sum(self.uncorrectable.values()),
            "uncorrectable_events_by_node": dict(self.uncorrectable),
            "hops": [{k: getattr(h, k) for k in h.__slots__}
                     for h in self._window_counts(window)],
            "summary": [],
            "window_s": self.config.window_s,
            "windows": [],
            "causal": [{k: getattr(w, k) for k in w.__slots__} for w in causal],
            "alerts": [a.to_dict() for a in self._active.values()],
            "slowest": {},
            "window_start_ns": start,
            "window_end_ns": end,
            "late": self.counts["late"],
            "evicted": self.counts["evicted"],
            "pending": self.pending,
        }

    def _publish_state(self, now: float) -> None:
        if self.metrics is None:
            return
        self.metrics.set_pending(self.pending, self.pending_bytes + self.window_bytes,
                                 self.config.memory_budget_bytes)
        now_ns = time.time_ns()
        rows = []
        for node in self.corrector.nodes:
            table = self.corrector.table(node)
            last = table.last_sample_local_ns
            age = (now_ns - last) / 1e9 if last is not None else math.inf
            rows.append((node, age, str(reader_status(table, now_ns))))
        self.metrics.set_tables(rows)

    # -- outputs ----------------------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        published = self._report
        report, tables = published
        if tables is not None:  # the first read of this step's report
            summary, rows, window = tables
            report = {**report, "summary": summary.to_pylist(),
                      "windows": [] if rows is None else rows.to_pylist(),
                      "slowest": _slowest(window)}
            if self._report is published:  # (else a newer step published meanwhile)
                self._report = (report, None)
        return dict(report) or {"requests": 0, "windows": [], "summary": [],
                                "hops": [], "window_s": self.config.window_s,
                                "pending": self._pending_count}

    def health(self) -> tuple[bool, dict[str, Any]]:
        over = self.retry_after_s() is not None
        details = {"pending": self._pending_count, "over_budget": over,
                   "tables": len(self.corrector.nodes), "closed_until_ns": self._closed_until,
                   "load_errors": self.corrector.load_errors}
        return not over, details

    def metrics_text(self) -> tuple[bytes, str]:
        if self.metrics is None:
            return b"", "text/plain; version=0.0.4"
        body, ctype = self.metrics.exposition()
        return body, ctype


def _merged(inbox: Sequence[tuple[float, pa.Table]]) -> list[tuple[float, pa.Table]]:
    """The inbox with each run of batches of one schema (up to :data:`_MERGED_MAX_ROWS`
    rows) as one table (rows in arrival order) under the run's last arrival time: what is
    done per batch (pairing, completion, the watermark) is done once a round, not once a
    body."""
    out: list[tuple[float, pa.Table]] = []
    at = 0
    while at < len(inbox):
        run, rows = at + 1, inbox[at][1].num_rows
        while (run < len(inbox) and inbox[run][1].schema == inbox[at][1].schema
               and rows + inbox[run][1].num_rows <= _MERGED_MAX_ROWS):
            rows += inbox[run][1].num_rows
            run += 1
        if run - at == 1:
            out.append(inbox[at])
        else:
            table = pa.concat_tables([t for _, t in inbox[at:run]]).combine_chunks()
            out.append((max(a for a, _ in inbox[at:run]), table))
        at = run
    return out


def _rows(table: pa.Table, rows: np.ndarray) -> pa.Table:
    """Rows ``rows`` (ascending) of ``table``: the table itself when they are all of them;
    a filter, not a take, which would unify the chunks' dictionaries."""
    if len(rows) == table.num_rows:
        return table
    keep = np.zeros(table.num_rows, dtype=bool)
    keep[rows] = True
    return table.filter(pa.array(keep))


def _one_dictionary(events: pa.Table) -> pa.Table:
    """A step's events (or its pairs' layout) with ``request_id`` and ``node``, where
    dictionary-encoded, each under one dictionary of the values its rows hold: request ids
    in the order they first appear, as the batch pipeline would encode them, marked
    distinct (:data:`~clocksync.latency._arrow.UNIQUE_DICTIONARY`); nodes in the order of
    the engine's dictionary (:meth:`Engine._coded`: the order they first came, which only
    grows), so that a node pair's causal windows name it the same way round in every step.
    No row is hashed again."""
    for name in ("request_id", "node"):
        at = events.schema.get_field_index(name)
        if at < 0 or not pa.types.is_dictionary(events.schema.field(at).type):
            continue
        meta = None
        if name == "request_id":
            column = first_seen_dictionary(events.column(at))
            meta = {UNIQUE_DICTIONARY: b"1"}
        else:
            codes, values = dictionary_codes(events.column(at), np.int32, used_only=True)
            column = pa.DictionaryArray.from_arrays(
                pa.array(codes, pa.int32(), mask=codes < 0 if (codes < 0).any() else None),
                values)
        events = events.set_column(at, pa.field(name, column.type, metadata=meta),
                                   pa.chunked_array([column]))
    return events


def _groups(hops: pa.Table) -> list[tuple[tuple[str, str, str], np.ndarray]]:
    """The rows of each ``(hop, src_node, dst_node)``, grouped by dictionary codes (no
    Python work per row)."""
    codes, names = [], []
    for column in ("hop", "src_node", "dst_node"):
        code, dictionary = dictionary_codes(hops.column(column))
        codes.append(code)
        names.append(dictionary.to_pylist())
    key = (codes[0] * len(names[1]) + codes[1]) * len(names[2]) + codes[2]
    span = len(names[0]) * len(names[1]) * len(names[2])
    if span <= 4 * len(key) + 1024 and all((c >= 0).all() for c in codes):
        # few possible groups (and no null): counted, not sorted
        present = np.bincount(key, minlength=span) > 0
        distinct = np.flatnonzero(present)
        inverse = (np.cumsum(present) - 1)[key]
        order, bounds = group_order(inverse, len(distinct))
    else:
        distinct, inverse = np.unique(key, return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        bounds = np.searchsorted(inverse[order], np.arange(len(distinct) + 1))
    out = []
    for g, k in enumerate(distinct.tolist()):
        rest, dst = divmod(k, len(names[2]))
        hop, src = divmod(rest, len(names[1]))
        out.append(((str(names[0][hop]), str(names[1][src]), str(names[2][dst])),
                    order[bounds[g]:bounds[g + 1]]))
    return out


#: how many of a hop's slowest requests the report lists
SLOWEST_PER_HOP = 5


def _slowest(window: pa.Table) -> dict[str, list[dict[str, Any]]]:
    """Per hop, its slowest requests of the window (by the upper end of their interval):
    interval, the local stamps it was computed from, context."""
    if not window.num_rows:
        return {}
    code, dictionary = dictionary_codes(window.column("hop"))
    out = {}
    for k, hop in enumerate(dictionary.to_pylist()):
        mask = code == k
        if mask.any():
            worst = worst_requests(window, mask, SLOWEST_PER_HOP)
            out[str(hop)] = [w.to_dict() for w in worst]
    return out


def post_alert(url: str, alert: Alert, timeout_s: float = 5.0) -> None:
    """POST one alert as JSON to ``url`` (a webhook); failures are logged, not raised."""
    body = json.dumps(alert.to_dict(), default=str).encode()
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            response.read()
    except OSError as exc:
        log.warning("alert webhook %s: %s", url, exc)
