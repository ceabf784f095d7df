"""The collector's raw layer: journal, rotation into whole-request Parquet segments,
retention, crash recovery and errors, on real files."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from clocksync import InputError
from clocksync.collector import RawLayer, _raw
from clocksync.latency import read_inputs, write_events

ROOT = Path(__file__).resolve().parents[2]
T0_S = 1_740_830_400.0  # 2025-03-01T12:00:00Z


@pytest.fixture(autouse=True, scope="module")
def _warm(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The first Parquet write in a process costs about 1 s (pyarrow initialises lazily):
    paid once here, not by whichever test runs first."""
    write_events(batch(0, 2), tmp_path_factory.mktemp("warm") / "warm.parquet")


class Clock:
    """An injectable wall clock (s)."""

    def __init__(self, t_s: float = T0_S) -> None:
        self.t_s = t_s

    def __call__(self) -> float:
        return self.t_s


def inline(directory: Path, clock: Clock, **options: Any) -> RawLayer:
    """A layer that compacts in the call that rotates (no worker thread)."""
    return RawLayer(directory, now_s=clock, compact_in_background=False, **options)


def batch(first: int, n: int, **extra: Callable[[int], Any]) -> pa.Table:
    """``n`` events of requests ``first // 2`` on (two stages each), with extra columns."""
    rows = range(first, first + n)
    cols: dict[str, Any] = {
        "request_id": [f"r{i // 2}" for i in rows],
        "stage": ["in" if i % 2 == 0 else "out" for i in rows],
        "node": [f"n{i % 3}" for i in rows],
        "ts_ns": pa.array([1_000_000 + 10 * i for i in rows], pa.int64()),
    }
    for name, make in extra.items():
        cols[name.replace("__", ".")] = [make(i) for i in rows]
    return pa.table(cols)


def mixed_batches() -> list[pa.Table]:
    """Batches whose context columns differ (one dictionary-encoded)."""
    a = batch(0, 40, trace_id=lambda i: f"t{i // 2}", resolution_ns=lambda i: 1000)
    b = batch(40, 30, span_id=lambda i: f"s{i}", restate__invocation__target=lambda i: "svc/x")
    c = batch(70, 20, trace_id=lambda i: f"t{i // 2}", parent_span_id=lambda i: None)
    c = c.set_column(0, "request_id", c.column("request_id").dictionary_encode())
    return [a, b, c]


def as_rows(tables: list[pa.Table]) -> Counter[tuple[tuple[str, Any], ...]]:
    """Every row as a hashable record, nulls and absent columns alike left out."""
    out: Counter[tuple[tuple[str, Any], ...]] = Counter()
    for table in tables:
        for row in table.to_pylist():
            out[tuple(sorted((k, v) for k, v in row.items() if v is not None))] += 1
    return out


def read_back(paths: list[Path]) -> pa.Table:
    return read_inputs(paths).table


def files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_segments_read_back_identical(tmp_path: Path) -> None:
    batches = mixed_batches()
    layer = RawLayer(tmp_path / "raw", now_s=Clock())
    for b in batches:
        layer.append(b)
    assert layer.segments() == []  # nothing counts before a rotation
    assert layer.stats().journal_rows == 90
    layer.close()
    layer.close()  # idempotent
    segments = layer.segments()
    assert [p.name for p in segments] == ["events-20250301T120000Z-00000001.parquet"]
    assert files(tmp_path / "raw") == [segments[0].name]  # no journal, no temporary file
    table = read_back(segments)
    assert as_rows([table]) == as_rows(batches)
    assert table.schema.field("resolution_ns").type == pa.int64()
    stats = layer.stats()
    assert (stats.segments, stats.rows_written, stats.rotations, stats.journal_rows) == \
        (1, 90, 1, 0)
    assert stats.bytes == segments[0].stat().st_size
    with pytest.raises(ValueError, match="after close"):
        layer.append(batches[0])


def test_segments_hold_whole_requests(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from clocksync.latency._storage import WHOLE_REQUESTS_KEY

    with RawLayer(tmp_path, now_s=Clock()) as layer:
        layer.append(batch(0, 10))
    meta = pq.read_metadata(layer.segments()[0]).metadata
    assert WHOLE_REQUESTS_KEY.encode() in meta


def test_rotation_by_size(tmp_path: Path) -> None:
    clock = Clock()
    layer = RawLayer(tmp_path, max_segment_bytes=4096, now_s=clock)
    batches = [batch(100 * k, 100) for k in range(6)]
    for b in batches:
        clock.t_s += 1.5
        layer.append(b)
    layer.close()
    names = [p.name for p in layer.segments()]
    assert len(names) >= 3 and names == sorted(names)
    assert names[0].startswith("events-20250301T120001Z-")
    assert as_rows([read_back(layer.segments())]) == as_rows(batches)


def test_rotation_by_age(tmp_path: Path) -> None:
    clock = Clock()
    layer = inline(tmp_path, clock, max_segment_age_s=10.0)
    layer.append(batch(0, 10))
    clock.t_s += 9.0
    layer.maybe_rotate()
    assert layer.segments() == []
    layer.append(batch(10, 10))
    clock.t_s += 1.0
    layer.maybe_rotate()  # the first row arrived 10 s ago
    assert [p.name for p in layer.segments()] == ["events-20250301T120000Z-00000001.parquet"]
    clock.t_s += 5.0
    layer.append(batch(20, 10))
    clock.t_s += 10.0
    layer.append(batch(30, 10))  # an append rotates too
    assert len(layer.segments()) == 2
    assert layer.segments()[1].name == "events-20250301T120015Z-00000002.parquet"
    layer.close()
    assert as_rows([read_back(layer.segments())]) == as_rows([batch(0, 40)])


def test_retention_by_age(tmp_path: Path) -> None:
    clock = Clock()
    layer = inline(tmp_path, clock, max_segment_age_s=10.0, retention_s=100.0)
    for k in range(5):
        layer.append(batch(10 * k, 10))
        clock.t_s += 30.0
        layer.maybe_rotate()
    # segments end at T0, T0+30, ... T0+120; now is T0+150: the first two are past 100 s
    assert [p.name[16:30] for p in layer.segments()] == ["120100Z-000000", "120130Z-000000",
                                                        "120200Z-000000"]
    assert layer.stats().deleted == 2
    layer.close()
    reopened = RawLayer(tmp_path, retention_s=50.0, now_s=clock)  # retention on open too
    assert len(reopened.segments()) == 1


def test_retention_by_bytes_never_the_journal(tmp_path: Path) -> None:
    clock = Clock()
    layer = inline(tmp_path, clock, max_segment_age_s=1.0, retention_s=None)
    for k in range(4):
        layer.append(batch(10 * k, 10))
        clock.t_s += 1.0
        layer.maybe_rotate()
    sizes = [p.stat().st_size for p in layer.segments()]
    layer.close()
    limited = RawLayer(tmp_path, retention_bytes=sizes[-1] + sizes[-2], retention_s=None,
                       now_s=clock)
    assert [p.name for p in limited.segments()] == [p.name for p in layer.segments()[2:]]
    limited.append(batch(100, 10))
    limited.retention_bytes = 0
    limited.maybe_rotate()
    assert limited.segments() == [] and limited.stats().journal_rows == 10
    assert limited.stats().deleted == 4
    limited.close()


CHILD = textwrap.dedent("""
    import sys
    import pyarrow as pa
    from clocksync.collector import RawLayer
    layer = RawLayer(sys.argv[1], fsync_interval_s=3600.0)
    for k in range(int(sys.argv[2])):
        layer.append(pa.table({"request_id": [f"r{k}"] * 2, "stage": ["in", "out"],
                               "node": ["a", "b"], "ts_ns": pa.array([k, k + 5], pa.int64()),
                               "k": [k, k]}))
    print("appended", flush=True)
    sys.stdin.read()
""")


@pytest.mark.slow
def test_kill_9_loses_nothing_appended(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path), "50"], cwd=ROOT,
                          env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          text=True) as child:
        assert child.stdout is not None
        assert child.stdout.readline() == "appended\n"
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert [n.endswith(".journal") for n in files(tmp_path)] == [True]
    layer = RawLayer(tmp_path)
    assert layer.stats().recovered == 100 and layer.stats().rotations == 1
    assert files(tmp_path) == [p.name for p in layer.segments()]
    assert sorted(read_back(layer.segments()).column("k").to_pylist()) == \
        sorted(k for k in range(50) for _ in range(2))


def _journal_copy(tmp_path: Path, batches: list[pa.Table]) -> tuple[Path, Path]:
    """A journal as an open layer has it (copied aside: a crash's leftover), and its copy."""
    layer = RawLayer(tmp_path / "live", now_s=Clock())
    for b in batches:
        layer.append(b)
    [journal] = (tmp_path / "live").iterdir()
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    copy = crashed / journal.name
    copy.write_bytes(journal.read_bytes())
    layer.close()
    return journal, copy


@pytest.mark.parametrize("cut", [1, 7, 300])
def test_torn_last_record_is_dropped(tmp_path: Path, cut: int,
                                     caplog: pytest.LogCaptureFixture) -> None:
    batches = [batch(0, 10), batch(10, 20, trace_id=lambda i: "t"), batch(30, 30)]
    _, copy = _journal_copy(tmp_path, batches)
    whole = copy.stat().st_size
    os.truncate(copy, whole - cut)
    layer = RawLayer(copy.parent, now_s=Clock())
    assert as_rows([read_back(layer.segments())]) == as_rows(batches[:2])
    stats = layer.stats()
    assert stats.recovered == 30 and stats.dropped_bytes > 0
    assert "offset" in caplog.text and str(copy) in caplog.text
    assert files(copy.parent) == [copy.with_suffix(".parquet").name]


def test_corrupt_record_keeps_the_ones_before(tmp_path: Path) -> None:
    batches = [batch(0, 10), batch(10, 10), batch(20, 10)]
    _, copy = _journal_copy(tmp_path, batches)
    data = bytearray(copy.read_bytes())
    data[-5] ^= 0xFF  # the last record's payload: its CRC fails
    copy.write_bytes(bytes(data))
    layer = RawLayer(copy.parent, now_s=Clock())
    assert as_rows([read_back(layer.segments())]) == as_rows(batches[:2])


def test_journal_beside_its_segment_is_dropped(tmp_path: Path) -> None:
    """A crash between the rename and the journal's delete: the segment wins."""
    journal, copy = _journal_copy(tmp_path, [batch(0, 10)])
    segment = journal.with_suffix(".parquet")
    (copy.parent / segment.name).write_bytes(segment.read_bytes())
    (copy.parent / f".{segment.name}.abc123.tmp").write_bytes(b"half")
    layer = RawLayer(copy.parent, now_s=Clock())
    assert files(copy.parent) == [segment.name]
    assert layer.stats().recovered == 0
    assert as_rows([read_back(layer.segments())]) == as_rows([batch(0, 10)])
    layer.append(batch(10, 2))  # numbering goes on after what is on disk
    layer.close()
    assert layer.segments()[-1].name.endswith("-00000002.parquet")


def test_conflicting_column_types_start_a_new_segment(tmp_path: Path) -> None:
    layer = RawLayer(tmp_path, now_s=Clock())
    layer.append(batch(0, 4, attempt=lambda i: i))
    layer.append(batch(4, 4, attempt=lambda i: f"#{i}"))
    layer.close()
    first, second = layer.segments()
    assert read_back([first]).schema.field("attempt").type == pa.int64()
    assert read_back([second]).schema.field("attempt").type == pa.string()


def test_bad_batches(tmp_path: Path) -> None:
    layer = RawLayer(tmp_path, now_s=Clock())
    with pytest.raises(InputError, match="'node'"):
        layer.append(batch(0, 2).drop_columns(["node"]))
    with pytest.raises(InputError, match="'ts_ns' must be int64"):
        layer.append(batch(0, 2).set_column(3, "ts_ns", pa.array([1.0, 2.0])))
    layer.append(batch(0, 0))
    layer.close()
    assert layer.segments() == [] and files(tmp_path) == []


def test_vanished_directory_names_the_path(tmp_path: Path) -> None:
    """Works as root too: no permission bits involved."""
    data = tmp_path / "raw"
    layer = RawLayer(data, now_s=Clock())
    data.rmdir()
    with pytest.raises(OSError, match=str(data)) as info:
        layer.append(batch(0, 2))
    assert info.value.errno == errno.ENOENT
    with pytest.raises(OSError, match=str(tmp_path / "file")):
        (tmp_path / "file").write_text("")
        RawLayer(tmp_path / "file" / "raw")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only directories")
def test_read_only_directory_names_the_path(tmp_path: Path) -> None:
    layer = RawLayer(tmp_path, now_s=Clock())
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(OSError, match=str(tmp_path)):
            layer.append(batch(0, 2))
    finally:
        tmp_path.chmod(0o755)


def test_disk_full_mid_record_stores_nothing_of_it(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    layer = RawLayer(tmp_path, now_s=Clock())
    layer.append(batch(0, 10))
    real = os.writev

    def full(fd: int, parts: list[memoryview]) -> int:
        real(fd, [parts[0][:5]])  # a torn header reaches the file, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_raw.os, "writev", full)
    with pytest.raises(OSError, match=r"\.journal") as info:
        layer.append(batch(10, 10))
    assert info.value.errno == errno.ENOSPC
    monkeypatch.setattr(_raw.os, "writev", real)
    layer.append(batch(20, 10))
    layer.close()
    assert as_rows([read_back(layer.segments())]) == as_rows([batch(0, 10), batch(20, 10)])
    assert layer.stats().rows_written == 20


@pytest.mark.parametrize("background", [False, True])
def test_failed_compaction_keeps_the_journal(tmp_path: Path, background: bool,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    layer = RawLayer(tmp_path, now_s=Clock(), compact_in_background=background)
    layer.append(batch(0, 10))

    def full(table: pa.Table, path: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_raw, "write_events", full)
    with pytest.raises(OSError, match=r"\.journal"):
        layer.close()
    assert [n.endswith(".journal") for n in files(tmp_path)] == [True]
    monkeypatch.undo()
    layer.close()  # retried
    assert as_rows([read_back(layer.segments())]) == as_rows([batch(0, 10)])
    assert files(tmp_path) == [p.name for p in layer.segments()]


def test_maybe_rotate_reports_a_failed_background_compaction(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    layer = RawLayer(tmp_path, max_segment_age_s=1.0, now_s=clock)
    failed = threading.Event()

    def full(table: pa.Table, path: Path) -> None:
        failed.set()
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_raw, "write_events", full)
    layer.append(batch(0, 10))
    clock.t_s += 1.0
    layer.append(batch(10, 10))  # rotates: the worker fails
    assert failed.wait(5.0)
    for _ in range(100):  # the worker records the error just after raising it
        try:
            layer.maybe_rotate()
        except OSError as exc:
            assert ".journal" in str(exc)
            break
        time.sleep(0.01)
    else:
        pytest.fail("maybe_rotate never reported the failure")
    monkeypatch.undo()
    layer.close()
    assert as_rows([read_back(layer.segments())]) == as_rows([batch(0, 20)])


def test_background_compaction_under_load(tmp_path: Path) -> None:
    """Many rotations by size while appends go on: every row lands in a segment, once."""
    layer = RawLayer(tmp_path, max_segment_bytes=20_000)
    batches = [batch(200 * k, 200, trace_id=lambda i: f"t{i // 2}") for k in range(30)]
    for b in batches:
        layer.append(b)
    layer.close()
    assert layer.stats().rotations >= 10
    assert as_rows([read_back(layer.segments())]) == as_rows(batches)
    assert files(tmp_path) == sorted(p.name for p in layer.segments())
