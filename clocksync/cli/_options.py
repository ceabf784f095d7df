"""Shared click options: the fit assumptions, each derived from its one declaration."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from .._fit import ASSUMPTION_SPECS
from .._io._keyfile import load_table_key
from .._model._tablekey import TableKey

__all__ = ["assumption_options", "collect_assumptions", "table_key_option"]

F = TypeVar("F", bound=Callable[..., Any])


def assumption_options(func: F) -> F:
    """Add ``--max-skew-ppm`` etc. (one per assumption spec, default = the spec's default)."""
    for spec in reversed(ASSUMPTION_SPECS):
        func = click.option(
            "--" + spec.name.replace("_", "-"),
            spec.name,
            type=click.FloatRange(spec.minimum, spec.maximum),
            default=None,
            show_default=f"{spec.default:g}",
            help=spec.help,
        )(func)
    return func


def _load_key(ctx: click.Context, param: click.Parameter, value: str | None
              ) -> TableKey | None:
    return None if value is None else load_table_key(value)


def table_key_option(func: F) -> F:
    """``--table-key-file FILE`` (or ``$CLOCKSYNC_TABLE_KEY_FILE``): the command gets a
    ``table_key`` argument, a :class:`TableKey` or None."""
    return click.option(
        "--table-key-file", "table_key", type=click.Path(dir_okay=False), default=None,
        envvar="CLOCKSYNC_TABLE_KEY_FILE", callback=_load_key,
        help="shared HMAC key file: tables are signed with it, and unsigned or badly signed "
             "tables are refused (docs/table-format.md)")(func)


def collect_assumptions(kwargs: dict[str, Any]) -> dict[str, float]:
    """Pop the assumption options given on the command line (unset ones keep defaults)."""
    out: dict[str, float] = {}
    for spec in ASSUMPTION_SPECS:
        value = kwargs.pop(spec.name, None)
        if value is not None:
            out[spec.name] = float(value)
    return out
