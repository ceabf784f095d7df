"""``clocksync skew report`` over agents: the http:// agent store, --plot with the sample log."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from clocksync import StoreError, open_store
from clocksync.agent import Agent, AgentConfig, AgentHttpServer
from clocksync.cli import main
from clocksync.ntp import NtpServer

from .conftest import free_port


@pytest.mark.slow
def test_report_from_agent_urls_and_plot(tmp_path: Path, ntp_server: NtpServer) -> None:
    cfg = AgentConfig.defaults(node="edge-1", ntp_servers=[f"127.0.0.1:{ntp_server.port}"],
                               data_dir=str(tmp_path / "data"), http_listen="",
                               min_poll_s=0.1, max_poll_s=0.2, refit_min_s=0.3,
                               timeout_s=0.2, burst=2)
    agent = Agent(cfg)
    http = AgentHttpServer(agent.snapshot, "127.0.0.1", 0).start()
    idle = AgentHttpServer(Agent(AgentConfig.defaults(
        node="idle", data_dir=str(tmp_path / "idle"), http_listen="")).snapshot,
        "127.0.0.1", 0).start()  # no sources, no table yet: left out of the report
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while agent.table is None or agent.table.sample_count < 8:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        agent.samples.flush()
        runner = CliRunner()
        store = f"{http.url},{idle.url}"
        result = runner.invoke(main, ["skew", "report", "--store", store, "--json"])
        assert result.exit_code == 0, result.output
        (row,) = json.loads(result.output)["nodes"]
        assert row["node"] == "edge-1" and row["status"] == "synchronised"
        assert abs(row["offset_now_ns"]) <= row["bound_now_ns"]  # true offset is 0
        png = tmp_path / "skew.png"
        result = runner.invoke(main, ["skew", "report", "--store", http.url, "--plot", str(png),
                                      "--samples", str(tmp_path / "data" / "samples")])
        assert result.exit_code == 0, result.output
        assert "edge-1" in result.output
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
        result = runner.invoke(main, ["skew", "report", "--store", http.url,
                                      "--samples", str(tmp_path)])
        assert result.exit_code == 2 and "--plot" in result.output
    finally:
        agent.request_stop()
        thread.join(10)
        http.stop()
        idle.stop()


def test_agent_store_errors() -> None:
    with pytest.raises(StoreError, match="read-only"):
        open_store("http://127.0.0.1:1").write(None)  # type: ignore[arg-type]
    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(StoreError, match="cannot reach"):
        open_store(dead).read_all()
