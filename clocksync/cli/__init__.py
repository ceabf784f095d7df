"""The ``clocksync`` command line: a thin click layer over the library.

Each command lives in its own module, imported only when that command runs (so
``clocksync agent run`` does not load scapy or the latency stack).
"""

from __future__ import annotations

import importlib

import click

from .._model._errors import ClockSyncError

__all__ = ["main"]

#: command name -> "module:attribute" (one line per command module)
_COMMANDS: dict[str, str] = {
    "agent": "._agent:agent",
    "correct": "._correct:correct",
    "demo": "._demo:demo",
    "fit": "._fit:fit",
    "latency": "._latency:latency",
    "ntp": "._ntp:ntp",
    "ptp": "._ptp:ptp",
    "skew": "._skew:skew",
    "traces": "._traces:traces",
    "collector": "._collector:collector",
}


class _Group(click.Group):
    """Loads commands lazily; turns our own errors into one clear line and exit code 1."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        command = getattr(importlib.import_module(module_name, __name__), attr)
        assert isinstance(command, click.Command)
        return command

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ClockSyncError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="clocksync")
def main() -> None:
    """Measure clock skew between nodes and correct timestamps with guaranteed error bounds."""
