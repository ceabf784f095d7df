"""The agent's sample log: Parquet segments on disk, the recent history in memory.

Layout: ``DIR/seg-00000001.parquet``, ``seg-00000002.parquet``, ... — the sample columns of
DESIGN.md (``t_local_ns`` delta-encoded, zstd; see :func:`clocksync.write_samples`), so
``clocksync fit DIR/seg-*.parquet`` refits a log offline. The newest segment is rewritten
atomically (temporary file, fsync, rename) on every :meth:`SampleLog.flush`; once it holds
``segment_samples`` rows the next sample opens a new one. Segments whose newest sample is
older than ``retention_s`` are deleted.

:meth:`SampleLog.append` never touches the disk: a rotated segment is queued and written by
the next :meth:`SampleLog.flush`, before the open one. A flush that fails (disk full,
read-only) raises ``OSError`` and keeps everything queued in memory; the next flush writes it
all. What a crash can lose is therefore exactly what was appended after the last successful
flush.

On open, the newest segments are read back so a restarted agent resumes its history; a
segment that cannot be read (torn by a crash, corrupted) is skipped with a warning and left
in place for inspection. Temporary files of an atomic write cut short by a crash
(``.seg-*.parquet.*.tmp``) are deleted on open.
"""

from __future__ import annotations

import collections
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from .._errors import InputError
from .._sample import Sample
from .._samplefile import read_samples, write_samples

__all__ = ["SampleLog", "Segment"]

log = logging.getLogger("clocksync.agent")
_NAME = re.compile(r"^seg-(\d{8})\.parquet$")


@dataclass(frozen=True, slots=True)
class Segment:
    """A closed segment on disk: its sequence number, path and newest local time (ns)."""

    seq: int
    path: Path
    last_t_local_ns: int


def _segment_name(seq: int) -> str:
    return f"seg-{seq:08d}.parquet"


class SampleLog:
    """Append-only sample history of one node.

    Args:
        directory: where the segments live (created if missing).
        node: only samples of this node are kept (others in old files are ignored).
        segment_samples: rows per segment before rotation.
        retention_s: segments whose newest sample is older than this are deleted (s).
        keep_samples: how many recent samples stay in memory for refits.
    """

    def __init__(self, directory: str | Path, node: str, *, segment_samples: int = 1_000,
                 retention_s: float = 7 * 86_400.0, keep_samples: int = 2_000) -> None:
        if segment_samples < 1 or keep_samples < 1:
            raise InputError("SampleLog: segment_samples and keep_samples must be >= 1")
        self.directory = Path(directory)
        self.node = node
        self.segment_samples = segment_samples
        self.retention_s = retention_s
        self._recent: collections.deque[Sample] = collections.deque(maxlen=keep_samples)
        self._closed: list[Segment] = []
        self._unwritten: list[tuple[int, list[Sample]]] = []  # rotated, not yet on disk
        self._current: list[Sample] = []
        self._current_seq = 1
        self._dirty = False
        self.appended = 0  #: samples appended since this object was created
        self.resumed = 0  #: samples read back from disk on open
        self.skipped_segments: list[Path] = []
        self._open()

    # -- opening ----------------------------------------------------------------------------
    def _read(self, path: Path) -> list[Sample] | None:
        try:
            arr = read_samples(path)
        except (InputError, OSError, ValueError) as exc:
            log.warning("sample log: ignoring unreadable segment %s (%s)", path, exc)
            self.skipped_segments.append(path)
            return None
        keep = arr.node == self.node
        return [Sample(node=self.node, t_local_ns=int(t), offset_ns=float(o),
                       delay_ns=float(d), bound_ns=float(b), source=str(s))
                for t, o, d, b, s in zip(arr.t_local_ns[keep], arr.offset_ns[keep],
                                         arr.delay_ns[keep], arr.bound_ns[keep],
                                         arr.source[keep], strict=True)]

    def _last_t(self, path: Path) -> int | None:
        try:
            meta = pq.read_metadata(path)
            col = meta.schema.to_arrow_schema().get_field_index("t_local_ns")
            stats = [meta.row_group(i).column(col).statistics for i in range(meta.num_row_groups)]
            values = [int(s.max) for s in stats if s is not None and s.has_min_max]
            return max(values) if values else None
        except Exception as exc:  # pyarrow raises several types for torn files
            log.warning("sample log: ignoring unreadable segment %s (%s)", path, exc)
            self.skipped_segments.append(path)
            return None

    def _open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for stale in self.directory.glob(".seg-*.parquet.*.tmp"):
            log.warning("sample log: removing %s, left by an interrupted write", stale)
            stale.unlink(missing_ok=True)
        found = sorted((int(m.group(1)), p) for p in self.directory.iterdir()
                       if (m := _NAME.match(p.name)))
        if not found:
            return
        self._current_seq = found[-1][0] + 1
        for seq, path in found:
            last = self._last_t(path)
            if last is not None:
                self._closed.append(Segment(seq, path, last))
        # read back the newest segments until the in-memory window is full
        need = self._recent.maxlen or 0
        chunks: list[tuple[Segment, list[Sample]]] = []
        for segment in reversed(self._closed):
            if need <= 0:
                break
            samples = self._read(segment.path)
            if samples is None:
                continue
            chunks.append((segment, samples))
            need -= len(samples)
        if (chunks and chunks[0][0].seq == found[-1][0]
                and len(chunks[0][1]) < self.segment_samples):
            # keep appending to the newest segment instead of leaving a short one behind
            self._current = list(chunks[0][1])
            self._current_seq = chunks[0][0].seq
            self._closed.pop()
        for _segment, chunk in reversed(chunks):
            self._recent.extend(chunk)
        self.resumed = sum(len(c) for _s, c in chunks)

    # -- writing ----------------------------------------------------------------------------
    def append(self, samples: Iterable[Sample]) -> int:
        """Add samples (of this node) to the log; returns how many. Call :meth:`flush` to
        make them durable."""
        n = 0
        for sample in samples:
            if sample.node != self.node:
                raise InputError(f"sample log of {self.node!r}: got a sample of "
                                 f"{sample.node!r}")
            if len(self._current) >= self.segment_samples:
                self._rotate()
            self._current.append(sample)
            self._recent.append(sample)
            n += 1
        if n:
            self._dirty = True
            self.appended += n
        return n

    def _rotate(self) -> None:
        self._unwritten.append((self._current_seq, self._current))
        self._current = []
        self._current_seq += 1

    def _path(self, seq: int) -> Path:
        return self.directory / _segment_name(seq)

    def _write_current(self) -> None:
        if self._current:
            write_samples(self._current, self._path(self._current_seq))
        self._dirty = False

    def flush(self) -> None:
        """Write the rotated segments not yet on disk, then the open segment (if it changed),
        each atomically; then apply retention.

        Raises:
            OSError: a write failed; what was not written stays queued for the next flush.
        """
        while self._unwritten:
            seq, samples = self._unwritten[0]
            write_samples(samples, self._path(seq))
            self._unwritten.pop(0)
            self._closed.append(Segment(seq, self._path(seq),
                                        max(s.t_local_ns for s in samples)))
        if self._dirty:
            self._write_current()
        self.prune()

    def prune(self, now_local_ns: int | None = None) -> list[Path]:
        """Delete closed segments older than ``retention_s``; returns the deleted paths."""
        newest = now_local_ns if now_local_ns is not None else self.newest_t_local_ns
        if newest is None:
            return []
        cutoff = newest - int(self.retention_s * 1e9)
        gone = [s for s in self._closed if s.last_t_local_ns < cutoff]
        for segment in gone:
            segment.path.unlink(missing_ok=True)
        self._closed = [s for s in self._closed if s.last_t_local_ns >= cutoff]
        return [s.path for s in gone]

    # -- reading ----------------------------------------------------------------------------
    @property
    def newest_t_local_ns(self) -> int | None:
        return self._recent[-1].t_local_ns if self._recent else None

    @property
    def segments(self) -> list[Path]:
        """Paths of all segments on disk, oldest first (the open one last, once written)."""
        paths = [s.path for s in self._closed]
        current = self._path(self._current_seq)
        if current.exists():
            paths.append(current)
        return paths

    def recent(self, window_s: float, max_samples: int) -> list[Sample]:
        """The newest samples: at most ``max_samples``, none older than ``window_s`` before
        the newest one (in local time)."""
        if not self._recent:
            return []
        items = list(self._recent)[-max_samples:]
        cutoff = items[-1].t_local_ns - int(window_s * 1e9)
        return [s for s in items if s.t_local_ns >= cutoff]

    def __len__(self) -> int:
        return len(self._recent)
