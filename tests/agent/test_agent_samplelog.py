"""The sample log: Parquet segments (delta timestamps, zstd), rotation, retention, resume,
torn segments skipped with a warning."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from clocksync import Sample, read_samples
from clocksync.agent import SampleLog

T0 = 1_767_225_600 * 10**9


def _samples(n: int, start_s: float = 0.0, step_s: float = 1.0, node: str = "n1") -> list[Sample]:
    rng = np.random.default_rng(int(start_s) + n)
    return [Sample(node, T0 + int((start_s + i * step_s) * 1e9), float(rng.normal(0, 500)),
                   40_000.0, source="ntp:test:123") for i in range(n)]


def test_segments_rotate_encode_and_resume(tmp_path: Path) -> None:
    log = SampleLog(tmp_path, "n1", segment_samples=10, keep_samples=25)
    written = _samples(34)
    log.append(written)
    log.flush()
    assert [p.name for p in log.segments] == [f"seg-0000000{i}.parquet" for i in range(1, 5)]
    meta = pq.read_metadata(log.segments[0])
    chunk = meta.row_group(0).column(meta.schema.to_arrow_schema().get_field_index("t_local_ns"))
    assert "DELTA_BINARY_PACKED" in chunk.encodings
    assert chunk.compression == "ZSTD"
    on_disk = np.concatenate([read_samples(p).t_local_ns for p in log.segments])
    assert on_disk.tolist() == [s.t_local_ns for s in written]

    again = SampleLog(tmp_path, "n1", segment_samples=10, keep_samples=25)
    assert again.resumed >= 25
    recent = again.recent(window_s=1e9, max_samples=25)
    assert [s.t_local_ns for s in recent] == [s.t_local_ns for s in written[-25:]]
    assert recent[-1].offset_ns == written[-1].offset_ns
    assert recent[-1].bound == pytest.approx(written[-1].bound)
    # the short newest segment is continued, not left behind
    again.append(_samples(3, start_s=100))
    again.flush()
    assert len(again.segments) == 4
    assert len(read_samples(again.segments[-1])) == 7


def test_recent_window_by_time_and_count(tmp_path: Path) -> None:
    log = SampleLog(tmp_path, "n1", keep_samples=100)
    log.append(_samples(50, step_s=10.0))
    assert len(log.recent(window_s=95.0, max_samples=100)) == 10  # 90 s span + the newest
    assert len(log.recent(window_s=1e6, max_samples=7)) == 7
    with pytest.raises(ValueError, match="sample of 'other'"):
        log.append(_samples(1, node="other"))


def test_retention_deletes_old_segments(tmp_path: Path) -> None:
    log = SampleLog(tmp_path, "n1", segment_samples=10, retention_s=60.0)
    log.append(_samples(20, step_s=1.0))          # two segments around t = 0..19 s
    log.append(_samples(15, start_s=500.0))        # far later
    log.flush()
    names = [p.name for p in log.segments]
    assert "seg-00000001.parquet" not in names and "seg-00000002.parquet" not in names
    assert not (tmp_path / "seg-00000001.parquet").exists()
    assert len(names) == 2


def test_torn_segment_is_skipped_with_a_warning(tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    log = SampleLog(tmp_path, "n1", segment_samples=10)
    log.append(_samples(30))
    log.flush()
    torn = log.segments[1]
    torn.write_bytes(torn.read_bytes()[: 200])  # a crash mid-copy, or disk corruption
    with caplog.at_level(logging.WARNING, logger="clocksync.agent"):
        again = SampleLog(tmp_path, "n1", segment_samples=10)
    assert torn in again.skipped_segments
    assert any(str(torn) in r.getMessage() for r in caplog.records)
    kept = [s.t_local_ns for s in again.recent(1e9, 1000)]
    assert kept == [s.t_local_ns for s in _samples(30)[:10] + _samples(30)[20:]]
    again.append(_samples(2, start_s=1000))
    again.flush()
    assert torn.exists()  # left for inspection, never overwritten
    assert again.segments[-1].name == "seg-00000004.parquet"  # full segments stay closed
    assert len(read_samples(again.segments[-1])) == 2
