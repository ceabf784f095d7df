"""CPU share of real agent processes: a reference agent (no source, serving NTP) and a
measuring agent polling it, each a ``clocksync agent run`` process on loopback. After both
are up (the measuring agent has published), their CPU time (``/proc/PID/stat`` utime +
stime, plus cutime + cstime of reaped children) over the next 12 s — a dozen polls of the
measuring agent (1 s apart while its model is young), each answered by the reference — must
stay under 2 % of one core each (both use about 0.2-0.3 %). The measuring agent then stops on
SIGTERM (exit 0) and its final table holds the samples it took meanwhile (at least 10). A
reference agent once spun a core: its loop never waited."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clocksync import CorrectionTable

from .conftest import free_port

SPAN_S = 12.0
MAX_SHARE = 0.02
TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / TICKS  # utime stime cutime cstime


def _agent(log: Path, *args: str) -> subprocess.Popen[bytes]:
    with open(log, "wb") as err:
        return subprocess.Popen([sys.executable, "-c", "from clocksync.cli import main; main()",
                                 "agent", "run", "--log-level", "error", *args],
                                stdout=subprocess.DEVNULL, stderr=err,
                                cwd=Path(__file__).parents[2])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.slow
def test_reference_and_measuring_agents_use_under_2_percent_of_a_core(
        tmp_path: Path) -> None:
    ntp_port = free_port(socket.SOCK_DGRAM)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        reference = _agent(tmp_path / "ref.log", "--node", "ref", "--serve-port", str(ntp_port),
                           "--data-dir", str(tmp_path / "ref"), "--http", "")
        procs.append(reference)
        table = tmp_path / "edge" / "tables" / "edge.table.json"
        measuring = _agent(tmp_path / "edge.log", "--node", "edge",
                           "--peer", f"127.0.0.1:{ntp_port}",
                           "--data-dir", str(tmp_path / "edge"), "--http", "")
        procs.append(measuring)
        deadline = time.monotonic() + 30
        while not table.exists():
            for proc in procs:
                assert proc.poll() is None, _logs(tmp_path)
            assert time.monotonic() < deadline, "the measuring agent published no table"
            time.sleep(0.1)
        time.sleep(1.0)  # past the first refit's imports
        start = {p.pid: _cpu_s(p.pid) for p in procs}
        time.sleep(SPAN_S)
        shares = {p.pid: (_cpu_s(p.pid) - start[p.pid]) / SPAN_S for p in procs}
        for proc in procs:
            assert proc.poll() is None, _logs(tmp_path)
        print(f"CPU share over {SPAN_S:g} s: reference {100 * shares[reference.pid]:.2f} %, "
              f"measuring {100 * shares[measuring.pid]:.2f} % of one core")
        assert shares[reference.pid] < MAX_SHARE
        assert shares[measuring.pid] < MAX_SHARE
        # it measured all along: SIGTERM refits and publishes what it took (refits while
        # running come every 10 s by default)
        measuring.send_signal(signal.SIGTERM)
        assert measuring.wait(20) == 0, _logs(tmp_path)
        assert CorrectionTable.from_json(table.read_text()).sample_count >= 10
    finally:
        for proc in procs:
            _stop(proc)


def _logs(tmp_path: Path) -> str:
    return "\n".join(f"{p.name}: {p.read_text(errors='replace')[-2000:]}"
                     for p in sorted(tmp_path.glob("*.log")))
