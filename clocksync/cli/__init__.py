"""The ``clocksync`` command line: a thin click layer over the library.

Each command group lives in its own module; this module only assembles them.
"""

from __future__ import annotations

import click

from .._errors import ClockSyncError

__all__ = ["main"]


class _Group(click.Group):
    """Turns our own errors into one clear line on stderr and exit code 1."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ClockSyncError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="clocksync")
def main() -> None:
    """Measure clock skew between nodes and correct timestamps with guaranteed error bounds."""


# Command registrations: one import and one add_command per command module.
from ._ntp import ntp  # noqa: E402

main.add_command(ntp)
from ._ptp import ptp  # noqa: E402

main.add_command(ptp)
from ._correct import correct  # noqa: E402
from ._demo import demo  # noqa: E402
from ._fit import fit  # noqa: E402
from ._skew import skew  # noqa: E402

main.add_command(fit)
main.add_command(correct)
main.add_command(skew)
main.add_command(demo)
from ._latency import latency  # noqa: E402

main.add_command(latency)
from ._agent import agent  # noqa: E402

main.add_command(agent)
