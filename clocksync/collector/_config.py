"""Collector configuration: every option declared once, as a field of
:class:`CollectorConfig` (the agent's option machinery: TOML keys, flags, ranges and error
messages that name the file and key or the flag all derive from the fields).

Example file (``clocksync collector run --config collector.toml``)::

    listen = "127.0.0.1:4318"
    store = "/var/lib/clocksync/tables"
    preset = "restate"
    window = "10s"
    data_dir = "/var/lib/clocksync/raw"
    request_timeout = "30s"
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._model._errors import InputError
from ..agent import OptionSpec, layered_options, option_field, option_source, parse_listen
from ..latency import DEFAULT_STAGES, PRESETS, CausalAssumptions, TraceMapping, hops_of, preset

__all__ = ["COLLECTOR_OPTIONS", "CollectorConfig", "load_collector_config"]

_MIB = 1 << 20


@dataclass(frozen=True)
class CollectorConfig:
    """Validated collector options; each field declares its option (units in its help)."""

    listen: str = option_field("127.0.0.1:4318", "HTTP address HOST:PORT: POST /v1/traces "
                               "(OTLP/HTTP), POST /v1/events (JSONL), GET /metrics, /healthz, "
                               "/report (port 0: any free port)")
    grpc_listen: str = option_field("", "OTLP/gRPC address HOST:PORT (needs the grpc extra); "
                                    "empty: off")
    store: str = option_field("", "table store URL: DIR, file://DIR, redis://..., or "
                              "http://AGENT:PORT[,http://AGENT2:PORT] (running agents); reread "
                              "when it changes")
    preset: str = option_field("", "built-in trace map: restate (empty: none)",
                               choices=("", *sorted(PRESETS)))
    trace_map: str = option_field("", "trace map file (TOML or JSON): which spans are which "
                                  "stages, on which node")
    stages: tuple[str, ...] = option_field(DEFAULT_STAGES, "stage chain of stage events and of "
                                           "maps that do not pair by parent span (repeatable "
                                           "flag, in order)", flag="stage")
    window_s: float = option_field(10.0, "percentile window (s)", 0.001, 86_400.0,
                                   kind="duration", flag="window")
    step_s: float = option_field(0.0, "window step (s; 0: the window, tumbling)", 0.0,
                                 86_400.0, kind="duration", flag="step")
    lateness_s: float = option_field(2.0, "how far behind the newest event a step closes "
                                     "(s): data later than that is counted late, kept raw",
                                     0.0, 3600.0, kind="duration", flag="lateness")
    request_timeout_s: float = option_field(30.0, "how long an incomplete request (or a span "
                                            "without its parent) waits (s)", 0.001, 86_400.0,
                                            kind="duration", flag="request_timeout")
    memory_budget_bytes: int = option_field(512 * _MIB, "memory for pending and windowed data "
                                            "(bytes): over it the oldest pending requests are "
                                            "evicted, and new payloads get 429", 1 * _MIB,
                                            flag="memory_budget")
    data_dir: str = option_field("", "directory of the raw layer (Parquet segments); empty: "
                                 "no raw layer")
    segment_max_bytes: int = option_field(64 * _MIB, "raw segment size before rotation "
                                          "(bytes)", 1024)
    segment_max_age_s: float = option_field(60.0, "raw segment age before rotation (s)", 0.1,
                                            86_400.0, kind="duration", flag="segment_max_age")
    retention_s: float = option_field(7 * 86_400.0, "raw segments older than this are "
                                      "deleted (s; 0: kept)", 0.0, 3.2e9, kind="duration",
                                      flag="retention")
    alert_webhook: str = option_field("", "URL alerts are POSTed to (JSON), when they fire")
    forward: str = option_field("", "upstream OTLP/HTTP traces URL: spans are relayed with "
                                "clocksync.* attributes")
    causal_window_s: float = option_field(1.0, "causal tightening window (s); must divide "
                                          "the step", 0.001, 3600.0, kind="duration",
                                          flag="causal_window")
    min_wire_delay_s: float = option_field(0.0, "least one-way delay of any cross-node hop "
                                           "(s)", 0.0, 10.0, kind="duration",
                                           flag="min_wire_delay")
    causal: bool = option_field(True, "causal tightening of cross-node hops")
    decoders: int = option_field(0, "payloads decoded at once (0: one per CPU the collector "
                                 "may run on); others wait their turn", 0, 1024)
    refresh_s: float = option_field(2.0, "how often the table stores are checked (s)", 0.05,
                                    3600.0, kind="duration", flag="refresh")
    source: str = dataclasses.field(default="defaults", compare=False)

    @property
    def step_ns(self) -> int:
        return round((self.step_s or self.window_s) * 1e9)

    @property
    def window_ns(self) -> int:
        return round(self.window_s * 1e9)

    @property
    def decoder_count(self) -> int:
        """Payloads decoded at once: ``decoders``, or one per CPU this process may run on."""
        return self.decoders or len(os.sched_getaffinity(0))

    def mapping(self) -> TraceMapping | None:
        """The trace map of ``preset`` or ``trace_map`` (``None``: the default map)."""
        if self.preset:
            return preset(self.preset)
        return TraceMapping.load(self.trace_map) if self.trace_map else None

    def assumptions(self) -> CausalAssumptions | None:
        """Causal tightening's assumptions (``None``: off)."""
        if not self.causal:
            return None
        return CausalAssumptions(min_wire_delay_ns=self.min_wire_delay_s * 1e9,
                                 window_s=self.causal_window_s)


#: every option, read from the fields of :class:`CollectorConfig`
COLLECTOR_OPTIONS: tuple[OptionSpec, ...] = tuple(
    OptionSpec(key=f.name, **f.metadata["clocksync.option"])
    for f in dataclasses.fields(CollectorConfig) if "clocksync.option" in f.metadata)


def load_collector_config(path: str | Path | None = None,
                          overrides: Mapping[str, Any] | None = None) -> CollectorConfig:
    """Defaults, then the TOML file at ``path``, then ``overrides`` (flags; None = unset).

    Raises:
        InputError: naming the file and key, or the flag, of a wrong value.
    """
    values, origin, _ = layered_options(COLLECTOR_OPTIONS, path, overrides)

    def source(key: str) -> str:
        return option_source(COLLECTOR_OPTIONS, origin, key)

    if not values["store"]:
        raise InputError(f"{source('store')}: give the table store (--store URL or "
                         "store = \"URL\" in the file)")
    parse_listen(values["listen"], source("listen"))
    if values["grpc_listen"]:
        parse_listen(values["grpc_listen"], source("grpc_listen"))
    if values["preset"] and values["trace_map"]:
        raise InputError(f"{source('trace_map')}: give a preset or a trace map, not both "
                         f"(preset from {source('preset')})")
    if values["trace_map"] and not Path(values["trace_map"]).is_file():
        raise InputError(f"{source('trace_map')}: no such file: {values['trace_map']!r}")
    try:
        hops_of(tuple(values["stages"]))
    except ValueError as exc:
        raise InputError(f"{source('stages')}: {exc}") from None
    step_ns = round((values["step_s"] or values["window_s"]) * 1e9)
    if round(values["window_s"] * 1e9) % step_ns:
        raise InputError(f"{source('window_s')}: must be a multiple of the step "
                         f"({step_ns / 1e9:g} s, from {source('step_s')})")
    if values["causal"] and step_ns % round(values["causal_window_s"] * 1e9):
        raise InputError(f"{source('causal_window_s')}: must divide the step "
                         f"({step_ns / 1e9:g} s), so that each step holds whole causal "
                         "windows")
    return CollectorConfig(**values, source=str(path) if path is not None else "defaults")
