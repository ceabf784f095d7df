"""``clocksync agent run``: the node agent; every flag is derived from ``OPTION_SPECS``."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

import click

from ..agent import OPTION_SPECS, Agent, AgentHttpServer, load_config, parse_listen
from ..agent._lean import lean_process
from ._options import assumption_options, collect_assumptions, spec_options

__all__ = ["agent"]

F = TypeVar("F", bound=Callable[..., Any])


config_options = spec_options(OPTION_SPECS)


@click.group()
def agent() -> None:
    """The node agent (measures only: never sets, slews or steps the system clock)."""


@agent.command("run")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="TOML config file (flags override its values)")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default="info", show_default=True, help="log verbosity (stderr)")
@config_options
@assumption_options
def run(config_path: str | None, log_level: str, **kwargs: Any) -> None:
    """Poll sources, log samples, refit the recent window, publish the table, serve
    /metrics, /table and /healthz. SIGTERM or SIGINT: finish the current write, publish a
    final table marked stopped, exit 0.

    Offsets are reference - local (positive: the local clock is behind).
    """
    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    fit = collect_assumptions(kwargs)
    overrides: dict[str, Any] = {k: (None if v == () else v) for k, v in kwargs.items()}
    if fit:
        overrides["fit"] = fit
    config = load_config(config_path, overrides)
    if not (config.has_sources or config.serve_port):
        raise click.UsageError("nothing to do: give a source (--ntp-server, --peer, --chrony, "
                               "--ptp-interface, --ptp4l-uds) or serve as a reference "
                               "(--serve-port)")
    lean_process()  # only once the agent will run: it changes what this process can import
    node_agent = Agent(config)
    http: AgentHttpServer | None = None
    try:
        if config.http_listen:
            host, port = parse_listen(config.http_listen)
            http = AgentHttpServer(node_agent.snapshot, host, port).start()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            node_agent.request_stop()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        server = node_agent.start_server()
        sources = ", ".join(node_agent.source_names) or "none (reference)"
        click.echo(f"clocksync agent {config.node}: sources {sources}; stores "
                   f"{', '.join(node_agent.store_urls)}"
                   f"{'; http ' + http.url if http else ''}"
                   f"{f'; serving NTP on port {server.port}' if server else ''}", err=True)
        node_agent.run()
    finally:
        if http is not None:
            http.stop()
    click.echo(f"clocksync agent {config.node}: stopped, status {node_agent.status}, "
               f"{node_agent.samples.appended} new samples", err=True)
