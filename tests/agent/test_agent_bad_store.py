"""Store URLs that can't hurt (issue 14, cases 5 and 6) against a real redis-server: an
unknown query parameter is an error listing the known ones, in ``skew report`` and in
``agent run``; a store without tables is an error unless ``--allow-empty``; an unreadable
table of one node is reported by node while the others are shown (exit 2)."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
from click.testing import CliRunner

from clocksync import Corrector, Sample, StoreError, fit_table, open_store
from clocksync.cli import main

from .conftest import RedisServer

T0 = 1_767_225_600 * 10**9


def _one_line_error(output: str) -> str:
    assert "Traceback" not in output
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    return lines[0]


def test_case5_unknown_parameter_lists_the_known_ones(redis_server: RedisServer) -> None:
    url = redis_server.url(query="ttl=5")
    res = CliRunner().invoke(main, ["skew", "report", "--store", url])
    assert res.exit_code == 1
    line = _one_line_error(res.output)
    assert "unknown parameter 'ttl' (known: ttl_s, prefix, password_file" in line
    assert redis_server.password not in line
    res = CliRunner().invoke(main, ["agent", "run", "--ntp-server", "127.0.0.1:1",
                                    "--store", url, "--data-dir", "/nonexistent-cs"])
    assert res.exit_code != 0 and "unknown parameter 'ttl'" in res.output
    assert "Traceback" not in res.output and "TypeError" not in res.output
    with pytest.raises(StoreError, match="unknown parameter 'ttl'"):
        open_store(url)
    with pytest.raises(StoreError, match="needs a rediss://"):
        open_store(redis_server.url(query="ssl_certfile=/x"))


def test_case6_an_empty_store_is_an_error_unless_allowed(redis_server: RedisServer) -> None:
    url = redis_server.url(db=7, query=f"prefix=empty{uuid.uuid4().hex[:8]}")
    res = CliRunner().invoke(main, ["skew", "report", "--store", url])
    assert res.exit_code == 1
    assert "no tables in the store (--allow-empty" in _one_line_error(res.output)
    res = CliRunner().invoke(main, ["skew", "report", "--store", url, "--allow-empty",
                                    "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["nodes"] == []


def test_one_unreadable_table_in_redis_is_reported_by_node(redis_server: RedisServer) -> None:
    prefix = f"part{uuid.uuid4().hex[:8]}"
    url = redis_server.url(query=f"prefix={prefix}&ttl_s=0")
    store = open_store(url)
    rng = np.random.default_rng(1)
    store.write(fit_table([Sample("good", T0 + i * 10**9, 500 + float(rng.normal(0, 50)),
                                  30_000.0) for i in range(20)]))
    store.write(fit_table([Sample("bad", T0 + i * 10**9, 500.0, 30_000.0)
                           for i in range(20)]))
    import redis  # corrupt one node's value in place, as a broken writer would

    redis.Redis.from_url(redis_server.url()).set(f"{prefix}:table:bad", b'{"schema": 3}')
    corrector = Corrector.from_store(url)
    assert corrector.nodes == ("good",) and list(corrector.load_errors) == ["bad"]
    res = CliRunner().invoke(main, ["skew", "report", "--store", url,
                                    "--at-ns", str(T0 + 30 * 10**9)])
    assert res.exit_code == 2
    assert "good" in res.stdout and "node bad: table not loaded" in res.stderr
    res = CliRunner().invoke(main, ["skew", "report", "--store", url, "--strict"])
    assert res.exit_code == 1 and "bad" in _one_line_error(res.output)
