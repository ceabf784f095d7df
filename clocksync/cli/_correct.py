"""``clocksync correct INPUT --tables DIR --out OUTPUT``."""

from __future__ import annotations

import click
import numpy as np
import pyarrow as pa

from .._corrector import OUT_OF_RANGE
from .._io._tabular import Column, read_rows, write_rows
from .._model._errors import InputError
from .._model._table import SegmentInfo
from .._model._tablekey import TableKey
from .._model._units import unit_hint
from ._options import (
    allow_empty_option,
    exit_for_load_errors,
    load_store,
    strict_option,
    table_key_option,
)

__all__ = ["correct"]

_COLUMNS = [Column("node", "string"), Column("ts_ns", "int64", nonnegative=True)]


@click.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(dir_okay=False))
@click.option("--tables", "store", required=True,
              help="table store: a directory, file://DIR or redis://host:port/db")
@click.option("--out", "output", required=True, type=click.Path(dir_okay=False),
              help="output file (.jsonl, .csv or .parquet); written atomically")
@click.option("--on-invalid", type=click.Choice(["raise", "inf"]), default="raise",
              show_default=True,
              help="timestamps the tables cannot correct: fail, or keep them with an "
                   "infinite bound")
@table_key_option
@strict_option
@allow_empty_option
def correct(input_path: str, store: str, output: str, on_invalid: str,
            table_key: TableKey | None, strict_tables: bool, allow_empty: bool) -> None:
    """Add ``ref_ns`` and ``bound_ns`` (and ``flags``) to every row with ``node, ts_ns``.

    The true reference time of a row lies in ``[ref_ns - bound_ns, ref_ns + bound_ns]``.
    A table that cannot be read is reported on stderr by node and reason; rows of the
    other nodes are corrected and the exit status is 2 (--strict: exit 1 at once).
    """
    table = read_rows(input_path, _COLUMNS)
    if table.num_rows == 0:
        raise InputError(f"{input_path}: no rows; there is nothing to correct")
    corrector = load_store(store, table_key, strict_tables, allow_empty)
    nodes = table.column("node").to_numpy(zero_copy_only=False)
    ts = table.column("ts_ns").to_numpy()
    ref = np.empty(len(ts), dtype=np.int64)
    bound = np.empty(len(ts), dtype=np.float64)
    flags = np.empty(len(ts), dtype=np.uint8)
    skipped = 0
    for node in sorted(set(nodes.tolist())):
        rows = np.flatnonzero(nodes == node)
        if node not in corrector.nodes:
            why = corrector.load_errors.get(node)
            if why is not None:  # its table is unreadable: the rows keep no correction
                flags[rows] = OUT_OF_RANGE
                ref[rows], bound[rows] = ts[rows], np.inf
                skipped += len(rows)
                continue
            raise InputError(f"{input_path}: data row {rows[0] + 1}: field 'node': no table "
                             f"for node {node!r} in {store} (known: "
                             f"{', '.join(corrector.nodes) or 'none'})")
        flags[rows] = corrector.flags(node, ts[rows])
        bad = np.flatnonzero(flags[rows] & OUT_OF_RANGE)
        if len(bad) and on_invalid == "raise":
            row = rows[bad[0]]
            raise InputError(f"{input_path}: data row {row + 1}: field 'ts_ns': {ts[row]} is "
                             f"outside node {node!r}'s table ({len(bad)} such row(s); "
                             "--on-invalid inf keeps them with an infinite bound)"
                             + _hint(corrector.table(node).segments, int(ts[row])))
        ref[rows], bound[rows] = corrector.correct(node, ts[rows], on_invalid="inf")
    out = table.append_column("ref_ns", pa.array(ref, pa.int64()))
    out = out.append_column("bound_ns", pa.array(bound, pa.float64()))
    out = out.append_column("flags", pa.array(flags, pa.uint8()))
    write_rows(out, output, delta_columns=("ts_ns", "ref_ns"))
    click.echo(f"corrected {len(ts) - skipped} row(s) of {len(set(nodes.tolist()))} node(s) "
               f"-> {output}")
    if skipped:
        click.echo(f"{skipped} row(s) of nodes whose table could not be read kept an infinite "
                   "bound (flag out_of_range)", err=True)
    exit_for_load_errors(corrector)


def _hint(segments: tuple[SegmentInfo, ...], ts_ns: int) -> str:
    return unit_hint("ts_ns", ts_ns, segments[0].first_sample_local_ns) if segments else ""
