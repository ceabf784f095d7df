"""Parquet work of the sample log, run in a short-lived child process.

The agent keeps pyarrow (about 45 MB resident with its Parquet and compute modules) out of
its own long-running process: it writes its open segment as a JSONL journal and asks
``python -m clocksync.agent._segments`` to do the two Parquet jobs, each a few times a day:

* ``compact SRC.jsonl DST.parquet`` — a full journal becomes a Parquet segment (columns of
  :class:`clocksync.Sample`, ``t_local_ns`` delta-encoded, zstd), written atomically; the
  caller then deletes the journal;
* ``scan NODE NEED PATH...`` — on start: the newest local time of each Parquet segment (for
  retention) and, newest segment first, the samples of ``NODE`` until ``NEED`` are found
  (the history to resume). Prints one JSON document; unreadable segments are reported with
  the reason, never fatal.

:func:`compact` and :func:`scan` are the parent's side; they raise :class:`OSError` when the
child fails (the journal stays on disk: nothing is lost, the next flush retries).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["ScanResult", "compact", "main", "scan"]

#: longest a child may take (s): it reads or writes at most a few thousand rows
CHILD_TIMEOUT_S = 120.0

ScanResult = dict[str, Any]


def _run(args: Sequence[str]) -> str:
    try:
        done = subprocess.run([sys.executable, "-m", "clocksync.agent._segments", *args],
                              capture_output=True, text=True, timeout=CHILD_TIMEOUT_S,
                              check=False)
    except subprocess.TimeoutExpired:
        raise OSError(f"sample log: Parquet child timed out after {CHILD_TIMEOUT_S:g} s "
                      f"({args[0]})") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise OSError(f"sample log: {args[0]} failed: {last}")
    return done.stdout


def compact(journal: Path, segment: Path) -> None:
    """Write ``journal``'s samples to the Parquet file ``segment`` (atomically)."""
    _run(["compact", str(journal), str(segment)])


def scan(node: str, need: int, paths: Sequence[Path]) -> ScanResult:
    """``{"last": {path: t | None}, "errors": {path: reason}, "rows": {path: [[t, offset,
    delay, bound, source], ...]}}`` for the Parquet segments ``paths`` (oldest first)."""
    if not paths:
        return {"last": {}, "errors": {}, "rows": {}}
    out: ScanResult = json.loads(_run(["scan", node, str(need), *map(str, paths)]))
    return out


# -- the child ----------------------------------------------------------------------------------
def _last_t(path: str) -> int | None:
    import pyarrow.parquet as pq

    meta = pq.read_metadata(path)
    col = meta.schema.to_arrow_schema().get_field_index("t_local_ns")
    stats = [meta.row_group(i).column(col).statistics for i in range(meta.num_row_groups)]
    values = [int(s.max) for s in stats if s is not None and s.has_min_max]
    return max(values) if values else None


def _scan(node: str, need: int, paths: list[str]) -> ScanResult:
    from .._io._samplefile import read_samples

    result: ScanResult = {"last": {}, "errors": {}, "rows": {}}
    for path in paths:
        try:
            result["last"][path] = _last_t(path)
        except Exception as exc:  # pyarrow raises several types for torn files
            result["errors"][path] = str(exc)
    for path in reversed(paths):
        if need <= 0:
            break
        if path in result["errors"]:
            continue
        try:
            arr = read_samples(path)
        except Exception as exc:
            result["errors"][path] = str(exc)
            continue
        keep = arr.node == node
        rows = [[int(t), float(o), float(d), float(b), str(s)] for t, o, d, b, s in zip(
            arr.t_local_ns[keep], arr.offset_ns[keep], arr.delay_ns[keep], arr.bound_ns[keep],
            arr.source[keep], strict=True)]
        result["rows"][path] = rows
        need -= len(rows)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    from ._lean import lean_process

    lean_process()  # the child's transient peak stays small too
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args[:1] == ["compact"] and len(args) == 3:
            from .._io._samplefile import read_samples, write_samples

            write_samples(read_samples(args[1]), args[2])
            return 0
        if args[:1] == ["scan"] and len(args) >= 3:
            json.dump(_scan(args[1], int(args[2]), args[3:]), sys.stdout)
            return 0
    except Exception as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print("usage: python -m clocksync.agent._segments compact SRC.jsonl DST.parquet | "
          "scan NODE NEED PATH...", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
