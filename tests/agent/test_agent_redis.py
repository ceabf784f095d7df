"""The Redis store against a real redis-server: round trip, generation, expiry as liveness,
pub/sub refresh, password from URL/env/file, and errors that never show the password."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from clocksync import CorrectionTable, Corrector, Sample, StoreError, fit_table, open_store
from clocksync._io._store._redis import (  # tests the private module clocksync._io._store._redis
    PASSWORD_ENV,
    RedisStore,
)

from .conftest import (
    REDIS_PASSWORD,
    RedisServer,
    free_port,
    kill_pid,
    make_tls_files,
    needs_redis,
    start_redis,
)

T0 = 1_767_225_600 * 10**9


def _table(node: str, offset_ns: float = 1_000.0, n: int = 20) -> CorrectionTable:
    rng = np.random.default_rng(len(node))
    samples = [Sample(node, T0 + i * 10**9, offset_ns + float(rng.normal(0, 100)), 30_000.0)
               for i in range(n)]
    return fit_table(samples, reference="test")


def _prefix() -> str:
    return "t" + uuid.uuid4().hex[:10]


def test_round_trip_and_version(redis_server: RedisServer) -> None:
    url = redis_server.url(query=f"prefix={_prefix()}&ttl_s=60")
    store = open_store(url)
    assert isinstance(store, RedisStore)
    assert REDIS_PASSWORD not in store.url
    v0 = store.version()
    a, b = _table("pp-1", 2e6), _table("bifrost-1", -1e6)
    store.write(a)
    store.write(b)
    assert store.version() != v0
    got = store.read_all()
    assert sorted(got) == ["bifrost-1", "pp-1"]
    assert got["pp-1"].to_json() == a.to_json()
    corrector = Corrector.from_store(url)
    ref, bound = corrector.correct("pp-1", T0 + 5 * 10**9)
    assert abs(ref - (T0 + 5 * 10**9) - 2e6) <= bound


def test_expiry_is_liveness(redis_server: RedisServer) -> None:
    url = redis_server.url(query=f"prefix={_prefix()}&ttl_s=0.3")
    store = open_store(url)
    store.write(_table("short-lived"))
    assert list(store.read_all()) == ["short-lived"]
    before = store.version()
    deadline = time.monotonic() + 10.0  # expiry is due after 0.3 s; a loaded machine may lag
    while store.read_all() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.read_all() == {}
    assert store.version() != before  # an expiry is a change readers can see


def test_pubsub_notification_refreshes_a_corrector(redis_server: RedisServer) -> None:
    url = redis_server.url(query=f"prefix={_prefix()}")
    writer = RedisStore(url)
    writer.write(_table("n1", 1_000.0))
    corrector = Corrector.from_store(url)
    assert corrector.refresh() is False  # nothing changed yet
    reader = RedisStore(url)
    seen = reader.version()
    timer = threading.Timer(0.2, writer.write, args=(_table("n1", 5e6),))
    timer.start()
    try:
        assert reader.wait_for_update(timeout_s=5.0, since=seen) is True
    finally:
        timer.join()
    assert corrector.refresh() is True
    ref, bound = corrector.correct("n1", T0)
    assert abs(ref - T0 - 5e6) <= bound
    assert reader.wait_for_update(timeout_s=0.2) is False  # nothing else was published


def test_readers_never_see_a_torn_table(redis_server: RedisServer) -> None:
    url = redis_server.url(query=f"prefix={_prefix()}")
    tables = [_table("n1", float(k) * 1e5, n=30 + k) for k in range(5)]
    writer = RedisStore(url)
    writer.write(tables[0])
    stop = threading.Event()

    def write_loop() -> None:
        k = 0
        while not stop.is_set():
            writer.write(tables[k % len(tables)])
            k += 1

    thread = threading.Thread(target=write_loop)
    thread.start()
    texts = {t.to_json() for t in tables}
    try:
        reader = RedisStore(url)
        for _ in range(100):
            got = reader.read_all()["n1"]  # parses and validates: a torn value would fail
            assert got.to_json() in texts
    finally:
        stop.set()
        thread.join()


def test_password_from_env_and_file(redis_server: RedisServer, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = _prefix()
    bare = redis_server.url(password=False, query=f"prefix={prefix}")
    monkeypatch.setenv(PASSWORD_ENV, REDIS_PASSWORD)
    RedisStore(bare).write(_table("env"))
    monkeypatch.delenv(PASSWORD_ENV)
    secret = tmp_path / "redis.pw"
    secret.write_text(REDIS_PASSWORD + "\n")
    assert "env" in RedisStore(f"{bare}&password_file={secret}").read_all()


def test_errors_never_show_the_password(redis_server: RedisServer) -> None:
    wrong = f"redis://:WrongSecret99@127.0.0.1:{redis_server.port}/0"
    with pytest.raises(StoreError) as info:
        RedisStore(wrong).read_all()
    assert "WrongSecret99" not in str(info.value)
    assert "***" in str(info.value)
    with pytest.raises(StoreError) as info:
        RedisStore(redis_server.url(password=False)).write(_table("x"))
    assert "127.0.0.1" in str(info.value)
    closed = f"redis://:TopSecret1@127.0.0.1:{redis_server.port + 1}/0"
    with pytest.raises(StoreError) as info:
        RedisStore(closed, timeout_s=0.5).version()
    assert "TopSecret1" not in str(info.value)
    with pytest.raises(StoreError, match="ttl_s"):
        RedisStore(redis_server.url(query="ttl_s=-1"))


def test_tls_with_ca_verification(tmp_path: Path) -> None:
    needs_redis()
    ca, cert, key = make_tls_files(tmp_path)
    port = free_port()
    pid = start_redis(port, tmp_path, REDIS_PASSWORD, tls=(ca, cert, key))
    try:
        url = (f"rediss://:{REDIS_PASSWORD}@127.0.0.1:{port}/0?prefix=tls"
               f"&ssl_ca_certs={ca}&ssl_cert_reqs=required")
        open_store(url).write(_table("tls-node"))
        assert list(Corrector.from_store(url).nodes) == ["tls-node"]
        plain = f"redis://:{REDIS_PASSWORD}@127.0.0.1:{port}/0?prefix=tls"
        with pytest.raises(StoreError) as info:  # no TLS: the server drops us
            RedisStore(plain, timeout_s=1.0).read_all()
        assert REDIS_PASSWORD not in str(info.value)
        untrusted = f"rediss://:{REDIS_PASSWORD}@127.0.0.1:{port}/0?ssl_cert_reqs=required"
        with pytest.raises(StoreError, match=r"(?i)certificate|ssl"):  # not our CA: refused
            RedisStore(untrusted, timeout_s=1.0).read_all()
    finally:
        kill_pid(pid)


def test_signed_tables_in_redis(redis_server: RedisServer) -> None:
    """With a table key the Redis store signs what it writes; a rogue writer without the
    key (same Redis, same prefix) is refused by key-holding readers."""
    from clocksync import SignatureError, TableKey

    key = TableKey(b"shared secret for all agents, 32b")
    url = redis_server.url(query=f"prefix={_prefix()}")
    open_store(url, table_key=key).write(_table("pp-1", 2e6))
    assert Corrector.from_store(url, table_key=key).nodes == ("pp-1",)
    open_store(url).write(_table("pp-1", -5e6))  # rogue: shifts pp-1 by 7 ms, unsigned
    with pytest.raises(SignatureError, match=r"pp-1.*not signed"):
        Corrector.from_store(url, table_key=key, strict=True)
    lenient = Corrector.from_store(url, table_key=key)  # the rogue table is never used
    assert lenient.nodes == () and "not signed" in lenient.load_errors["pp-1"]
