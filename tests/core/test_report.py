"""Skew report status on the reader side, through the table's publisher block: the agent's
published status while it is alive, free-running once it stopped republishing, ``stopped``
at once after a shutdown; old tables (``extra.agent``) and offline tables stay readable."""

from __future__ import annotations

import dataclasses
import json

import pytest

from clocksync import (
    STATUS_MEANINGS,
    CorrectionTable,
    Corrector,
    PublisherBlock,
    SchemaError,
    Status,
    fit_table,
)
from clocksync._report import (  # tests the private module clocksync._report
    FREE_RUNNING_POLLS,
    REPUBLISH_S,
    skew_rows,
)

POLL_S = 16.0


def _status(table: CorrectionTable, now: int) -> str:
    return skew_rows(Corrector([table]), now)[0].status


def test_status_follows_the_publisher_while_fresh(stepped_samples) -> None:  # type: ignore[no-untyped-def]
    table = fit_table(stepped_samples)
    last = int(table.last_sample_local_ns or 0)
    # refits are rate-limited: the last fitted sample is old, but the agent is alive
    now = last + int(20 * POLL_S * 1e9)
    fresh = dataclasses.replace(table, status="synchronised", generated_at_ns=now - 10**9,
                                publisher=PublisherBlock(poll_interval_s=POLL_S))
    assert _status(fresh, now) == "synchronised"
    stale_after_s = FREE_RUNNING_POLLS * POLL_S + 2 * REPUBLISH_S
    assert fresh.publisher is not None and fresh.publisher.stale_after_s() == stale_after_s
    gone = dataclasses.replace(fresh, generated_at_ns=now - int((stale_after_s + 1) * 1e9))
    assert _status(gone, now) == "free_running"
    disrupted = dataclasses.replace(gone, status="disrupted")
    assert _status(disrupted, now) == "disrupted"


def test_a_stopped_agent_reads_stopped_at_once_then_free_running(stepped_samples) -> None:  # type: ignore[no-untyped-def]
    table = fit_table(stepped_samples)
    last = int(table.last_sample_local_ns or 0)
    stopped = dataclasses.replace(table, status="stopped", generated_at_ns=last + 10**9,
                                  publisher=PublisherBlock(poll_interval_s=POLL_S))
    assert _status(stopped, last + 2 * 10**9) == "stopped"
    late = last + int((FREE_RUNNING_POLLS * POLL_S + 1) * 1e9)
    assert _status(stopped, late) == "free_running"


def test_the_block_round_trips_and_old_tables_stay_readable(stepped_samples) -> None:  # type: ignore[no-untyped-def]
    table = fit_table(stepped_samples)
    block = PublisherBlock(poll_interval_s=2.0, republish_s=30.0, sources=("ntp:a:123",),
                           sources_agree=False, falsetickers=("ntp:a:123",))
    published = dataclasses.replace(table, status="stopped", publisher=block)
    again = CorrectionTable.from_json(published.to_json())
    assert again.publisher == block and again.status == Status.STOPPED
    assert "publisher" not in json.loads(table.to_json())  # offline: no block
    assert CorrectionTable.from_json(table.to_json()).publisher is None
    # a table from before the block: the same facts in extra.agent are read
    old = json.loads(table.to_json())
    old["extra"]["agent"] = {"status": "synchronised", "poll_interval_s": 4.0,
                             "sources": ["ntp:b:123"], "sources_agree": None,
                             "falsetickers": []}
    legacy = CorrectionTable.from_json(json.dumps(old))
    assert legacy.publisher == PublisherBlock(poll_interval_s=4.0, sources=("ntp:b:123",))
    old["extra"]["agent"] = {"poll_interval_s": "soon"}  # unreadable: an offline table
    assert CorrectionTable.from_json(json.dumps(old)).publisher is None


@pytest.mark.parametrize(("block", "field"), [
    ([], "'publisher'"),
    ({}, "'publisher.poll_interval_s': missing"),
    ({"poll_interval_s": 0}, "'publisher.poll_interval_s'"),
    ({"poll_interval_s": True}, "'publisher.poll_interval_s'"),
    ({"poll_interval_s": 1, "republish_s": -1}, "'publisher.republish_s'"),
    ({"poll_interval_s": 1, "sources": "a"}, "'publisher.sources'"),
    ({"poll_interval_s": 1, "falsetickers": [1]}, "'publisher.falsetickers'"),
    ({"poll_interval_s": 1, "sources_agree": "yes"}, "'publisher.sources_agree'"),
])
def test_a_bad_block_is_refused_naming_the_field(stepped_samples, block: object,  # type: ignore[no-untyped-def]
                                                 field: str) -> None:
    obj = json.loads(fit_table(stepped_samples).to_json())
    obj["publisher"] = block
    with pytest.raises(SchemaError, match=field):
        CorrectionTable.from_json(json.dumps(obj), source="t.json")


def test_every_status_has_a_meaning() -> None:
    assert set(STATUS_MEANINGS) == set(Status)
    assert [s.value for s in Status] == ["unknown", "synchronised", "free_running",
                                         "disrupted", "serving", "stopped"]
