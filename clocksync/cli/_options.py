"""Shared click options: the fit assumptions, each derived from its one declaration."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from .._fit import ASSUMPTION_SPECS

__all__ = ["assumption_options", "collect_assumptions"]

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


def collect_assumptions(kwargs: dict[str, Any]) -> dict[str, float]:
    """Pop the assumption options given on the command line (unset ones keep defaults)."""
    out: dict[str, float] = {}
    for spec in ASSUMPTION_SPECS:
        value = kwargs.pop(spec.name, None)
        if value is not None:
            out[spec.name] = float(value)
    return out
