"""Shared click options: the fit assumptions, each derived from its one declaration."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from .._corrector import Corrector
from .._fit import ASSUMPTION_SPECS
from .._io._keyfile import load_table_key
from .._model._errors import StoreError
from .._model._tablekey import TableKey
from .._model._units import parse_duration_s

if TYPE_CHECKING:
    from ..agent import OptionSpec

__all__ = [
    "allow_empty_option",
    "assumption_options",
    "collect_assumptions",
    "exit_for_load_errors",
    "load_store",
    "report_load_errors",
    "spec_options",
    "strict_option",
    "table_key_option",
    "trace_map_options",
]

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


def strict_option(func: F) -> F:
    """``--strict``: any table that cannot be read is fatal (default: reported, exit 2)."""
    return click.option(
        "--strict", "strict_tables", is_flag=True,
        help="fail (exit 1) on any table that cannot be read, instead of reporting it and "
             "going on with the others (exit 2)")(func)


def allow_empty_option(func: F) -> F:
    """``--allow-empty``: a store without any table is not an error."""
    return click.option(
        "--allow-empty", "allow_empty", is_flag=True,
        help="accept a store without any table (default: an error)")(func)


def load_store(url: str, table_key: TableKey | None, strict: bool,
               allow_empty: bool) -> Corrector:
    """Load a store's tables for a command: each unreadable table is reported on stderr by
    node and reason (fatal with ``strict``); a store none of whose tables can be read is an
    error, and so is a store with no table at all unless ``allow_empty``."""
    corrector = Corrector.from_store(url, table_key=table_key, strict=strict)
    failed = corrector.load_errors
    if not corrector.nodes and failed:
        first = sorted(failed)[0]
        raise StoreError(f"{url}: no table could be read ({len(failed)} failed; node "
                         f"{first}: {failed[first]})")
    report_load_errors(corrector)
    if not corrector.nodes and not allow_empty:
        raise StoreError(f"{url}: no tables in the store (--allow-empty accepts that)")
    return corrector


def report_load_errors(corrector: Corrector) -> None:
    for node, reason in sorted(corrector.load_errors.items()):
        click.echo(f"warning: node {node}: table not loaded: {reason}", err=True)


def exit_for_load_errors(corrector: Corrector) -> None:
    """Exit 2 when some table could not be read (after the command's output)."""
    failed = corrector.load_errors
    if failed:
        click.echo(f"{len(failed)} node(s) failed to load: {', '.join(sorted(failed))} "
                   "(exit 2; --strict makes this fatal)", err=True)
        raise SystemExit(2)


def _mapping(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """``--trace-map FILE`` / ``--preset NAME`` -> the trace map, one of the two at most."""
    from ..latency import TraceMapping, preset

    if value is None:
        return None
    other = "preset" if param.name == "trace_map" else "trace_map"
    if ctx.params.get(other) is not None:
        raise click.UsageError("give --trace-map FILE or --preset NAME, not both")
    return TraceMapping.load(value) if param.name == "trace_map" else preset(value)


def trace_map_options(func: F) -> F:
    """``--trace-map FILE`` and ``--preset NAME``: each parses into a ``TraceMapping``
    (parameters ``trace_map`` and ``preset``; at most one is given)."""
    from ..latency import PRESETS

    func = click.option("--preset", type=click.Choice(sorted(PRESETS)), callback=_mapping,
                        help="A built-in trace map (restate: Restate 1.7's spans, hops "
                             "paired by parent span).")(func)
    return click.option("--trace-map", type=click.Path(dir_okay=False), callback=_mapping,
                        help="Trace map (TOML or JSON): which spans are which stages, on "
                             "which node.")(func)


class _Duration(click.ParamType[float]):
    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        try:
            return parse_duration_s(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _click_type(spec: OptionSpec) -> Any:
    if spec.kind == "int":
        return click.IntRange(None if spec.minimum is None else int(spec.minimum),
                              None if spec.maximum is None else int(spec.maximum))
    if spec.kind == "float":
        return click.FloatRange(spec.minimum, spec.maximum)
    if spec.kind == "duration":
        return _Duration()
    return click.STRING


def _show_default(spec: OptionSpec) -> str | None:
    if spec.kind == "list" or spec.default in ("", None):
        return None
    if spec.kind == "bool":
        return "on" if spec.default else "off"
    return f"{spec.default:g}" if isinstance(spec.default, float) else str(spec.default)


def spec_options(specs: tuple[OptionSpec, ...]) -> Callable[[F], F]:
    """A decorator adding one click option per entry of ``specs`` (an option table such
    as the agent's or the collector's); unset flags stay None."""
    def decorate(func: F) -> F:
        return _spec_options(specs, func)
    return decorate


def _spec_options(specs: tuple[OptionSpec, ...], func: F) -> F:
    for spec in reversed(specs):
        if spec.kind == "bool":
            name = spec.flag_name
            option = click.option(f"{name}/--no-{name[2:]}", spec.key, default=None,
                                  show_default=_show_default(spec), help=spec.help)
        elif spec.kind == "list":
            option = click.option(spec.flag_name, spec.key, multiple=True, help=spec.help)
        else:
            option = click.option(spec.flag_name, spec.key, type=_click_type(spec),
                                  default=None, show_default=_show_default(spec),
                                  help=spec.help)
        func = option(func)
    return func
