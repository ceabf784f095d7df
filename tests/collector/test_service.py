"""``clocksync collector run`` as a real process: OTLP/HTTP protobuf in over a real socket,
Prometheus text and the JSON report out, SIGTERM loses nothing, and the raw segments
re-analyse to the numbers the live collector gave."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from clocksync.testing import otlp_protobuf
from tests._restate_world import restate_world

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from clocksync.cli import main; main()"]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return bytes(response.read())


def _post(url: str, body: bytes) -> int:
    req = urllib.request.Request(url, data=gzip.compress(body), method="POST", headers={
        "Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"})
    with urllib.request.urlopen(req, timeout=10) as response:
        response.read()
        return int(response.status)


def _wait(predicate, what: str, timeout_s: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_collector_process_end_to_end(tmp_path: Path) -> None:
    world = restate_world(tmp_path, 21, 600, 60.0, 200.0)
    docs, truth = world.docs, world.truth
    port = _free_port()
    upstream = _Upstream()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [*CLI, "collector", "run", "--listen", f"127.0.0.1:{port}", "--store",
         str(tmp_path / "tables"), "--preset", "restate", "--window", "10s",
         "--lateness", "1h", "--data-dir", str(tmp_path / "raw"),
         "--forward", f"{upstream.url}/v1/traces"],
        cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: _healthy(base), "the collector to listen")
        for doc in docs:
            assert _post(f"{base}/v1/traces", otlp_protobuf(doc)) == 200
        metrics = _get(f"{base}/metrics").decode()
        families = {f.name: f for f in text_string_to_metric_families(metrics)}
        received = sum(s.value for s in families["clocksync_collector_received_items"].samples
                       if s.name.endswith("_total"))
        assert received == sum(len(d["resourceSpans"][0]["scopeSpans"][0]["spans"])
                               for d in docs)
        _get(f"{base}/report")
        # pyarrow looks for pandas when it converts columns: the collector hides it
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        assert "pyarrow" in maps and "/pandas/" not in maps
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        upstream.close()
    assert proc.returncode == 0, err
    # the spans were relayed upstream, each with its node and corrected start
    forwarded = [span for body in upstream.bodies for rs in body.resource_spans
                 for ss in rs.scope_spans for span in ss.spans]
    assert len(forwarded) == sum(len(d["resourceSpans"][0]["scopeSpans"][0]["spans"])
                                 for d in docs)
    keys = {kv.key for kv in forwarded[0].attributes}
    assert {"clocksync.node", "clocksync.start_ref_ns", "clocksync.start_bound_ns"} <= keys
    # every accepted span is in the raw layer, and re-analyses to truth-covering hops
    segments = sorted((tmp_path / "raw").glob("*.parquet"))
    assert segments
    out = subprocess.run(
        [*CLI, "latency", *map(str, segments), "--tables", str(tmp_path / "tables"),
         "--out", str(tmp_path / "hops.parquet"), "--json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    from clocksync.latency import read_latencies

    hops = read_latencies(tmp_path / "hops.parquet")
    assert hops.num_rows == len(truth)
    true = np.array([truth[(r, h)] for r, h in zip(
        pc.cast(hops.column("request_id"), "string").to_pylist(),
        pc.cast(hops.column("hop"), "string").to_pylist(), strict=True)])
    assert np.all((hops.column("low_ns").to_numpy() <= true)
                  & (true <= hops.column("high_ns").to_numpy()))
    # the raw layer re-analyses to what the original spans give in batch, number for number
    spans = world.spans
    again = subprocess.run(
        [*CLI, "latency", str(spans), "--format", "otlp", "--preset", "restate", "--tables",
         str(tmp_path / "tables"), "--out", str(tmp_path / "batch.parquet")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    batch = read_latencies(tmp_path / "batch.parquet")

    def key(t: pa.Table) -> pa.Table:
        cols = {c: pc.cast(t.column(c), "string") for c in ("request_id", "hop")}
        cols |= {c: t.column(c) for c in ("low_ns", "high_ns", "src_ts_ns", "dst_ts_ns")}
        return pa.table(cols).sort_by([("request_id", "ascending"), ("hop", "ascending")])

    assert key(hops).equals(key(batch))


class _Upstream:
    """An OTLP/HTTP receiver on loopback that keeps what it is sent."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from clocksync.latency._otlp import otlp_request

        bodies: list = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    data = gzip.decompress(data)
                bodies.append(otlp_request(data, "application/x-protobuf"))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.bodies = bodies
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _healthy(base: str) -> bool:
    try:
        return json.loads(_get(f"{base}/healthz")) is not None
    except OSError:
        return False


@pytest.mark.parametrize("env, expected", [({}, "jemalloc"),
                                           ({"ARROW_DEFAULT_MEMORY_POOL": "system"}, "system")])
def test_the_collector_puts_arrow_on_jemalloc_unless_told(env: dict[str, str],
                                                          expected: str) -> None:
    code = ("import pyarrow as pa; from clocksync.collector import arrow_memory_pool;"
            " name = arrow_memory_pool();"
            " print(name, pa.default_memory_pool().backend_name, pa.array([1]).sum())")
    clean = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    out = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == [expected, expected, "1"]
