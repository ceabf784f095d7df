"""Replay the stored crash corpus: one input per crash bug the fuzzers ever found.

Every file of ``tests/faults/corpus/`` is an input that crashed (or, for NTP, was wrongly
accepted by) the code before its fix; ``corpus/README.md`` names the bug and the fixing
commit. Each case feeds its file to the reader or loader that crashed and asserts today's
documented behaviour (docs/reliability.md, "Hostile input"): the exact exception type,
with a message naming the file (and line, field or key), or the bad record / rejected-reply
count — never just "did not crash". :func:`test_every_corpus_file_has_a_case` makes sure a
file added to the corpus cannot be forgotten here.
"""

from __future__ import annotations

import json
import re
import shutil
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from clocksync import Assumptions, CorrectionTable, Corrector, InputError, SchemaError
from clocksync.agent import load_config
from clocksync.latency import BadRecord, StageRule, TraceMapping, read_events_file, read_trace_file
from clocksync.ntp import (
    NtpClient,
    NtpPacket,
    NtpRejectError,
    RejectReason,
    decode,
    ntp_to_ns,
    validate_reply,
)
from tests._fakentp import FakeServer

pytestmark = pytest.mark.fuzz

CORPUS = Path(__file__).parent / "corpus"
MAPPING = TraceMapping(rules=(StageRule("pp_enqueue", "pp.*", "start"),
                              StageRule("pp_exit", "pp.*", "end")),
                       node_keys=("service.instance.id", "service.name"))
TIMEOUT_S = 1.0

Check = Callable[[Path, Path], None]  # check(corpus file, tmp_path)


# --- tables: SchemaError naming the source and the field ------------------------------------

def table_refused(field: str, why: str) -> Check:
    """``CorrectionTable.from_json`` and ``Corrector.from_store(strict=True)`` refuse the
    table with a :class:`SchemaError` naming the file and ``field``; ``from_store`` leaves it
    out with that reason in ``load_errors``."""
    def check(path: Path, tmp_path: Path) -> None:
        with pytest.raises(SchemaError) as info:
            CorrectionTable.from_json(path.read_bytes(), source=str(path))
        message = str(info.value)
        assert message.startswith(f"{path}: field '{field}'"), message
        assert why in message, message
        stored = tmp_path / "n1.table.json"
        shutil.copyfile(path, stored)
        with pytest.raises(SchemaError) as info:
            Corrector.from_store(str(tmp_path), strict=True)
        assert str(stored) in str(info.value) and f"'{field}'" in str(info.value)
        assert Corrector.from_store(str(tmp_path)).load_errors == {"n1": str(info.value)}
    return check


# --- agent config: InputError naming the file and the key -----------------------------------

def config_refused(pattern: str) -> Check:
    """``load_config`` raises :class:`InputError` whose message is ``FILE: `` + ``pattern``."""
    def check(path: Path, tmp_path: Path) -> None:
        with pytest.raises(InputError) as info:
            load_config(path)
        message = str(info.value)
        assert re.match(re.escape(f"{path}: ") + pattern, message), message
    return check


def config_fit_refused(key: str) -> Check:
    """A huge integer under ``[fit]``: refused by ``load_config`` naming the file and
    ``fit.KEY``, and by ``Assumptions.from_mapping`` itself naming the key."""
    by_config = config_refused(re.escape(f"fit.{key}: must be a finite number"))

    def check(path: Path, tmp_path: Path) -> None:
        by_config(path, tmp_path)
        with path.open("rb") as handle:
            fit = tomllib.load(handle)["fit"]
        with pytest.raises(InputError, match=re.escape(f"{path}.{key}: must be a finite")):
            Assumptions.from_mapping(fit, where=str(path))
    return check


# --- traces: InputError naming FILE:LINE, or one counted bad record -------------------------

def trace_bad(line: int, reason: str) -> Check:
    """The file's one record is bad at ``FILE:LINE`` for ``reason``: an :class:`InputError`
    saying so, and with ``skip_bad`` a counted :class:`BadRecord` and no rows."""
    def check(path: Path, tmp_path: Path) -> None:
        where = f"{path}:{line}"
        with pytest.raises(InputError) as info:
            read_trace_file(path, mapping=MAPPING)
        assert str(info.value) == f"{where}: {reason}"
        events = read_trace_file(path, mapping=MAPPING, skip_bad=True)
        assert events.bad == (BadRecord(where, reason),)
        assert events.records == 1 and events.table.num_rows == 0
    return check


# --- events ---------------------------------------------------------------------------------

def events_refused(pattern: str) -> Check:
    """Not even ``skip_bad`` reads the file: :class:`InputError` ``FILE: `` + ``pattern``."""
    def check(path: Path, tmp_path: Path) -> None:
        for skip_bad in (False, True):
            with pytest.raises(InputError) as info:
                read_events_file(path, skip_bad=skip_bad)
            message = str(info.value)
            assert re.match(re.escape(f"{path}: ") + pattern, message), (skip_bad, message)
    return check


def events_bad_line(line: int, field: str, good_rows: int) -> Check:
    """Line ``line`` is an :class:`InputError` naming ``FILE:LINE`` and ``field``; with
    ``skip_bad`` it is a counted bad record and the other rows are read."""
    def check(path: Path, tmp_path: Path) -> None:
        where = f"{path}:{line}"
        with pytest.raises(InputError) as info:
            read_events_file(path)
        message = str(info.value)
        assert message.startswith(f"{where}: field '{field}'"), message
        assert "beyond the int64 range" in message, message
        events = read_events_file(path, skip_bad=True)
        assert [b.where for b in events.bad] == [where]
        assert f"field '{field}'" in events.bad[0].reason
        assert events.table.num_rows == good_rows
        assert events.table.column("ts_ns").to_pylist() == sorted(
            events.table.column("ts_ns").to_pylist())
    return check


def events_context_as_text(column: str, text: str) -> Check:
    """An integer beyond int64 in a context column is kept, as its JSON text."""
    def check(path: Path, tmp_path: Path) -> None:
        rows = sum(1 for line in path.read_text().splitlines() if line.strip())
        for skip_bad in (False, True):
            events = read_events_file(path, skip_bad=skip_bad)
            assert events.bad == () and events.table.num_rows == rows
            values = events.table.column(column).to_pylist()
            assert text in values and all(v is None or isinstance(v, str) for v in values)
    return check


# --- NTP: NtpRejectError with its reason, counted by the client -----------------------------

class ScriptedClock:
    """A :class:`clocksync.Clock` whose successive readings are given (t1, then t4)."""

    def __init__(self, *readings_ns: int):
        self._readings: Iterator[int] = iter(readings_ns)

    def read_ns(self, system_ns: int) -> int:
        return next(self._readings)

    def now_ns(self) -> int:
        raise AssertionError("the exchange should only map its kernel stamps")


def _replaying(reply: bytes) -> Callable[[NtpPacket, int], list[bytes]]:
    """A server answering every request with ``reply``, its origin set to the request's
    transmit timestamp (so only the stored reply's own fields can be refused)."""
    def craft(request: NtpPacket, t2: int) -> list[bytes]:
        return [reply[:24] + request.transmit_ts.to_bytes(8, "big") + reply[32:]]
    return craft


def _exchange_refused(reply: bytes, match: str, clock: ScriptedClock | None = None) -> None:
    """One exchange with a server sending ``reply``: refused as absurd, counted once."""
    server = FakeServer(_replaying(reply))
    try:
        with NtpClient("127.0.0.1", server.port, timeout_s=TIMEOUT_S, interleaved=False,
                       clock=clock) as client:
            with pytest.raises(NtpRejectError, match=match) as info:
                client.exchange()
            assert info.value.reason is RejectReason.ABSURD_TIMESTAMPS
            assert client.rejected == {RejectReason.ABSURD_TIMESTAMPS.value: 1}, \
                f"refused but counted as {dict(client.rejected)}"
    finally:
        server.close()


def ntp_reply_refused(field: str) -> Check:
    """``validate_reply`` refuses the stored reply (``absurd_timestamps``, naming the
    timestamp); a client receiving it refuses it and counts it in ``rejected``."""
    match = f"reply's {field} timestamp is outside the years 2000..2099"

    def check(path: Path, tmp_path: Path) -> None:
        data = path.read_bytes()
        reply = decode(data)
        with pytest.raises(NtpRejectError, match=match) as info:
            validate_reply(reply, reply.origin_ts)
        assert info.value.reason is RejectReason.ABSURD_TIMESTAMPS
        _exchange_refused(data, match)
    return check


def ntp_exchange_refused(match: str) -> Check:
    """The stored exchange (t1, t4 read from our clock; the reply carries t2, t3): every
    reply field is sane, the four timestamps together are absurd; the client refuses the
    exchange and counts it in ``rejected``."""
    def check(path: Path, tmp_path: Path) -> None:
        doc = json.loads(path.read_text())
        data = bytes.fromhex(doc["reply_hex"])
        reply = decode(data)
        validate_reply(reply, reply.origin_ts)  # the reply alone passes every check
        assert abs(ntp_to_ns(reply.receive_ts) - doc["t2_ns"]) <= 1
        assert abs(ntp_to_ns(reply.transmit_ts) - doc["t3_ns"]) <= 1
        _exchange_refused(data, match, ScriptedClock(doc["t1_ns"], doc["t4_ns"]))
    return check


# --- the corpus -----------------------------------------------------------------------------

CASES: dict[str, Check] = {
    "table-huge-int.json": table_refused("cells.hi0_ns[0]", "finite number within ±1e+18"),
    "table-int-beyond-int64.json": table_refused(
        "cells.end_local_ns[0]", "must be an integer in 0..9223372036854775807"),
    "table-envelope-near-int64.json": table_refused(
        "cells.hi0_ns[0]", "finite number within ±1e+18, got 9e+18"),
    "config-not-utf8.toml": config_refused(r"not UTF-8 text \(.* at byte \d+\)$"),
    "config-huge-int.toml": config_refused(r"key 'min_poll_s': must be finite, got 1"),
    "config-fit-huge-int.toml": config_fit_refused("max_skew_ppm"),
    "trace-malformed-otlp-resource.json": trace_bad(1, "malformed otlp document"),
    "trace-malformed-otlp-intvalue.json": trace_bad(8, "malformed span"),
    "trace-malformed-jaeger-processid.json": trace_bad(7, "malformed span"),
    "trace-malformed-zipkin-endpoint.json": trace_bad(2, "malformed span"),
    "trace-otlp-time-beyond-int64.json": trace_bad(
        8, "timestamp 18446744073709551616 ns of stage pp_enqueue is beyond int64"),
    "events-not-utf8.jsonl": events_refused(r"not UTF-8 text \(.* at byte \d+\)$"),
    "events-int-beyond-int64.jsonl": events_bad_line(2, "ts_ns", good_rows=1),
    "events-context-int-beyond-int64.jsonl": events_context_as_text(
        "partition", "18446744073709551616"),
    "events-parquet-corrupt-metadata.parquet": events_refused(
        r"not a readable Parquet file \(.+\)$"),
    "ntp-reply-dated-2100.bin": ntp_reply_refused("receive"),
    "ntp-reply-before-1970.bin": ntp_reply_refused("receive"),
    "ntp-exchange-absurd.json": ntp_exchange_refused("negative round-trip delay"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_corpus_input_meets_its_documented_behaviour(name: str, tmp_path: Path) -> None:
    path = CORPUS / name
    assert path.is_file(), f"{path}: listed in CASES but missing from the corpus"
    CASES[name](path, tmp_path)


def test_every_corpus_file_has_a_case() -> None:
    """A file added to the corpus without a case here (or a README line) fails."""
    files = sorted(p.name for p in CORPUS.iterdir() if p.name != "README.md")
    assert files == sorted(CASES)
    readme = (CORPUS / "README.md").read_text()
    undocumented = [name for name in files if f"`{name}`" not in readme]
    assert not undocumented, f"corpus/README.md has no line for {undocumented}"
