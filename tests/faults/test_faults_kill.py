"""Fault: the agent is killed with SIGKILL at random moments (often mid-write), restarted.

``clocksync agent run`` runs as its own process at a fast poll (20-50 ms), refitting and
flushing its sample log as often as it can, rotating segments every 10 samples, and is
killed with ``kill -9`` many times. After each kill:

* every segment on disk reads back whole (writes are atomic: temporary file, fsync,
  rename) and the published table parses and validates;
* nothing that was once on disk is lost: the log before the kill is a prefix of the log
  after it (the restarted agent continues the short newest segment, never loses it);
* the flush policy holds: the log is flushed before each refit publishes, so the published
  table never covers a sample that is not on disk — a kill loses at most the samples taken
  since the last flush (those of one refit interval);
* temporary files of interrupted writes are removed by the next start.

Now and then a segment is also truncated by hand (a torn copy, disk corruption): the next
start warns, ignores it, leaves it in place, and carries on.
"""

from __future__ import annotations

import functools
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clocksync import CorrectionTable, read_samples
from clocksync.agent import segment_files
from clocksync.ntp import NtpServer

from ._agentrig import wait_for

KILLS = 10
ROOT = Path(__file__).parents[2]


def _start(data: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", "from clocksync.cli import main; main()", "agent", "run",
         "--node", "k1", "--ntp-server", f"127.0.0.1:{port}", "--data-dir", str(data),
         "--http", "", "--min-poll-s", "20ms", "--max-poll-s", "50ms", "--burst", "2",
         "--timeout-s", "0.2", "--burst-interval-s", "0", "--refit-min-s", "0.05",
         "--fit-cpu-share", "1",
         "--segment-samples", "10", "--window-samples", "60", "--log-level", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)


def _log(samples_dir: Path, torn: dict[Path, int]) -> list[int]:
    """Every sample's local time on disk, in segment order; every segment must read."""
    times: list[int] = []
    for path in segment_files(samples_dir):  # journals too: they hold the newest samples
        if path in torn:
            continue
        times += [int(t) for t in read_samples(path).t_local_ns]
    return times


def _flushed_more(proc: subprocess.Popen[bytes], samples_dir: Path, torn: dict[Path, int],
                  had: int) -> bool:
    assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
    try:
        return len(_log(samples_dir, torn)) > had + 2
    except (OSError, ValueError):  # a segment being replaced right now
        return False


@pytest.mark.slow
def test_sigkill_during_writes_loses_nothing_durable(tmp_path: Path,
                                                     ntp_server: NtpServer) -> None:
    rng = random.Random(6)
    data = tmp_path / "data"
    samples_dir, table_file = data / "samples", data / "tables" / "k1.table.json"
    before: list[int] = []
    torn: dict[Path, int] = {}  # segments truncated by hand -> their size
    newly_torn: list[Path] = []
    leftovers = 0
    grown = 0
    for round_ in range(KILLS + 1):
        proc = _start(data, ntp_server.port)
        try:
            wait_for(functools.partial(_flushed_more, proc, samples_dir, torn, len(before)),
                     30, "the restarted agent flushing new samples")
            time.sleep(rng.uniform(0.0, 0.5))
            if round_ == KILLS:  # the last run ends cleanly: SIGTERM, exit 0
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(20) == 0
            else:
                proc.kill()
                proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            assert proc.stderr is not None
            err = proc.stderr.read().decode(errors="replace")
            proc.stderr.close()
        for path in newly_torn:  # the start warned about it by name
            assert f"ignoring unreadable segment {path}" in err, err[-2000:]
        assert "Traceback" not in err, err[-3000:]
        # what a crash can leave: temporary files of an interrupted atomic write
        leftovers += len(list(samples_dir.glob(".seg-*.tmp")))
        after = _log(samples_dir, torn)  # every segment reads back whole
        assert after[: len(before)] == before, "a sample that was on disk is gone"
        assert after == sorted(after) and len(set(after)) == len(after)
        grown += len(after) - len(before)
        table = CorrectionTable.from_json(table_file.read_bytes(), source=str(table_file))
        assert table.node == "k1"
        last = table.last_sample_local_ns
        assert last is not None and last in set(after), \
            "the published table covers a sample that is not on disk"
        before = after
        newly_torn = []
        if round_ % 4 == 3:  # a torn copy of the newest closed segment: ignored, warned
            newest = sorted(samples_dir.glob("seg-*.parquet"))[-1]
            newest.write_bytes(newest.read_bytes()[: rng.randrange(1, newest.stat().st_size)])
            torn[newest] = newest.stat().st_size
            newly_torn.append(newest)
            before = _log(samples_dir, torn)
    assert grown > 3 * KILLS
    assert not list(samples_dir.glob(".seg-*.tmp"))  # removed by the last start
    for path, size in torn.items():  # left in place for inspection, never overwritten
        assert path.stat().st_size == size
    print(f"{KILLS} kills: {leftovers} left a temporary file (killed mid-write); "
          f"{len(torn)} segments torn by hand and ignored; {len(before)} samples on disk")
