"""``clocksync collector run``: the live collector (OTLP and stage events in, Prometheus
out); a thin layer over :mod:`clocksync.collector`."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Any

import click

from ..agent._lean import hide_unused_packages
from ..collector import COLLECTOR_OPTIONS, load_collector_config, run_collector
from ._options import spec_options

__all__ = ["collector"]


@click.group()
def collector() -> None:
    """The live collector: spans and stage events in, hop latencies with bounds out."""


@collector.command("run")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="TOML config file (flags override its values)")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default="info", show_default=True, help="log verbosity (stderr)")
@spec_options(COLLECTOR_OPTIONS)
def run(config_path: str | None, log_level: str, **kwargs: Any) -> None:
    """Receive OTLP spans (POST /v1/traces, OTLP/HTTP protobuf or JSON; OTLP/gRPC with
    --grpc-listen) and stage events (POST /v1/events, JSONL); correct them with the store's
    tables; serve hop latencies with guaranteed bounds on GET /metrics (Prometheus),
    GET /report (JSON) and GET /healthz; keep the raw events in --data-dir.

    SIGTERM or SIGINT: stop accepting, write everything accepted to the raw layer, exit 0.
    """
    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    hide_unused_packages()  # pyarrow would import pandas (~48 MB) only to look for its types
    overrides = {k: (None if v == () else v) for k, v in kwargs.items()}
    config = load_collector_config(config_path, overrides)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def started(urls: list[str]) -> None:
        click.echo(f"clocksync collector: listening on {', '.join(urls)}; tables from "
                   f"{config.store}", err=True)

    stats = run_collector(config, stop, on_start=started)
    click.echo(f"clocksync collector: stopped; {stats}", err=True)
