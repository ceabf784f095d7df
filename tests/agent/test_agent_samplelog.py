"""The sample log: a JSONL journal for the open segment, Parquet for closed ones (delta
timestamps, zstd, written by a child process), rotation, retention, resume, torn journal
lines cut off and torn segments skipped with a warning."""

from __future__ import annotations

import json
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


@pytest.mark.slow
def test_segments_rotate_encode_and_resume(tmp_path: Path) -> None:
    log = SampleLog(tmp_path, "n1", segment_samples=10, keep_samples=25)
    written = _samples(34)
    log.append(written)
    log.flush()
    assert [p.name for p in log.segments] == [
        *(f"seg-0000000{i}.parquet" for i in range(1, 4)), "seg-00000004.jsonl"]
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
    # the short newest journal is continued, not left behind
    again.append(_samples(3, start_s=100))
    again.flush()
    assert [p.name for p in again.segments][-1] == "seg-00000004.jsonl"
    assert len(read_samples(again.segments[-1])) == 7
    # filling it compacts it to Parquet and opens the next journal
    again.append(_samples(4, start_s=200))
    again.flush()
    assert [p.name for p in again.segments][-2:] == ["seg-00000004.parquet",
                                                    "seg-00000005.jsonl"]
    assert not (tmp_path / "seg-00000004.jsonl").exists()
    assert len(read_samples(tmp_path / "seg-00000004.parquet")) == 10


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


@pytest.mark.slow
def test_torn_segment_is_skipped_with_a_warning(tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    log = SampleLog(tmp_path, "n1", segment_samples=10)
    log.append(_samples(30))
    log.flush()
    torn = log.segments[1]
    assert torn.suffix == ".parquet"
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
    assert again.segments[-1].name == "seg-00000004.jsonl"  # full segments stay closed
    assert len(read_samples(again.segments[-1])) == 2


def test_torn_journal_line_is_cut_off(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    log = SampleLog(tmp_path, "n1", segment_samples=100)
    written = _samples(5)
    log.append(written[:3])
    log.flush()
    log.append(written[3:])
    log.flush()
    journal = log.segments[-1]
    data = journal.read_bytes()
    journal.write_bytes(data[: len(data) - 17])  # a crash in the middle of the last append
    with caplog.at_level(logging.WARNING, logger="clocksync.agent"):
        again = SampleLog(tmp_path, "n1", segment_samples=100)
    assert "torn last line" in caplog.text
    assert [s.t_local_ns for s in again.recent(1e9, 100)] == [s.t_local_ns for s in written[:4]]
    again.append(_samples(1, start_s=50))
    again.flush()  # appends after the cut, never onto half a line
    assert len(read_samples(journal)) == 5


def test_crash_between_compaction_and_journal_delete(tmp_path: Path) -> None:
    log = SampleLog(tmp_path, "n1", segment_samples=4)
    log.append(_samples(6))
    log.flush()
    parquet = tmp_path / "seg-00000001.parquet"
    assert parquet.exists()
    # as if the agent died after the Parquet rename but before deleting the journal
    (tmp_path / "seg-00000001.jsonl").write_text(
        "".join(json.dumps({"node": "n1", "t_local_ns": s.t_local_ns, "offset_ns": s.offset_ns,
                            "delay_ns": s.delay_ns, "bound_ns": s.bound, "source": s.source})
                + "\n" for s in _samples(6)[:4]))
    again = SampleLog(tmp_path, "n1", segment_samples=4)
    assert not (tmp_path / "seg-00000001.jsonl").exists()
    assert [s.t_local_ns for s in again.recent(1e9, 100)] == [s.t_local_ns for s in _samples(6)]


def test_failed_compaction_keeps_the_journal(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from clocksync.agent import _segments  # the private module whose child is made to fail

    def broken(journal: Path, segment: Path) -> None:
        raise OSError("sample log: compact failed: No space left on device")

    log = SampleLog(tmp_path, "n1", segment_samples=4)
    with monkeypatch.context() as patch:
        patch.setattr(_segments, "compact", broken)
        log.append(_samples(6))
        log.flush()  # durable in the journals; compaction deferred, not an error
    assert [p.name for p in log.segments] == ["seg-00000001.jsonl", "seg-00000002.jsonl"]
    log.flush()  # the child works again: compacted now
    assert [p.name for p in log.segments] == ["seg-00000001.parquet", "seg-00000002.jsonl"]
    assert len(read_samples(log.segments[0])) == 4
