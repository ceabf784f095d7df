"""``clocksync fit SAMPLES... --out DIR``."""

from __future__ import annotations

import json
from typing import Any

import click
import numpy as np

from .._fit import SampleArrays, fit_table
from .._io._samplefile import read_samples
from .._io._store import DirectoryStore
from .._model._errors import InputError
from .._model._table import CorrectionTable
from .._model._units import format_ns
from ._options import assumption_options, collect_assumptions

__all__ = ["fit"]


def _concat(parts: list[SampleArrays]) -> SampleArrays:
    return SampleArrays(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                          ("node", "t_local_ns", "offset_ns", "delay_ns", "bound_ns", "source")))


@click.command()
@click.argument("samples", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="directory store to write one table per node into")
@click.option("--reference", default="", help="reference id recorded in the tables")
@click.option("--json", "as_json", is_flag=True, help="print a JSON summary")
@assumption_options
def fit(samples: tuple[str, ...], out_dir: str, reference: str, as_json: bool,
        **kwargs: Any) -> None:
    """Fit one correction table per node from sample files (JSONL, CSV, Parquet).

    All tables are fitted before any is written; each is written atomically.
    """
    assumptions = collect_assumptions(kwargs)
    arrays = _concat([read_samples(path) for path in samples])
    if len(arrays) == 0:
        raise InputError(f"{', '.join(samples)}: no samples; there is nothing to fit")
    tables: list[CorrectionTable] = [
        fit_table(arrays.for_node(node), reference=reference,
                  **assumptions)  # type: ignore[arg-type]
        for node in arrays.nodes()
    ]
    store = DirectoryStore(out_dir)
    for table in tables:
        store.write(table)
    summary = [
        {
            "node": t.node,
            "samples": t.sample_count,
            "outliers": t.outlier_count,
            "segments": len(t.segments),
            "status": t.status,
            "skew_ppm": t.current.skew_ppm if t.current else None,
            "residual_rms_ns": t.current.residual_rms_ns if t.current else None,
        }
        for t in tables
    ]
    if as_json:
        click.echo(json.dumps({"out": out_dir, "tables": summary}))
        return
    for t in tables:
        cur = t.current
        skew = (f"skew {cur.skew_ppm:+.3f} ppm ± {cur.sigma_skew_ppm:.3f}" if cur else "")
        rms = f"residual rms {format_ns(cur.residual_rms_ns)}" if cur else ""
        click.echo(f"{t.node}: {t.sample_count} samples ({t.outlier_count} outliers), "
                   f"{len(t.segments)} segment(s), {skew}, {rms}, status {t.status}")
    click.echo(f"wrote {len(tables)} table(s) to {out_dir}")
