"""The collector's raw layer: every accepted stage event, kept as rolling Parquet segments.

Layout in ``DIR``:

* ``events-20250301T120000Z-00000042.journal`` — the open segment, a journal: each
  :meth:`RawLayer.append` adds one record (an Arrow IPC stream of the batch, as it came,
  framed by its length and CRC-32) with one ``writev``. Appending costs what was added.
* ``events-20250301T115900Z-00000041.parquet`` ... — closed segments, in the whole-request
  layout of :func:`clocksync.latency.write_events` (``clocksync latency DIR/*.parquet``
  re-analyses them). The name holds the UTC arrival time of the segment's first row and a
  sequence number, so names sort by time. A journal becomes a segment ("rotation") when it
  holds ``max_segment_bytes`` (journal bytes: uncompressed Arrow, the segment is several
  times smaller) or its first row arrived ``max_segment_age_s`` ago: its batches are read
  back, unified (a column a batch lacks is null) and written to a temporary name, fsynced,
  renamed, the directory fsynced; only then does the segment count (:meth:`RawLayer.segments`)
  and the journal get deleted. A segment's mtime is set to the arrival time of its last row
  (its "end time", used by retention).
* Retention deletes the segments whose end time is older than ``retention_s``, then the
  oldest while all segments together exceed ``retention_bytes``; never the open journal.

Durability: a record is in the kernel when :meth:`RawLayer.append` returns, so a crash of
the process (``kill -9``) loses nothing accepted; :meth:`RawLayer.close` (what SIGTERM
runs) compacts the journal into a segment and fsyncs it. The journal is fsynced by the
first append or :meth:`RawLayer.maybe_rotate` at least ``fsync_interval_s`` after the
previous fsync, and on rotation and close: a power loss loses at most the batches appended
since the last fsync (about ``fsync_interval_s`` while appends or the engine's once-a-second
``maybe_rotate`` keep coming), never a segment. On open, a journal left by a crash is
compacted first; a torn or corrupt record (a crash mid-write, a power loss) ends it: that
record and anything after it are dropped with a warning naming the offset, the batches
before it are kept. A crash between renaming a segment and deleting its journal is resolved
in favour of the segment; temporary files of an interrupted write are deleted.

Compaction (reading the journal back, sorting, zstd) runs on a worker thread by default,
so :meth:`RawLayer.append` only ever writes a record; :meth:`RawLayer.close` waits for it.

Errors: a write that fails (disk full, permissions) raises :class:`OSError` naming the
path; the journal is cut back to its last whole record, so the failed batch is not stored
and the next append starts clean. A failed compaction keeps the journal (its rows are on
disk) and is retried by the next :meth:`RawLayer.maybe_rotate` or :meth:`RawLayer.close`.

Threads: one thread (the engine's) appends and rotates; a lock makes the methods safe to
call from others, but never call them from a signal handler (set a flag and let the engine
thread call :meth:`RawLayer.close`).
"""

from __future__ import annotations

import calendar
import contextlib
import logging
import os
import re
import struct
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import pyarrow as pa

from .._io._atomic import fsync_directory
from .._model._errors import InputError
from ..latency import EVENT_COLUMNS, Events, concat_events, write_events

__all__ = ["RawLayer", "RawStats", "read_journal"]

log = logging.getLogger("clocksync.collector")

#: the first bytes of a journal file
JOURNAL_MAGIC = b"CSRAWJ1\n"
#: each record's header: payload bytes (u64), CRC-32 of the payload (u32), little-endian
_HEADER = struct.Struct("<QI")
_NAME = re.compile(r"^events-(\d{8}T\d{6}Z)-(\d{8})\.(parquet|journal)$")
_STAMP = "%Y%m%dT%H%M%SZ"
_MiB = 1 << 20
_DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class RawStats:
    """Counters of a :class:`RawLayer`.

    Attributes:
        segments: segments on disk (closed, counted).
        bytes: their total size (bytes).
        journal_rows: rows in the open journal (not yet in a segment).
        journal_bytes: size of the open journal (bytes).
        rows_written: rows appended since open.
        rotations: journals turned into segments since open (recovered ones included).
        deleted: segments deleted by retention since open.
        recovered: rows recovered on open from journals a crash left behind.
        dropped_bytes: bytes of torn or corrupt journal tails dropped on open.
    """

    segments: int
    bytes: int
    journal_rows: int
    journal_bytes: int
    rows_written: int
    rotations: int
    deleted: int
    recovered: int
    dropped_bytes: int


@dataclass(slots=True)
class _Segment:
    seq: int
    path: Path
    end_s: float  #: arrival time of its last row (the file's mtime)
    size_bytes: int


@dataclass(slots=True)
class _Journal:
    seq: int
    path: Path
    start_s: float  #: arrival time of the first row
    end_s: float  #: arrival time of the last row
    fd: int = -1  #: -1 once sealed (closed)
    size_bytes: int = 0  #: whole records (and the magic) on disk
    rows: int = 0
    schema: pa.Schema | None = None  #: columns so far, dictionaries decoded
    synced_at: float = 0.0  #: time.monotonic() of the last fsync
    left_by_crash: bool = False  #: found on open: its rows are counted when compacted


# -- journal records ------------------------------------------------------------------------------
def _encode(table: pa.Table) -> pa.Buffer:
    """``table`` as one Arrow IPC stream (schema, batches, end marker)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def read_journal(path: Path) -> tuple[list[pa.Table], int]:
    """The batches of a journal, and the offset (bytes) where its whole records end.

    A record that is cut short, fails its CRC or does not decode ends the journal: it and
    everything after it are not returned (the caller logs the offset)."""
    data = memoryview(path.read_bytes())
    if bytes(data[:len(JOURNAL_MAGIC)]) != JOURNAL_MAGIC:
        return [], 0
    tables: list[pa.Table] = []
    at = len(JOURNAL_MAGIC)
    while at + _HEADER.size <= len(data):
        size, crc = _HEADER.unpack_from(data, at)
        payload = data[at + _HEADER.size:at + _HEADER.size + size]
        if len(payload) < size or zlib.crc32(payload) != crc:
            break
        try:
            tables.append(pa.ipc.open_stream(pa.py_buffer(payload)).read_all())
        except pa.ArrowException:
            break
        at += _HEADER.size + size
    return tables, at


def _plain_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` with dictionary columns as their value type (what a segment unifies)."""
    fields = [f.with_type(f.type.value_type) if pa.types.is_dictionary(f.type) else f
              for f in schema]
    return pa.schema(fields)


def _plain(table: pa.Table) -> pa.Table:
    """``table`` with its dictionary columns decoded (batches then concatenate)."""
    target = _plain_schema(table.schema)
    return table if target.equals(table.schema) else table.cast(target)


def _merged(tables: list[pa.Table]) -> pa.Table:
    """One table from a journal's batches: columns unified, a missing one null."""
    return concat_events(Events(_plain(t), (), t.num_rows) for t in tables).table


_STRINGS = (pa.types.is_string, pa.types.is_large_string)


def _check_columns(events: pa.Table) -> None:
    """:class:`InputError` unless the required event columns are there, with their types."""
    for col in EVENT_COLUMNS:
        if col.name not in events.column_names:
            raise InputError(f"raw layer: events lack the column '{col.name}'")
        kind = events.schema.field(col.name).type
        if pa.types.is_dictionary(kind):
            kind = kind.value_type
        ok = kind == pa.int64() if col.kind == "int64" else any(f(kind) for f in _STRINGS)
        if not ok:
            raise InputError(f"raw layer: column '{col.name}' must be {col.kind}, got {kind}")


def _write_all(fd: int, parts: list[bytes | pa.Buffer]) -> None:
    """Write ``parts`` in order (``writev``, resumed after a short write)."""
    views = [memoryview(p) for p in parts]
    while views:
        done = os.writev(fd, views)
        while views and done >= len(views[0]):
            done -= len(views[0])
            views.pop(0)
        if views and done:
            views[0] = views[0][done:]


def _path_error(exc: OSError, what: str, path: Path) -> OSError:
    """``exc`` again, with a message that names ``path``."""
    return OSError(exc.errno, f"raw layer: cannot {what} {path}: {exc.strerror or exc}")


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- the layer ----------------------------------------------------------------------------------
class RawLayer:
    """Rolling Parquet segments of every accepted stage event (see the module docstring).

    Args:
        data_dir: where segments and the journal live (created if missing).
        max_segment_bytes: rotate once the journal holds this many bytes (uncompressed).
        max_segment_age_s: rotate once the journal's first row arrived this long ago (s).
        retention_s: delete segments whose last row arrived longer ago than this (s);
            ``None`` keeps them regardless of age.
        retention_bytes: delete the oldest segments while all together exceed this
            (bytes); ``None``: no limit.
        fsync_interval_s: longest time between journal fsyncs while appends or
            :meth:`maybe_rotate` calls keep coming (s).
        compact_in_background: compact sealed journals into segments on a worker thread
            (Parquet and zstd release the GIL), so that :meth:`append` never waits for one;
            ``False``: the call that rotates compacts (deterministic, for tests).
        now_s: the wall clock (s since the epoch): arrival times, names, ages, retention.

    Raises:
        OSError: ``data_dir`` cannot be created or listed (the message names it). A crash's
            journal that cannot be compacted on open only logs: it stays, and
            :meth:`maybe_rotate` retries.
    """

    def __init__(self, data_dir: str | os.PathLike[str], *,
                 max_segment_bytes: int = 64 * _MiB, max_segment_age_s: float = 60.0,
                 retention_s: float | None = 7 * _DAY_S, retention_bytes: int | None = None,
                 fsync_interval_s: float = 1.0, compact_in_background: bool = True,
                 now_s: Callable[[], float] = time.time) -> None:
        if max_segment_bytes < 1 or not max_segment_age_s > 0 or fsync_interval_s < 0:
            raise InputError("RawLayer: max_segment_bytes and max_segment_age_s must be > 0, "
                             "fsync_interval_s >= 0")
        self.directory = Path(data_dir)
        self.max_segment_bytes = max_segment_bytes
        self.max_segment_age_s = max_segment_age_s
        self.retention_s = retention_s
        self.retention_bytes = retention_bytes
        self.fsync_interval_s = fsync_interval_s
        self.compact_in_background = compact_in_background
        self._now_s = now_s
        self._lock = threading.Lock()  # the state below
        self._compacting = threading.Lock()  # one compactor at a time
        self._wake = threading.Event()
        self._worker: threading.Thread | None = None
        self._error: OSError | None = None  # the worker's last failure, for maybe_rotate
        self._segments: list[_Segment] = []
        self._journal: _Journal | None = None  # the open one (created by the first append)
        self._pending: list[_Journal] = []  # sealed, waiting to be compacted
        self._next_seq = 1
        self._closed = False
        self._rows_written = self._rotations = self._deleted = 0
        self._recovered = self._dropped_bytes = 0
        self._open()

    # -- opening ------------------------------------------------------------------------------
    def _open(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            names = sorted(p.name for p in self.directory.iterdir())
        except OSError as exc:
            raise _path_error(exc, "open the raw data directory", self.directory) from None
        for name in names:
            if name.startswith(".events-") and name.endswith(".tmp"):
                log.warning("raw layer: removing %s, left by an interrupted write", name)
                (self.directory / name).unlink(missing_ok=True)
        found = [(m, self.directory / name) for name in names if (m := _NAME.match(name))]
        segments = {m.group(2) for m, _ in found if m.group(3) == "parquet"}
        for m, path in found:
            self._next_seq = max(self._next_seq, int(m.group(2)) + 1)
            if m.group(3) == "parquet":
                stat = path.stat()
                self._segments.append(_Segment(int(m.group(2)), path, stat.st_mtime,
                                               stat.st_size))
            elif m.group(2) in segments:  # crashed between the rename and the delete
                log.info("raw layer: %s is compacted already; removing it", path)
                path.unlink(missing_ok=True)
            else:
                self._pending.append(self._left_journal(m, path))
        self._segments.sort(key=lambda s: s.seq)
        self._pending.sort(key=lambda j: j.seq)
        try:
            self._drain()
        except OSError as exc:  # the rows stay in the journal; maybe_rotate retries
            log.error("raw layer: recovery deferred: %s", exc)
        self._retain(self._now_s())

    def _left_journal(self, m: re.Match[str], path: Path) -> _Journal:
        """A journal a crash left behind, to compact; its end time is its mtime."""
        stat = path.stat()
        start = float(calendar.timegm(time.strptime(m.group(1), _STAMP)))
        return _Journal(int(m.group(2)), path, start, stat.st_mtime, fd=-1,
                        size_bytes=stat.st_size, left_by_crash=True)

    # -- appending ----------------------------------------------------------------------------
    def append(self, events: pa.Table) -> None:
        """Add a batch of stage events (``request_id, stage, node, ts_ns`` + context).

        On return the batch is in the journal (the kernel's cache: a process crash cannot
        lose it); then a rotation that is due runs (a failing one only logs: the rows are
        on disk, the next :meth:`maybe_rotate` retries).

        Raises:
            InputError: a required column is missing or has another type.
            OSError: the journal cannot be written (the message names it); the batch was
                not stored.
        """
        if not events.num_rows:
            return
        _check_columns(events)
        with self._lock:
            if self._closed:
                raise ValueError("raw layer: append after close")
            now = self._now_s()
            sealed = self._seal_if_conflicting(events.schema)
            journal = self._journal or self._start_journal(now, events.schema)
            self._write(journal, events, now)
            self._rows_written += events.num_rows
            self._sync_if_due(journal)
            if self._due(journal, now):
                self._seal(journal)
                sealed = True
        if sealed:
            self._compact_sealed(raise_errors=False)

    def _seal_if_conflicting(self, schema: pa.Schema) -> bool:
        """Seal the open journal if ``schema`` gives a column another type than its batches
        have (a segment has one type per column); else note the new columns."""
        journal = self._journal
        if journal is None or journal.schema is None:
            return False
        plain = _plain_schema(schema)
        try:
            journal.schema = pa.unify_schemas([journal.schema, plain],
                                              promote_options="permissive")
        except (pa.ArrowTypeError, pa.ArrowInvalid) as exc:
            log.warning("raw layer: rotating %s early: %s", journal.path, exc)
            self._seal(journal)
            return True
        return False

    def _start_journal(self, now: float, schema: pa.Schema) -> _Journal:
        stamp = time.strftime(_STAMP, time.gmtime(now))
        path = self.directory / f"events-{stamp}-{self._next_seq:08d}.journal"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC,
                         0o644)
        except OSError as exc:
            raise _path_error(exc, "create the journal", path) from None
        journal = _Journal(self._next_seq, path, now, now, fd=fd, schema=_plain_schema(schema),
                           synced_at=time.monotonic())
        self._next_seq += 1
        self._journal = journal
        try:
            _write_all(fd, [JOURNAL_MAGIC])
            os.fsync(fd)
            fsync_directory(self.directory)
        except OSError as exc:
            self._discard(journal)
            raise _path_error(exc, "write the journal", path) from None
        journal.size_bytes = len(JOURNAL_MAGIC)
        return journal

    def _discard(self, journal: _Journal) -> None:
        """Drop a journal that never got a record (its creation failed)."""
        os.close(journal.fd)
        journal.path.unlink(missing_ok=True)
        self._journal = None

    def _write(self, journal: _Journal, events: pa.Table, now: float) -> None:
        """Append one record; on failure cut the journal back to its last whole record (or,
        if that fails too, seal it: recovery drops the torn tail) and raise."""
        payload = _encode(events)
        header = _HEADER.pack(payload.size, zlib.crc32(payload))
        try:
            _write_all(journal.fd, [header, payload])
        except OSError as exc:
            try:
                os.ftruncate(journal.fd, journal.size_bytes)
            except OSError:
                with contextlib.suppress(OSError):
                    self._seal(journal)
            raise _path_error(exc, "append to the journal", journal.path) from None
        journal.size_bytes += len(header) + payload.size
        journal.rows += events.num_rows
        journal.end_s = now

    def _sync_if_due(self, journal: _Journal, force: bool = False) -> None:
        now = time.monotonic()
        if journal.fd < 0 or not (force or now - journal.synced_at >= self.fsync_interval_s):
            return
        try:
            os.fsync(journal.fd)
        except OSError as exc:
            raise _path_error(exc, "fsync the journal", journal.path) from None
        journal.synced_at = now

    # -- rotation -----------------------------------------------------------------------------
    def _due(self, journal: _Journal, now: float) -> bool:
        """Full, or its first row older than ``max_segment_age_s`` (either way, in case the
        wall clock was stepped back)."""
        return (journal.size_bytes >= self.max_segment_bytes
                or abs(now - journal.start_s) >= self.max_segment_age_s)

    def maybe_rotate(self) -> None:
        """The engine's once-a-second call: fsync the journal if due, rotate it if old
        enough, retry compactions that failed, apply retention.

        Raises:
            OSError: an fsync or a compaction failed (the message names the path; the rows
                stay in the journal, a later call retries).
        """
        with self._lock:
            now = self._now_s()
            journal = self._journal
            if journal is not None:
                self._sync_if_due(journal)
                if self._due(journal, now):
                    self._seal(journal)
            error, self._error = self._error, None
            retry = bool(self._pending)
        if retry:
            self._compact_sealed(raise_errors=True)
        with self._lock:
            self._retain(now)
        if error is not None:
            raise error

    def _seal(self, journal: _Journal) -> None:
        """Close the journal (fsynced) and queue it for compaction."""
        if journal.fd >= 0:
            try:
                self._sync_if_due(journal, force=True)
            finally:
                os.close(journal.fd)
                journal.fd = -1
                self._pending.append(journal)
                self._journal = None

    def _compact_sealed(self, raise_errors: bool) -> None:
        """Compact the sealed journals: wake the worker, or do it now."""
        if self.compact_in_background:
            self._kick()
            return
        try:
            self._drain()
        except OSError as exc:
            if raise_errors:
                raise
            log.error("raw layer: rotation deferred: %s", exc)

    def _kick(self) -> None:
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, name="clocksync-raw-compact",
                                            daemon=True)
            self._worker.start()
        self._wake.set()

    def _work(self) -> None:
        """The worker: drain the sealed journals each time it is woken, until close."""
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._closed:
                return
            try:
                self._drain()
            except OSError as exc:  # kept for maybe_rotate, which wakes the worker again
                log.error("raw layer: rotation deferred: %s", exc)
                with self._lock:
                    self._error = exc

    def _drain(self) -> None:
        """Compact the sealed journals, oldest first, each into a segment, applying retention
        after each; the first failure stops (and raises)."""
        with self._compacting:
            while True:
                with self._lock:
                    if not self._pending:
                        return
                    journal = self._pending[0]
                try:
                    segment = self._compact(journal)
                except (pa.ArrowException, ValueError) as exc:  # not the disk: would recur
                    self._quarantine(journal, exc)
                    segment = None
                with self._lock:
                    self._pending.pop(0)
                    if segment is not None:
                        self._segments.append(segment)
                        self._rotations += 1
                        self._retain(self._now_s())

    def _compact(self, journal: _Journal) -> _Segment | None:
        """Write a sealed journal as a segment (atomically, fsynced), then delete it
        (``None``: it held no whole record)."""
        target = journal.path.with_suffix(".parquet")
        try:
            tables, good_bytes = read_journal(journal.path)
            if journal.left_by_crash:
                self._note_recovered(journal, tables, good_bytes)
            if tables:
                write_events(_merged(tables), target)
                os.utime(target, (journal.end_s, journal.end_s))
                _fsync_file(target)
                fsync_directory(self.directory)
        except OSError as exc:
            raise _path_error(exc, f"compact {journal.path} into", target) from None
        journal.path.unlink(missing_ok=True)
        if not tables:
            log.info("raw layer: %s held no whole record; removed", journal.path)
            return None
        return _Segment(journal.seq, target, journal.end_s, target.stat().st_size)

    def _quarantine(self, journal: _Journal, exc: Exception) -> None:
        """Set aside a journal whose rows cannot become a segment (kept for inspection)."""
        aside = journal.path.with_name(journal.path.name + ".failed")
        log.error("raw layer: cannot compact %s (%s); kept as %s", journal.path, exc, aside)
        with contextlib.suppress(OSError):
            journal.path.rename(aside)

    def _note_recovered(self, journal: _Journal, tables: list[pa.Table],
                        good_bytes: int) -> None:
        rows = sum(t.num_rows for t in tables)
        journal.rows, journal.left_by_crash = rows, False
        self._recovered += rows
        dropped = journal.size_bytes - max(good_bytes, len(JOURNAL_MAGIC))
        if dropped > 0:
            self._dropped_bytes += dropped
            log.warning("raw layer: %s: dropping a torn or corrupt record at offset %d "
                        "(%d bytes); keeping the %d rows before it", journal.path, good_bytes,
                        dropped, rows)
        log.info("raw layer: recovered %d rows from %s", rows, journal.path)

    # -- retention ----------------------------------------------------------------------------
    def _expired(self, now: float) -> set[int]:
        """Sequence numbers of the segments retention deletes: past ``retention_s``, then
        the oldest (by end time) while the rest exceed ``retention_bytes``."""
        gone: set[int] = set()
        if self.retention_s is not None:
            gone = {s.seq for s in self._segments if s.end_s < now - self.retention_s}
        if self.retention_bytes is not None:
            total = sum(s.size_bytes for s in self._segments if s.seq not in gone)
            for segment in sorted(self._segments, key=lambda s: (s.end_s, s.seq)):
                if total <= self.retention_bytes:
                    break
                if segment.seq not in gone:
                    gone.add(segment.seq)
                    total -= segment.size_bytes
        return gone

    def _retain(self, now: float) -> None:
        """Apply retention (see :meth:`_expired`); the open journal is never touched."""
        gone = self._expired(now)
        if not gone:
            return
        for segment in self._segments:
            if segment.seq in gone:
                segment.path.unlink(missing_ok=True)
                log.info("raw layer: retention deleted %s", segment.path)
        self._deleted += len(gone)
        self._segments = [s for s in self._segments if s.seq not in gone]

    # -- closing and reading ------------------------------------------------------------------
    def close(self) -> None:
        """Rotate the journal into a segment (fsynced) and stop; later calls do nothing
        (but retry a compaction that failed).

        Raises:
            OSError: the last compaction failed; the journal stays and the next open
                compacts it, so nothing is lost.
        """
        with self._lock:
            self._closed = True
            if self._journal is not None:
                self._seal(self._journal)
        worker, self._worker = self._worker, None
        if worker is not None:
            self._wake.set()
            worker.join()
        self._drain()
        with self._lock:
            self._retain(self._now_s())

    def __enter__(self) -> RawLayer:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if kind is None:
            self.close()
            return
        try:
            self.close()
        except OSError as close_exc:  # the first error is the one to see
            log.error("raw layer: close after an error failed: %s", close_exc)

    def segments(self) -> list[Path]:
        """The segments that count (renamed and fsynced), oldest first."""
        with self._lock:
            return [s.path for s in self._segments]

    def stats(self) -> RawStats:
        """Counters: segments and their bytes, the open journal, what happened since open."""
        with self._lock:
            journal = self._journal
            return RawStats(
                segments=len(self._segments),
                bytes=sum(s.size_bytes for s in self._segments),
                journal_rows=(journal.rows if journal else 0) + sum(j.rows for j in self._pending),
                journal_bytes=(journal.size_bytes if journal else 0),
                rows_written=self._rows_written, rotations=self._rotations,
                deleted=self._deleted, recovered=self._recovered,
                dropped_bytes=self._dropped_bytes)
