"""The agent's sample log: a JSONL journal for the open segment, Parquet for closed ones.

Layout in ``DIR``:

* ``seg-00000007.jsonl`` — the open segment, a journal: each :meth:`SampleLog.flush`
  appends the samples not yet on disk (one JSON object per line, the columns of
  :class:`clocksync.Sample`) and fsyncs. Appending costs what was added, not the whole segment.
* ``seg-00000001.parquet`` ... — closed segments: once a journal holds ``segment_samples``
  rows it is compacted to Parquet (``t_local_ns`` delta-encoded, zstd; see
  :func:`clocksync.write_samples`), atomically, and the journal is deleted. Compaction runs
  in a short-lived child process (:mod:`clocksync.agent._segments`) so that pyarrow never
  occupies the agent's own memory (the agent's budget is 80 MB resident).

``clocksync fit DIR/seg-*`` refits a log offline (both formats are sample files).
Segments whose newest sample is older than ``retention_s`` are deleted.

Durability: :meth:`SampleLog.append` never touches the disk. A flush that fails (disk
full, read-only) raises ``OSError`` and keeps everything queued in memory; the next flush
writes it all. A crash therefore loses exactly what was appended after the last successful
flush. A journal line torn by a crash is cut off on the next open, with a warning. A
compaction that fails leaves the journal in place (its samples are already durable) and
is retried by the next flush; a crash between writing the Parquet file and deleting the
journal is resolved on open in favour of the Parquet file.

On open, the newest segments are read back so a restarted agent resumes its history; a
segment that cannot be read (corrupted) is skipped with a warning and left in place for
inspection. Temporary files of an interrupted atomic write (``.seg-*.tmp``) are deleted.
"""

from __future__ import annotations

import collections
import json
import logging
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .._io._atomic import fsync_directory
from .._model._errors import InputError
from .._model._sample import Sample
from . import _segments

__all__ = ["SampleLog", "Segment", "segment_files"]

log = logging.getLogger("clocksync.agent")
_NAME = re.compile(r"^seg-(\d{8})\.(parquet|jsonl)$")


@dataclass(frozen=True, slots=True)
class Segment:
    """A closed segment on disk: its sequence number, path and newest local time (ns)."""

    seq: int
    path: Path
    last_t_local_ns: int


def _line(sample: Sample) -> str:
    return json.dumps({"node": sample.node, "t_local_ns": sample.t_local_ns,
                       "offset_ns": sample.offset_ns, "delay_ns": sample.delay_ns,
                       "bound_ns": sample.bound, "source": sample.source},
                      separators=(",", ":"), allow_nan=False)


def _parse(line: str, node: str) -> Sample | None:
    """A journal line as a sample of ``node`` (None: another node's); ValueError if bad."""
    obj = json.loads(line)
    if not isinstance(obj, dict):
        raise ValueError("not an object")
    t, o, d, b = obj["t_local_ns"], obj["offset_ns"], obj["delay_ns"], obj["bound_ns"]
    if type(t) is not int or not all(isinstance(v, int | float) and math.isfinite(v)
                                     for v in (o, d, b)) or not b > 0:
        raise ValueError("bad field")
    if obj.get("node") != node:
        return None
    return Sample(node=node, t_local_ns=t, offset_ns=float(o), delay_ns=float(d),
                  bound_ns=float(b), source=str(obj.get("source", "")))


def _scan(directory: Path) -> tuple[dict[int, Path], dict[int, Path]]:
    """The Parquet segments and the journals in ``directory``, by sequence number."""
    parquet: dict[int, Path] = {}
    journals: dict[int, Path] = {}
    for path in directory.iterdir():
        if m := _NAME.match(path.name):
            (parquet if m.group(2) == "parquet" else journals)[int(m.group(1))] = path
    return parquet, journals


def segment_files(directory: str | Path) -> list[Path]:
    """A log directory's segment files in order, one per sequence number (the Parquet file
    when a crash left both it and its journal): what ``clocksync fit`` should read."""
    parquet, journals = _scan(Path(directory))
    found = {**journals, **parquet}
    return [found[seq] for seq in sorted(found)]


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
        self._closed: list[Segment] = []  # Parquet segments
        self._journals: list[Segment] = []  # complete journals waiting for compaction
        self._unwritten: list[tuple[int, list[Sample], int]] = []  # rotated: seq, rows, on disk
        self._current: list[Sample] = []
        self._current_seq = 1
        self._current_on_disk = 0  # rows of the open segment already in its journal
        self.appended = 0  #: samples appended since this object was created
        self.resumed = 0  #: samples read back from disk on open
        self.skipped_segments: list[Path] = []
        self._open()

    # -- paths --------------------------------------------------------------------------------
    def _journal(self, seq: int) -> Path:
        return self.directory / f"seg-{seq:08d}.jsonl"

    def _parquet(self, seq: int) -> Path:
        return self.directory / f"seg-{seq:08d}.parquet"

    # -- opening ------------------------------------------------------------------------------
    def _skip(self, path: Path, why: object) -> None:
        log.warning("sample log: ignoring unreadable segment %s (%s)", path, why)
        self.skipped_segments.append(path)

    def _read_journal(self, path: Path) -> list[Sample] | None:
        """The journal's samples; a torn last line is cut off (a crash mid-append), any other
        bad line makes the segment unreadable (left in place)."""
        data = path.read_bytes()
        lines = data.split(b"\n")
        samples: list[Sample] = []
        good_bytes = 0
        for i, raw in enumerate(lines):
            if not raw.strip():
                good_bytes += len(raw) + 1
                continue
            try:
                sample = _parse(raw.decode("utf-8"), self.node)
            except (ValueError, KeyError, UnicodeDecodeError) as exc:
                if i == len(lines) - 1:  # no newline after it: torn by a crash
                    log.warning("sample log: %s: cutting off a torn last line (%d bytes)",
                                path, len(raw))
                    with open(path, "r+b") as handle:
                        handle.truncate(good_bytes)
                        os.fsync(handle.fileno())
                    break
                self._skip(path, f"line {i + 1}: {exc}")
                return None
            good_bytes += len(raw) + 1
            if sample is not None:
                samples.append(sample)
        return samples

    def _open(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"{self.directory}: cannot create the sample log directory "
                             f"({exc.strerror or exc})") from None
        for stale in self.directory.glob(".seg-*.tmp"):
            log.warning("sample log: removing %s, left by an interrupted write", stale)
            stale.unlink(missing_ok=True)
        parquet, journals = _scan(self.directory)
        for seq in sorted(set(parquet) & set(journals)):  # crashed between rename and delete
            log.info("sample log: %s is compacted already; removing its journal", parquet[seq])
            journals.pop(seq).unlink(missing_ok=True)
        if not parquet and not journals:
            return
        self._current_seq = max([*parquet, *journals]) + 1
        need = self._recent.maxlen or 0
        try:
            scanned = _segments.scan(self.node, need, [parquet[s] for s in sorted(parquet)])
        except OSError as exc:
            log.error("sample log: cannot read the Parquet segments (%s); resuming without "
                      "them", exc)
            scanned = {"last": {}, "errors": {}, "rows": {}}
        history: dict[int, list[Sample]] = {}
        for seq in sorted(parquet):
            key = str(parquet[seq])
            if key in scanned["errors"]:
                self._skip(parquet[seq], scanned["errors"][key])
                continue
            last = scanned["last"].get(key)
            if last is not None:
                self._closed.append(Segment(seq, parquet[seq], int(last)))
            if key in scanned["rows"]:
                history[seq] = [Sample(node=self.node, t_local_ns=int(t), offset_ns=float(o),
                                       delay_ns=float(d), bound_ns=float(b), source=str(s))
                                for t, o, d, b, s in scanned["rows"][key]]
        newest = max(journals, default=0)
        for seq in sorted(journals):
            samples = self._read_journal(journals[seq])
            if samples is None:
                continue
            history[seq] = samples
            if seq == newest and seq == self._current_seq - 1 and \
                    len(samples) < self.segment_samples:
                # keep appending to the newest journal instead of leaving a short one behind
                self._current, self._current_seq = list(samples), seq
                self._current_on_disk = len(samples)
            elif samples:
                self._journals.append(Segment(seq, journals[seq],
                                              max(s.t_local_ns for s in samples)))
        chunks: list[list[Sample]] = []
        for seq in sorted(history, reverse=True):
            if need <= 0:
                break
            chunks.append(history[seq])
            need -= len(history[seq])
        for chunk in reversed(chunks):
            self._recent.extend(chunk)
        self.resumed = sum(len(c) for c in chunks)

    # -- writing ------------------------------------------------------------------------------
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
        self.appended += n
        return n

    def _rotate(self) -> None:
        self._unwritten.append((self._current_seq, self._current, self._current_on_disk))
        self._current, self._current_on_disk = [], 0
        self._current_seq += 1

    def _append_journal(self, seq: int, rows: list[Sample]) -> None:
        path = self._journal(seq)
        new = not path.exists()
        with open(path, "a", encoding="utf-8") as handle:
            handle.write("".join(_line(s) + "\n" for s in rows))
            handle.flush()
            os.fsync(handle.fileno())
        if new:
            fsync_directory(self.directory)

    def flush(self) -> None:
        """Append what is not yet on disk to the journals (fsynced), compact full journals to
        Parquet, then apply retention.

        Raises:
            OSError: a journal write failed; what was not written stays queued for the next
                flush. (A failed compaction only logs: its journal is durable.)
        """
        while self._unwritten:
            seq, samples, on_disk = self._unwritten[0]
            if on_disk < len(samples):
                self._append_journal(seq, samples[on_disk:])
            self._unwritten.pop(0)
            self._journals.append(Segment(seq, self._journal(seq),
                                          max(s.t_local_ns for s in samples)))
        if self._current_on_disk < len(self._current):
            self._append_journal(self._current_seq, self._current[self._current_on_disk:])
            self._current_on_disk = len(self._current)
        self._compact()
        self.prune()

    def _compact(self) -> None:
        while self._journals:
            journal = self._journals[0]
            target = self._parquet(journal.seq)
            try:
                _segments.compact(journal.path, target)
            except OSError as exc:
                log.warning("sample log: compacting %s deferred: %s", journal.path, exc)
                return
            journal.path.unlink(missing_ok=True)
            self._journals.pop(0)
            self._closed.append(Segment(journal.seq, target, journal.last_t_local_ns))

    def prune(self, now_local_ns: int | None = None) -> list[Path]:
        """Delete segments older than ``retention_s``; returns the deleted paths."""
        newest = now_local_ns if now_local_ns is not None else self.newest_t_local_ns
        if newest is None:
            return []
        cutoff = newest - int(self.retention_s * 1e9)
        gone = [s for s in [*self._closed, *self._journals] if s.last_t_local_ns < cutoff]
        for segment in gone:
            segment.path.unlink(missing_ok=True)
        self._closed = [s for s in self._closed if s.last_t_local_ns >= cutoff]
        self._journals = [s for s in self._journals if s.last_t_local_ns >= cutoff]
        return [s.path for s in gone]

    # -- reading ------------------------------------------------------------------------------
    @property
    def newest_t_local_ns(self) -> int | None:
        return self._recent[-1].t_local_ns if self._recent else None

    @property
    def segments(self) -> list[Path]:
        """Paths of all segments on disk in order: Parquet, journals awaiting compaction,
        and the open journal once written."""
        found = [(s.seq, s.path) for s in [*self._closed, *self._journals]]
        current = self._journal(self._current_seq)
        if current.exists():
            found.append((self._current_seq, current))
        return [p for _seq, p in sorted(found)]

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
