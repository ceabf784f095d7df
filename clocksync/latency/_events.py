"""Read events files (JSONL, CSV, Parquet): ``request_id, stage, node, ts_ns`` + context.

By default the first malformed record is fatal (:class:`~clocksync._model._errors.InputError`
naming ``file:line`` and the field). With ``skip_bad=True`` every malformed record is
skipped, and each one is returned as a :class:`BadRecord` so callers count and show them:
nothing is dropped silently.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .._io._tabular import Column, _convert, _rows_to_table, file_format, read_rows
from .._model._errors import InputError
from ._arrow import UNIQUE_DICTIONARY, join_disjoint_dictionaries
from ._schema import EVENT_COLUMNS, BadRecord, Events
from ._storage import WHOLE_REQUESTS_KEY

__all__ = ["checked_rows", "concat_events", "read_events_file"]

_DICTIONARY_READ = ("request_id", "stage", "node")


def _reason(exc: InputError, where: str) -> str:
    text = str(exc)
    return text[len(where) + 2:] if text.startswith(f"{where}: ") else text


def _text_records(path: str, fmt: str) -> Iterator[tuple[str, dict[str, Any] | str]]:
    """``(where, record)`` per record, or ``(where, reason)`` for one that does not parse."""
    with open(path, encoding="utf-8", newline="" if fmt == "csv" else None) as handle:
        if fmt == "csv":
            reader = csv.DictReader(handle)
            if reader.fieldnames is None:
                raise InputError(f"{path}:1: empty file, expected a header line")
            for row in reader:
                where = f"{path}:{reader.line_num}"
                if None in row:
                    yield where, "more fields than the header has"
                else:
                    yield where, {k: v for k, v in row.items() if k is not None}
            return
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                yield where, f"not valid JSON ({exc.msg})"
                continue
            yield where, obj if isinstance(obj, dict) else "expected a JSON object per line"


def checked_rows(records: Iterable[tuple[str, dict[str, Any] | str]], columns: list[Column],
                 source: str) -> tuple[pa.Table, list[BadRecord]]:
    """The records that pass the columns' checks as a table, and a :class:`BadRecord` for
    each one that does not parse (given as its reason) or fails a check."""
    rows: list[dict[str, Any]] = []
    wheres: list[str] = []
    bad: list[BadRecord] = []
    for where, rec in records:
        if isinstance(rec, str):
            bad.append(BadRecord(where, rec))
            continue
        try:
            for col in columns:
                _convert(rec.get(col.name), col, where)
        except InputError as exc:
            bad.append(BadRecord(where, _reason(exc, where)))
            continue
        rows.append(rec)
        wheres.append(where)
    return _rows_to_table(rows, wheres, columns, source), bad


def _tolerant_text(path: str, fmt: str, columns: list[Column]) -> Events:
    table, bad = checked_rows(_text_records(path, fmt), columns, path)
    return Events(table, tuple(bad), table.num_rows + len(bad))


def _read_parquet(path: str, columns: list[Column], skip_bad: bool) -> Events:
    """Parquet, with the string columns kept dictionary-encoded as stored, so nothing
    downstream hashes every row again: request ids are grouped by unifying the per-row-group
    dictionaries (the distinct ids of each row group; :func:`write_events` lays row groups
    out so they hold whole requests and stay dictionary-encoded)."""
    try:
        present = set(pq.read_schema(path).names)
        table = pq.read_table(path, read_dictionary=[n for n in _DICTIONARY_READ
                                                     if n in present])
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:  # corrupt metadata too
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from None
    ok = pa.array(np.ones(table.num_rows, dtype=bool))
    reasons: list[tuple[pa.Array, str]] = []  # (row mask, why): only checks that can fail
    for col in columns:
        if col.name not in table.column_names:
            raise InputError(f"{path}: required field '{col.name}' is missing")
        arr = table.column(col.name)
        if col.kind == "int64" and pa.types.is_floating(arr.type):
            frac = pc.not_equal(pc.floor(arr), arr)
            reasons.append((frac.combine_chunks(), f"field '{col.name}' must be int64"))
            arr = pc.floor(arr)
        target = (pa.int64() if col.kind == "int64" else
                  pa.float64() if col.kind == "float64" else pa.string())
        if col.kind == "string" and pa.types.is_dictionary(arr.type):
            target = pa.dictionary(arr.type.index_type, pa.string())
        try:
            cast = arr.cast(target, safe=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            raise InputError(f"{path}: field '{col.name}' must be {col.kind} ({exc})") from None
        if cast.null_count:
            reasons.append((pc.is_null(cast).combine_chunks(), f"field '{col.name}' is missing"))
        lowest = pc.min(cast).as_py() if col.nonnegative and len(cast) else None
        if lowest is not None and lowest < 0:
            neg = pc.fill_null(pc.less(cast, 0), False).combine_chunks()
            reasons.append((neg, f"field '{col.name}' must be >= 0"))
        table = table.set_column(table.column_names.index(col.name), col.name, cast)
    bad: list[BadRecord] = []
    for mask, reason in reasons:
        mask = pc.fill_null(mask, False)
        ok = pc.and_(ok, pc.invert(mask))
        for row in pc.indices_nonzero(mask).to_pylist():
            bad.append(BadRecord(f"{path}: row {row}", reason))
    bad.sort(key=lambda b: int(b.where.rsplit(" ", 1)[1]))
    if bad and not skip_bad:
        raise InputError(str(bad[0]))
    table = _join_request_dictionaries(path, table)
    return Events(table.filter(ok) if bad else table, tuple(bad), table.num_rows)


def _join_request_dictionaries(path: str, table: pa.Table) -> pa.Table:
    """A file written by :func:`~._storage.write_events` keeps each request in one row group
    and says so in its metadata: then the row groups' request-id dictionaries share no
    value, and are joined into one without hashing a single id (the column is marked
    :data:`~._arrow.UNIQUE_DICTIONARY` for :func:`~._arrow.dictionary_codes`)."""
    claim = (table.schema.metadata or {}).get(WHOLE_REQUESTS_KEY.encode())
    if claim is None or "request_id" not in table.column_names:
        return table
    try:
        sizes = json.loads(claim)
        meta = pq.read_metadata(path)
    except (ValueError, pa.ArrowException, OSError):
        return table  # an unreadable claim is no claim: the ids get hashed
    actual = [meta.row_group(k).num_rows for k in range(meta.num_row_groups)]
    if sizes != actual:  # rewritten with other row groups: not trusted
        return table
    joined = join_disjoint_dictionaries(table.column("request_id"), actual)
    if joined is None:
        return table
    field = pa.field("request_id", joined.type, metadata={UNIQUE_DICTIONARY: b"1"})
    return table.set_column(table.column_names.index("request_id"), field, joined)


def read_events_file(
    path: str | os.PathLike[str],
    skip_bad: bool = False,
    columns: list[Column] | None = None,
) -> Events:
    """Read one events file; see the module docstring for how malformed records are handled."""
    name = str(path)
    cols = EVENT_COLUMNS if columns is None else columns
    if file_format(name) == "parquet":
        if not os.path.isfile(name):
            raise InputError(f"{name}: no such file")
        return _read_parquet(name, cols, skip_bad)
    try:
        table = read_rows(name, cols)
        return Events(table, (), table.num_rows)
    except InputError:
        if not skip_bad:
            raise
    try:
        return _tolerant_text(name, file_format(name), cols)
    except UnicodeDecodeError as exc:
        raise InputError(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def concat_events(parts: Iterable[Events]) -> Events:
    """One :class:`Events` from several (context columns unified, missing ones null)."""
    items = list(parts)
    tables = [p.table for p in items if p.table.num_rows]
    if not tables:
        table = items[0].table if items else pa.table(
            {c.name: pa.array([], type=pa.int64() if c.kind == "int64" else pa.string())
             for c in EVENT_COLUMNS})
    else:
        table = pa.concat_tables(tables, promote_options="permissive")
    bad = tuple(b for p in items for b in p.bad)
    return Events(table, bad, sum(p.records for p in items))
