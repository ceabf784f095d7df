"""Row files (JSONL, CSV, Parquet, chosen by extension) in and out, with precise errors.

Readers return a :class:`pyarrow.Table` whose required columns have the declared types; any
other column is carried along as it is (context attributes). A bad value raises
:class:`InputError` naming the file, the line (JSONL, CSV) or row (Parquet) and the field.
Writers replace the target atomically; Parquet output uses zstd and delta-encodes the
integer timestamp columns.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .._model._errors import InputError
from ._atomic import atomic_path
from ._columns import Column

__all__ = ["Column", "file_format", "read_rows", "write_rows"]

#: a column of rows: their values (``None`` where a row has none), or an array of them
#: already of the table's type
Values: TypeAlias = list[Any] | pa.Array

_ARROW: dict[str, pa.DataType] = {
    "int64": pa.int64(), "float64": pa.float64(), "string": pa.string(),
}


def file_format(path: str | os.PathLike[str]) -> str:
    """``"jsonl"``, ``"csv"`` or ``"parquet"`` from the file name, else :class:`InputError`."""
    name = str(path).lower()
    for suffix, fmt in ((".jsonl", "jsonl"), (".ndjson", "jsonl"), (".json", "jsonl"),
                        (".csv", "csv"), (".parquet", "parquet"), (".pq", "parquet")):
        if name.endswith(suffix):
            return fmt
    raise InputError(f"{path}: unknown file type (use .jsonl, .csv or .parquet)")


def _convert(value: Any, col: Column, where: str) -> Any:
    """One cell to the column's Python type, or :class:`InputError` naming ``where``."""
    if value is None or (isinstance(value, str) and value == "" and col.kind != "string"):
        if col.required:
            raise InputError(f"{where}: field '{col.name}' is missing")
        return None
    try:
        if col.kind == "int64":
            if isinstance(value, bool):
                raise ValueError("boolean")
            if isinstance(value, float):
                if not value.is_integer():
                    raise ValueError("not an integer")
                out: Any = int(value)
            else:
                out = int(str(value).strip())
            if not -(1 << 63) <= out < (1 << 63):
                raise ValueError("beyond the int64 range")
        elif col.kind == "float64":
            if isinstance(value, bool):
                raise ValueError("boolean")
            out = float(value)
            if not math.isfinite(out):
                raise ValueError("not finite")
        else:
            out = str(value)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"{where}: field '{col.name}' must be {col.kind}, got {value!r} ({exc})"
        ) from None
    if col.nonnegative and out is not None and out < 0:
        raise InputError(f"{where}: field '{col.name}' must be >= 0, got {value!r}")
    return out


#: the Python type each column kind's values already have when no conversion is needed
_EXACT: dict[str, type] = {"int64": int, "float64": float, "string": str}


def _clean_column(values: Values, col: Column) -> pa.Array | None:
    """``values`` as the column's array when every value already is of its Python type (or
    ``None`` where allowed) and passes its checks, so that :func:`_convert` would return
    each unchanged; ``None`` when one needs :func:`_convert` (to convert it, or to name
    what is wrong). An array passes as it is when it has the column's type and passes its
    checks."""
    if isinstance(values, pa.Array):
        return values if _clean_array(values, col) else None
    exact = _EXACT[col.kind]
    if not set(map(type, values)) <= ({exact} if col.required else {exact, _NONE}):
        return None
    if col.kind == "string" and not col.nonnegative:
        return pa.array(values, type=pa.string())
    arr = np.asarray(values, dtype=np.int64 if col.kind == "int64" else np.float64) \
        if col.required else None
    if arr is None:
        return None  # optional numbers: rare, the general path
    if col.kind == "float64" and not np.isfinite(arr).all():
        return None
    if col.nonnegative and (arr < 0).any():
        return None
    return pa.array(arr)


def _clean_array(arr: pa.Array, col: Column) -> bool:
    """Whether ``arr`` is the column as :func:`_convert` would make it from its values: of
    the column's type, without nulls when required, finite and nonnegative when it must
    be."""
    import pyarrow.compute as pc

    if arr.type != _ARROW[col.kind] or (col.required and arr.null_count):
        return False
    if col.kind == "float64" and not pc.all(pc.is_finite(arr)).as_py():
        return False
    return not (col.nonnegative and arr.null_count < len(arr) and pc.min(arr).as_py() < 0)


_NONE = type(None)
#: context columns whose values are all of one of these types (or ``None``) are built as
#: that arrow type, which is what pyarrow infers for them
_INFERRED: dict[type, pa.DataType] = {str: pa.string(), int: pa.int64()}


def _extra_array(values: list[Any]) -> pa.Array:
    """A context column as pyarrow infers it; mixed types, or integers beyond int64, as
    their JSON text."""
    try:
        if _all_text(values):
            return pa.array(values, type=pa.string())
        types = set(map(type, values))
        types.discard(_NONE)
        if len(types) == 1 and (kind := _INFERRED.get(types.pop())) is not None:
            return pa.array(values, type=kind)
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.array([None if v is None else json.dumps(v) for v in values])


def _all_text(values: list[Any]) -> bool:
    """Whether every value is a ``str`` (of any subclass: pyarrow infers ``string`` for
    them all), checked by ``str.join``, which takes nothing else."""
    try:
        "".join(values)
    except TypeError:
        return False
    return True


def _fast_columns(values: Callable[[str], Values], columns: list[Column]
                  ) -> dict[str, pa.Array] | None:
    """The declared columns (``values(name)``: the column's value per row, ``None`` where a
    row has none) when none needs :func:`_convert` (else ``None``)."""
    out: dict[str, pa.Array] = {}
    for col in columns:
        got = values(col.name)
        if not col.required and _absent(got):
            continue
        try:
            arr = _clean_column(got, col)
        except OverflowError:  # an integer beyond int64
            return None
        if arr is None:
            return None
        out[col.name] = arr
    return out


def _absent(values: Values) -> bool:
    """Whether no row has a value."""
    if isinstance(values, pa.Array):
        return bool(values.null_count == len(values))
    return values.count(None) == len(values)


def _as_list(values: Values) -> list[Any]:
    """The values as a list."""
    return values.to_pylist() if isinstance(values, pa.Array) else values


def _empty_table(columns: list[Column]) -> pa.Table:
    return pa.table({c.name: pa.array([], type=_ARROW[c.kind]) for c in columns
                     if c.required})


def _columns_to_table(
    values: Mapping[str, Values], where: Callable[[], list[str]], columns: list[Column],
    path: str,
) -> pa.Table:
    """Rows given as columns (aligned lists, ``None`` where a row has no value, or arrays
    already of the table's type) as a table, exactly as :func:`_rows_to_table` makes it
    from the same rows: declared columns first, then the others in the order given (an
    array for one of those is taken as it is: it has the type pyarrow infers for its
    values). ``where`` gives each row's place for errors; it is only called when a value
    needs converting or is wrong."""
    n = len(next(iter(values.values()))) if values else 0
    if not n:
        return _empty_table(columns)
    fast = _fast_columns(lambda name: _or_none(values.get(name), n), columns)
    if fast is None:
        lists = {k: _as_list(v) for k, v in values.items()}
        rows = [{k: v[i] for k, v in lists.items() if v[i] is not None} for i in range(n)]
        return _rows_to_table_cells(rows, where(), columns, path)
    declared = {c.name for c in columns}
    for key, got in values.items():
        if key not in declared:
            fast[key] = got if isinstance(got, pa.Array) else _extra_array(got)
    return pa.table(fast)


def _or_none(values: Values | None, n: int) -> Values:
    """The values, or ``None`` for each of ``n`` rows when there are none."""
    return [None] * n if values is None else values


def _rows_to_table(
    rows: list[dict[str, Any]], where: list[str], columns: list[Column], path: str
) -> pa.Table:
    """The rows as a table: declared columns converted and checked (:class:`InputError`
    naming the row's ``where`` and the field), any other key a context column.

    Columns whose values need no conversion are built at once; the others cell by cell."""
    if not rows:
        return _empty_table(columns)
    fast = _fast_columns(lambda name: [row.get(name) for row in rows], columns)
    if fast is None:
        return _rows_to_table_cells(rows, where, columns, path)
    declared = {c.name for c in columns}
    for key in dict.fromkeys(k for row in rows for k in row):
        if key not in declared:
            fast[key] = _extra_array([row.get(key) for row in rows])
    return pa.table(fast)


def _rows_to_table_cells(
    rows: list[dict[str, Any]], where: list[str], columns: list[Column], path: str
) -> pa.Table:
    declared = {c.name: c for c in columns}
    data: dict[str, list[Any]] = {c.name: [] for c in columns}
    extras: dict[str, list[Any]] = {}
    for i, row in enumerate(rows):
        for col in columns:
            data[col.name].append(_convert(row.get(col.name), col, where[i]))
        for key, value in row.items():
            if key not in declared:
                extras.setdefault(key, [None] * i).append(value)
        for values in extras.values():
            if len(values) < i + 1:
                values.append(None)
    arrays: dict[str, pa.Array] = {}
    for col in columns:
        if col.required or any(v is not None for v in data[col.name]):
            arrays[col.name] = pa.array(data[col.name], type=_ARROW[col.kind])
    for key, values in extras.items():
        arrays[key] = _extra_array(values)
    return pa.table(arrays)


def _read_jsonl(path: str, columns: list[Column]) -> pa.Table:
    rows: list[dict[str, Any]] = []
    where: list[str] = []
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise InputError(f"{path}:{lineno}: expected a JSON object per line")
            rows.append(obj)
            where.append(f"{path}:{lineno}")
    return _rows_to_table(rows, where, columns, path)


def _read_csv(path: str, columns: list[Column]) -> pa.Table:
    rows: list[dict[str, Any]] = []
    where: list[str] = []
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None:
            raise InputError(f"{path}:1: empty file, expected a header line")
        for row in reader:
            if None in row:
                raise InputError(f"{path}:{reader.line_num}: more fields than the header has")
            rows.append({k: v for k, v in row.items() if k is not None})
            where.append(f"{path}:{reader.line_num}")
    return _rows_to_table(rows, where, columns, path)


def _fast_csv(path: str, columns: list[Column]) -> pa.Table | None:
    """pyarrow's CSV reader for large, clean files; ``None`` when the slow path must judge."""
    types = {c.name: _ARROW[c.kind] for c in columns}
    try:
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types=types))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None
    return table


def _check_arrow(table: pa.Table, columns: list[Column], path: str, row_base: int) -> pa.Table:
    """Cast declared columns and check them; errors name the row (``row_base`` = first row)."""
    import pyarrow.compute as pc

    for col in columns:
        if col.name not in table.column_names:
            if col.required:
                raise InputError(f"{path}: required field '{col.name}' is missing")
            continue
        arr = table.column(col.name)
        try:
            cast = arr.cast(_ARROW[col.kind])
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            raise InputError(f"{path}: field '{col.name}' must be {col.kind} ({exc})") from None
        if col.required and cast.null_count:
            row = pc.index(pc.is_null(cast), True).as_py()
            raise InputError(f"{path}: row {row + row_base}: field '{col.name}' is missing")
        if col.kind == "float64" and len(cast):
            bad = pc.invert(pc.is_finite(cast.fill_null(0.0)))
            if pc.any(bad).as_py():
                row = pc.index(bad, True).as_py()
                raise InputError(
                    f"{path}: row {row + row_base}: field '{col.name}' must be finite"
                )
        if col.nonnegative and len(cast):
            neg = pc.less(cast.fill_null(0), 0)
            if pc.any(neg).as_py():
                row = pc.index(neg, True).as_py()
                raise InputError(f"{path}: row {row + row_base}: field '{col.name}' must be >= 0")
        table = table.set_column(table.column_names.index(col.name), col.name, cast)
    return table


def read_rows(path: str | os.PathLike[str], columns: list[Column]) -> pa.Table:
    """Read a JSONL, CSV or Parquet file into a table with the declared column types."""
    name = str(path)
    fmt = file_format(name)
    if not Path(name).is_file():
        raise InputError(f"{name}: no such file")
    try:
        if fmt == "parquet":
            try:
                # ParquetFile, not read_table: the dataset layer it skips costs 12 MB RSS
                table = pq.ParquetFile(name).read()
            except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
                raise InputError(f"{name}: not a readable Parquet file ({exc})") from None
            return _check_arrow(table, columns, name, row_base=0)
        if fmt == "csv":
            fast = _fast_csv(name, columns)
            if fast is not None:
                try:
                    return _check_arrow(fast, columns, name, row_base=2)
                except InputError:
                    pass  # the slow reader names the line
            return _read_csv(name, columns)
        return _read_jsonl(name, columns)
    except UnicodeDecodeError as exc:
        raise InputError(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def write_rows(
    table: pa.Table,
    path: str | os.PathLike[str],
    delta_columns: tuple[str, ...] = (),
    row_group_rows: int | Sequence[int] | None = None,
    dictionary_page_bytes: int | None = None,
    metadata: dict[str, str] | None = None,
) -> None:
    """Write ``table`` to ``path`` (format from the extension), atomically.

    Parquet: zstd compression, dictionary encoding for strings, and ``DELTA_BINARY_PACKED``
    for the integer columns named in ``delta_columns`` (timestamps); ``row_group_rows``
    (one size, or the row count of each row group in turn, summing to the table's rows) and
    ``dictionary_page_bytes`` (above which a column chunk falls back to plain encoding)
    override pyarrow's defaults; ``metadata`` is added to the file's key-value metadata.
    """
    fmt = file_format(path)
    with atomic_path(path) as tmp:
        if fmt == "parquet":
            deltas = [c for c in delta_columns if c in table.column_names
                      and pa.types.is_integer(table.schema.field(c).type)]
            if metadata:
                table = table.replace_schema_metadata(
                    {**(table.schema.metadata or {}), **metadata})
            options: dict[str, Any] = {
                "compression": "zstd",
                "compression_level": 9,
                "use_dictionary": [c for c in table.column_names if c not in deltas],
                "column_encoding": dict.fromkeys(deltas, "DELTA_BINARY_PACKED") or None,
                "dictionary_pagesize_limit": dictionary_page_bytes,
            }
            if row_group_rows is None or isinstance(row_group_rows, int):
                pq.write_table(table, tmp, row_group_size=row_group_rows, **options)
            else:
                sizes = [int(n) for n in row_group_rows]
                if sum(sizes) != table.num_rows or any(n <= 0 for n in sizes):
                    raise ValueError(f"row group sizes {sizes[:5]}... do not split "
                                     f"{table.num_rows} rows")
                with pq.ParquetWriter(tmp, table.schema, **options) as writer:
                    at = 0
                    for n in sizes:
                        writer.write_table(table.slice(at, n), row_group_size=n)
                        at += n
        elif fmt == "csv":
            pacsv.write_csv(table, tmp)
        else:
            with open(tmp, "w", encoding="utf-8") as handle:
                for row in table.to_pylist():
                    handle.write(json.dumps(row, separators=(",", ":")) + "\n")

