"""The Restate lab's live side: the clocksync collector and our own Prometheus inside the
namespace, a consistent read of the collector's window, Prometheus' view of it, and a TCP
bridge from the host's loopback into the namespace's.

Everything listens on 127.0.0.1 inside the namespace (which has only ``lo``). The bridge
(:class:`Bridge`) runs in the host's network namespace: it accepts on a host loopback port and,
per connection, a thread enters the lab namespace (``setns(2)`` on ``/var/run/netns/NAME``,
which switches only the calling thread) and connects to a fixed loopback port there; bytes
are copied both ways. It connects to nothing but ``127.0.0.1`` inside the namespace.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import socket
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.restate.cluster import REPO_ROOT, Processes, http_json, wait_until

__all__ = ["COLLECTOR_JOB", "RULES", "Bridge", "LiveConfig", "heartbeat",
           "prometheus_available", "prometheus_status", "read_window", "start_collector",
           "start_prometheus"]

RULES = REPO_ROOT / "contrib" / "prometheus" / "clocksync-collector.rules.yml"
#: the job name the rules and the dashboard expect
COLLECTOR_JOB = "clocksync-collector"
_CLONE_NEWNET = 0x40000000


@dataclass(frozen=True)
class LiveConfig:
    """The collector's and Prometheus' ports (inside the namespace) and the collector's
    window: one window longer than the whole run, so the final window holds every request;
    ``step`` is how often it moves, ``lateness`` how long it waits for a node's batch."""

    collector_port: int = 4400
    prometheus_port: int = 9090
    window_s: float = 120.0
    step_s: float = 2.0
    lateness_s: float = 5.0

    @property
    def collector(self) -> str:
        return f"http://127.0.0.1:{self.collector_port}"

    @property
    def prometheus(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"


def start_collector(procs: Processes, command: Callable[..., list[str]], env: dict[str, str],
                    tables: Path, data_dir: Path, live: LiveConfig) -> str:
    """``clocksync collector run --preset restate`` on the tables' store; its /v1/traces URL."""
    procs.start("collector", command(
        "collector", "run", "--listen", f"127.0.0.1:{live.collector_port}",
        "--store", str(tables), "--preset", "restate", "--window", f"{live.window_s:g}s",
        "--step", f"{live.step_s:g}s", "--lateness", f"{live.lateness_s:g}s",
        "--data-dir", str(data_dir)), env=env)
    wait_until(lambda: http_json(live.collector + "/healthz", timeout_s=2)[0] == 200, 30,
               "collector", procs.check)
    return live.collector + "/v1/traces"


def start_prometheus(procs: Processes, work: Path, live: LiveConfig) -> None:
    """Our own Prometheus (the Debian ``prometheus``) on loopback, scraping the collector
    every second with the collector's rules loaded; temporary storage under ``work``."""
    import yaml

    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{"job_name": COLLECTOR_JOB, "static_configs": [
            {"targets": [f"127.0.0.1:{live.collector_port}"]}]}],
    }
    path = work / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    procs.start("prometheus", ["prometheus", "--config.file", str(path),
                               "--storage.tsdb.path", str(work / "prometheus-data"),
                               "--web.listen-address", f"127.0.0.1:{live.prometheus_port}",
                               "--log.level", "warn"])
    wait_until(lambda: _prom(live, "/api/v1/status/buildinfo") is not None, 30, "prometheus",
               procs.check)


def _prom(live: LiveConfig, path: str, **params: str) -> Any:
    url = live.prometheus + path + ("?" + urllib.parse.urlencode(params) if params else "")
    with urllib.request.urlopen(url, timeout=5) as reply:
        body = json.loads(reply.read())
    if body.get("status") != "success":
        raise RuntimeError(f"prometheus {path}: {body}")
    return body["data"]


def prometheus_status(live: LiveConfig, timeout_s: float = 30.0) -> dict[str, Any]:
    """Through Prometheus' HTTP API, once the target is up and every rule evaluated (or
    ``timeout_s``): the target's health, the rules loaded against the rules file, their
    health, and how many ``clocksync_hop_latency_seconds`` series Prometheus holds."""
    import yaml

    expected = sum(len(g["rules"]) for g in yaml.safe_load(RULES.read_text())["groups"])
    status: dict[str, Any] = {}

    def ready() -> bool:
        targets = _prom(live, "/api/v1/targets")["activeTargets"]
        rules = [r for g in _prom(live, "/api/v1/rules")["groups"] for r in g["rules"]]
        series = _prom(live, "/api/v1/query", query="clocksync_hop_latency_seconds")["result"]
        status.update({
            "targets": [{"job": t["labels"].get("job"), "url": t["scrapeUrl"],
                         "health": t["health"], "last_error": t.get("lastError", "")}
                        for t in targets],
            "rules_expected": expected, "rules_loaded": len(rules),
            "rules_ok": sum(1 for r in rules if r["health"] == "ok"),
            "rule_errors": [(r["name"], r.get("lastError")) for r in rules
                            if r["health"] == "err"],
            "hop_latency_series": len(series)})
        status["target_up"] = (len(targets) == 1 and targets[0]["health"] == "up"
                               and targets[0]["labels"].get("job") == COLLECTOR_JOB)
        status["rules_healthy"] = status["rules_ok"] == expected == len(rules)
        return bool(status["target_up"] and status["rules_healthy"] and series)

    try:
        wait_until(ready, timeout_s, "prometheus target up, rules evaluated", every_s=0.5)
    except RuntimeError as exc:
        status["error"] = str(exc)
    return status


def read_window(live: LiveConfig, attempts: int = 5) -> tuple[dict[str, Any], str]:
    """``(/report, /metrics text)`` of one and the same window: report, metrics, report
    again, retried until both reports name the same window."""
    for _ in range(attempts):
        _, before = http_json(live.collector + "/report", timeout_s=10)
        _, metrics = http_json(live.collector + "/metrics", timeout_s=10)
        _, after = http_json(live.collector + "/report", timeout_s=10)
        if (isinstance(before, dict) and isinstance(after, dict)
                and before.get("window_end_ns") == after.get("window_end_ns")):
            return after, str(metrics)
        time.sleep(0.2)
    raise RuntimeError("the collector's window kept moving while being read")


# -- host loopback -> namespace loopback ----------------------------------------------------

def _setns(ns: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/var/run/netns/{ns}", os.O_RDONLY)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({ns}): {os.strerror(err)}")
    finally:
        os.close(fd)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


@dataclass
class Bridge:
    """TCP forwarder: ``127.0.0.1:host_port`` on the host -> ``127.0.0.1:ns_port`` inside
    the network namespace ``ns``; one thread per connection enters the namespace (its own
    thread only) to connect. ``routes``: ``(host_port, ns_port)`` pairs."""

    ns: str
    routes: Sequence[tuple[int, int]]
    _servers: list[socket.socket] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Bridge:
        for host_port, ns_port in self.routes:
            server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(("127.0.0.1", host_port))
            server.listen(64)
            server.settimeout(0.5)
            self._servers.append(server)
            threading.Thread(target=self._accept, args=(server, ns_port), daemon=True,
                             name=f"bridge-{host_port}").start()
        return self

    def _accept(self, server: socket.socket, ns_port: int) -> None:
        while not self._stop.is_set():
            try:
                client, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._connect, args=(client, ns_port), daemon=True).start()

    def _connect(self, client: socket.socket, ns_port: int) -> None:
        try:
            _setns(self.ns)  # this thread only; it ends with the connection
            inner = socket.create_connection(("127.0.0.1", ns_port), timeout=5)
        except OSError:
            client.close()
            return
        inner.settimeout(None)
        back = threading.Thread(target=_pump, args=(inner, client), daemon=True)
        back.start()
        _pump(client, inner)
        back.join()
        client.close()
        inner.close()

    def stop(self) -> None:
        self._stop.set()
        for server in self._servers:
            with contextlib.suppress(OSError):
                server.close()


def heartbeat(ports: Sequence[int], stop: threading.Event, every_s: float = 0.25,
              counts: dict[str, int] | None = None) -> threading.Thread:
    """A thread calling ``Hop/call`` every ``every_s`` round-robin over the ingresses until
    ``stop``: keeps every node's spans flowing, so the collector's watermark moves."""
    tally = counts if counts is not None else {}

    def run() -> None:
        i = 0
        while not stop.wait(every_s):
            port = ports[i % len(ports)]
            try:
                status, _ = http_json(f"http://127.0.0.1:{port}/Hop/call",
                                      {"key": f"hb{i}", "amount": 1}, timeout_s=10)
                key = "ok" if status == 200 else f"http_{status}"
            except OSError as exc:
                key = type(exc).__name__
            tally[key] = tally.get(key, 0) + 1
            i += 1

    thread = threading.Thread(target=run, name="heartbeat", daemon=True)
    thread.start()
    return thread


def prometheus_available() -> bool:
    return shutil.which("prometheus") is not None
