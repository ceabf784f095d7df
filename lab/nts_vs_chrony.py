"""Our NTS client beside our plain NTP client and chronyd's own NTS client, against a
chronyd NTS server, on one veth between two network namespaces.

Topology (lab.netlab; all namespaces share one system clock, so the true offset is exactly
0 and every measured offset is a measured error)::

    {prefix}a [chronyd: NTP + NTS-KE server, local stratum 1, test CA cert] 10.200.x.1
         | direct veth
    {prefix}b [our NTS client, our plain client, chronyd -x NTS client] 10.200.x.3 ...

Each client polls every 0.25 s for ``--seconds`` from its own source address (servers keep
interleaved-mode state per address); ours in interleaved mode (the default), NTS and plain,
each once with single exchanges and once with the min-delay sample of a burst of 3
exchanges 2 ms apart ("b3"); chronyd as a ``noselect`` NTS source (its defaults otherwise)
whose raw offsets come from its ``measurements.log``. NTS-KE time
is measured on the wire for both NTS clients alike, by a packet sniffer in the client
namespace: from the client's TCP SYN to the first FIN or RST of that connection (either
side); ours also in process (connect to keys exported, including loading the CA file).
Our client runs ``--ke-runs`` NTS-KEs after measuring; chronyd's one at start is counted.

Run as root: ``python -m lab.nts_vs_chrony [--seconds S]``. Nothing touches the clock:
every chronyd runs with ``-x``.

Helpers for tests: :func:`make_test_pki` (a throw-away P-256 CA and server certificate made
with the openssl CLI) and :func:`nts_server_conf` (a chronyd NTS server config).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import select
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.netlab import Topology, missing_requirements
from lab.ntp_vs_chrony import Measured, Stats, chrony_workdir, parse_measurements

__all__ = [
    "Row",
    "TestPki",
    "format_table",
    "make_test_pki",
    "nts_client_conf",
    "nts_server_conf",
    "run_lab",
]

POLL_S = 0.25
KE_PORT = 4460
NTP_PORT = 123


@dataclass(frozen=True, slots=True)
class TestPki:
    """Files of a throw-away PKI: CA certificate, server key and server certificate."""

    ca_cert: Path
    server_key: Path
    server_cert: Path


def make_test_pki(directory: Path, san: str = "DNS:localhost,IP:127.0.0.1",
                  ca_name: str = "clocksync test CA") -> TestPki:
    """A P-256 CA and a server certificate with subjectAltName ``san``, valid for 2 days.

    The server key is made readable by group ``_chrony`` (chronyd drops privileges to that
    user; without read access it cannot load its key and every TLS client just sees EOF).
    """
    ca_key, ca, key, csr, cert = (directory / n for n in
                                  ("ca.key", "ca.crt", "srv.key", "srv.csr", "srv.crt"))
    ext = directory / "srv.ext"
    ext.write_text(f"subjectAltName={san}\nbasicConstraints=critical,CA:FALSE\n"
                   "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)

    curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    run("req", "-x509", *curve, "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
        "-subj", f"/CN={ca_name}", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", *curve, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext))
    shutil.chown(key, group="_chrony")
    key.chmod(0o640)
    return TestPki(ca, key, cert)


def nts_server_conf(workdir: Path, pki: TestPki, *, bind: str, allow: str, port: int,
                    ke_port: int, ntp_server: str | None = None) -> Path:
    """Write a measure-only chronyd NTP + NTS-KE server config; returns its path.

    ``ntp_server``: the NTP server address NTS-KE tells clients to use (chronyd's
    ``ntsntpserver``; default: none, so clients use the NTS-KE server's address)."""
    lines = ["local stratum 1", f"bindaddress {bind}", f"allow {allow}", f"port {port}",
             f"ntsport {ke_port}", f"ntsserverkey {pki.server_key}",
             f"ntsservercert {pki.server_cert}", f"ntsdumpdir {workdir}", "ntsprocesses 1",
             "cmdport 0", f"pidfile {workdir}/chronyd.pid", f"driftfile {workdir}/drift",
             f"logdir {workdir}", *([f"ntsntpserver {ntp_server}"] if ntp_server else [])]
    conf = workdir / "nts-server.conf"
    conf.write_text("\n".join(lines) + "\n")
    return conf


def nts_client_conf(workdir: Path, server: str, ca_cert: Path, *, port: int, ke_port: int,
                    source: str | None = None) -> Path:
    """A chronyd client config: one NTS source polled every 0.25 s, never selected (so
    ``measurements.log`` keeps raw offsets against the true clock)."""
    lines = [f"server {server} port {port} nts ntsport {ke_port} iburst minpoll -2 "
             "maxpoll -2 noselect", f"ntstrustedcerts {ca_cert}", "port 0",
             *([f"bindacqaddress {source}"] if source else []),
             f"ntsdumpdir {workdir}", "cmdport 0", f"pidfile {workdir}/chronyd.pid",
             f"driftfile {workdir}/drift", f"logdir {workdir}", "log measurements"]
    conf = workdir / "nts-client.conf"
    conf.write_text("\n".join(lines) + "\n")
    return conf


# -- workers (run inside the client namespace) ----------------------------------------------


def _ours(server: str, ca_file: str, seconds: float, source: str, nts: bool,
          ke_runs: int, burst: int) -> int:
    """Every POLL_S one exchange (or the min-delay sample of a burst of ``burst`` exchanges
    2 ms apart); one JSON line per sample or error; then ``ke_runs`` NTS-KEs, one JSON line
    each with the in-process duration."""
    from clocksync.ntp import (
        NtpClient,
        NtpRejectError,
        NtpTimeoutError,
        NtsClient,
        NtsKeyExchangeError,
    )

    client: NtpClient | NtsClient
    if nts:
        client = NtsClient(server, KE_PORT, ca_file=ca_file, node="lab", timeout_s=0.5,
                           source_address=source)
    else:
        client = NtpClient(server, NTP_PORT, node="lab", timeout_s=0.5, source_address=source)
    end = time.monotonic() + seconds
    with client:
        next_t = time.monotonic()
        while time.monotonic() < end:
            try:
                s = (client.exchange().sample if burst <= 1
                     else client.burst(burst, interval_s=0.002).best.sample)
                print(json.dumps({"offset_ns": s.offset_ns, "delay_ns": s.delay_ns,
                                  "bound_ns": s.bound}), flush=True)
            except (NtpRejectError, NtpTimeoutError, NtsKeyExchangeError, OSError) as exc:
                print(json.dumps({"error": str(exc)}), flush=True)
            next_t += POLL_S
            time.sleep(max(0.0, next_t - time.monotonic()))
        if isinstance(client, NtsClient):
            print(json.dumps({"ke_s": client.last_ke_s, "first": True}), flush=True)
            for _ in range(ke_runs):
                time.sleep(0.05)
                print(json.dumps({"ke_s": client.key_exchange().duration_s}), flush=True)
            print(json.dumps({"nts_failures": dict(client.nts_failures)}), flush=True)
    return 0


_ETH_P_ALL = 0x0003  # (a socket for IPv4 only does not see outgoing frames on a veth)


def _sniff(interface: str, ke_port: int, seconds: float) -> int:
    """Print one JSON line per NTS-KE connection seen on ``interface``: client address and
    the time (s) from the client's SYN to the first FIN or RST of either side."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(_ETH_P_ALL))
    sock.bind((interface, _ETH_P_ALL))
    started: dict[tuple[str, int], int] = {}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ready, _, _ = select.select([sock], [], [], 0.2)
        if not ready:
            continue
        frame = sock.recv(65_535)
        now_ns = time.monotonic_ns()
        ip = frame[14:]
        if frame[12:14] != b"\x08\x00" or len(ip) < 20 or ip[9] != socket.IPPROTO_TCP:
            continue
        tcp = ip[(ip[0] & 0x0F) * 4:]
        if len(tcp) < 14:
            continue
        sport, dport = struct.unpack_from("!HH", tcp)
        flags = tcp[13]
        src, dst = socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20])
        key = (src, sport) if dport == ke_port else (dst, dport)
        if ke_port not in (sport, dport):
            continue
        if flags & 0x02 and not flags & 0x10 and dport == ke_port:  # SYN
            started[key] = now_ns
        elif flags & 0x05 and key in started:  # FIN or RST (a close with unread data)
            print(json.dumps({"client": key[0], "ke_s": (now_ns - started.pop(key)) / 1e9}),
                  flush=True)
    return 0


# -- the lab ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    tool: str
    stats: Stats
    ke_wire_s: tuple[float, ...] = ()
    ke_process_s: tuple[float, ...] = ()
    offsets_ns: tuple[float, ...] = ()

    @property
    def p95_abs_ns(self) -> float:
        """95th percentile of |offset| (ns): the error most samples stay under."""
        if len(self.offsets_ns) < 2:
            return math.nan
        return statistics.quantiles([abs(o) for o in self.offsets_ns], n=20)[-1]


def _rows(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def run_lab(seconds: float, ke_runs: int, prefix: str = "csntsl",
            subnet: str = "10.200.23") -> list[Row]:
    """One topology, three clients side by side; statistics per client."""
    dirs = {name: chrony_workdir(f"csnts_{name}_") for name in ("srv", "cli")}
    try:
        with Topology(prefix, subnet) as topo:
            pki = make_test_pki(dirs["srv"], san=f"DNS:localhost,IP:{topo.ip_a}")
            conf = nts_server_conf(dirs["srv"], pki, bind=topo.ip_a, allow="10.200.0.0/16",
                                   port=NTP_PORT, ke_port=KE_PORT)
            quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
            topo.spawn(topo.ns_a, ["chronyd", "-4", "-x", "-d", "-u", "_chrony", "-f",
                                   str(conf)], **quiet)
            source = {"nts": f"{subnet}.3", "ntp": f"{subnet}.4", "chronyd": f"{subnet}.5",
                      "nts3": f"{subnet}.6", "ntp3": f"{subnet}.7"}
            for address in source.values():
                topo.add_address(topo.ns_b, address)
            sniffer = topo.spawn(topo.ns_b, [sys.executable, "-m", "lab.nts_vs_chrony",
                                             "sniff", topo.if_b, "--seconds",
                                             str(seconds + 20 + ke_runs)],
                                 stdout=subprocess.PIPE)
            time.sleep(1.0)
            chrony = topo.spawn(topo.ns_b, ["chronyd", "-4", "-x", "-d", "-u", "_chrony", "-f",
                                            str(nts_client_conf(dirs["cli"], topo.ip_a,
                                                                pki.ca_cert, port=NTP_PORT,
                                                                ke_port=KE_PORT,
                                                                source=source["chronyd"]))],
                                **quiet)
            ours = {
                kind: topo.spawn(topo.ns_b, [sys.executable, "-m", "lab.nts_vs_chrony",
                                             "worker", topo.ip_a, "--ca-file",
                                             str(pki.ca_cert), "--seconds", str(seconds),
                                             "--source", source[kind], "--ke-runs",
                                             str(ke_runs if kind == "nts" else 0),
                                             "--burst", "3" if kind.endswith("3") else "1",
                                             *(["--nts"] if kind.startswith("nts") else [])],
                                 stdout=subprocess.PIPE)
                for kind in ("nts", "ntp", "nts3", "ntp3")
            }
            outs = {kind: proc.communicate(timeout=seconds + 60)[0].decode()
                    for kind, proc in ours.items()}
            topo.stop(chrony)
            topo.stop(sniffer)
            assert sniffer.stdout is not None
            sniffed = _rows(sniffer.stdout.read().decode())
        rows: list[Row] = []
        for kind, label in (("nts", "clocksync NTS"), ("ntp", "clocksync NTP"),
                            ("nts3", "clocksync NTS b3"), ("ntp3", "clocksync NTP b3")):
            data = _rows(outs[kind])
            stats = Stats.of([Measured(float(r["offset_ns"]), float(r["bound_ns"]),
                                       float(r["delay_ns"]))
                              for r in data if "offset_ns" in r])
            wire = tuple(float(r["ke_s"]) for r in sniffed
                         if r["client"] == source[kind])
            process = tuple(float(r["ke_s"]) for r in data if "ke_s" in r)
            offsets = tuple(float(r["offset_ns"]) for r in data
                            if "offset_ns" in r)
            rows.append(Row(label, stats, wire, process, offsets))
        ours_addresses = {a for k, a in source.items() if k != "chronyd"}
        chrony_rows = parse_measurements(dirs["cli"] / "measurements.log")
        rows.append(Row("chronyd NTS", Stats.of(chrony_rows),
                        tuple(float(r["ke_s"]) for r in sniffed
                              if r["client"] not in ours_addresses), (),
                        tuple(m.offset_ns for m in chrony_rows)))
        return rows
    finally:
        for path in dirs.values():
            shutil.rmtree(path, ignore_errors=True)


def _us(ns: float) -> str:
    return "-" if math.isnan(ns) else f"{ns / 1e3:.2f}"


def _ms(values: Sequence[float]) -> str:
    return f"{statistics.median(values) * 1e3:.2f} (n={len(values)})" if values else "-"


def format_table(rows: Sequence[Row]) -> str:
    head = (f"{'tool':<16} {'samples':>7} {'rms µs':>8} {'mean µs':>8} {'p95|err| µs':>11} "
            f"{'max|err| µs':>11} {'coverage':>8} {'med delay µs':>12} "
            f"{'NTS-KE wire ms':>16} {'NTS-KE in-process ms':>20}")
    lines = [head, "-" * len(head)]
    for r in rows:
        st = r.stats
        cov = "-" if math.isnan(st.coverage) else f"{st.coverage * 100:.1f}%"
        lines.append(f"{r.tool:<16} {st.samples:>7} {_us(st.rms_ns):>8} {_us(st.mean_ns):>8} "
                     f"{_us(r.p95_abs_ns):>11} {_us(st.max_abs_ns):>11} {cov:>8} "
                     f"{_us(st.median_delay_ns):>12} "
                     f"{_ms(r.ke_wire_s):>16} {_ms(r.ke_process_s):>20}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.nts_vs_chrony", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    worker = sub.add_parser("worker", help=argparse.SUPPRESS)
    worker.add_argument("server")
    worker.add_argument("--ca-file", required=True)
    worker.add_argument("--seconds", type=float, default=10.0)
    worker.add_argument("--source", required=True)
    worker.add_argument("--nts", action="store_true")
    worker.add_argument("--ke-runs", type=int, default=0)
    worker.add_argument("--burst", type=int, default=1)
    sniff = sub.add_parser("sniff", help=argparse.SUPPRESS)
    sniff.add_argument("interface")
    sniff.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seconds", type=float, default=30.0,
                        help="measurement time (default 30)")
    parser.add_argument("--ke-runs", type=int, default=20,
                        help="extra NTS-KEs our client runs after measuring (default 20)")
    args = parser.parse_args(argv)
    if args.command == "worker":
        return _ours(args.server, args.ca_file, args.seconds, args.source, args.nts,
                     args.ke_runs, args.burst)
    if args.command == "sniff":
        return _sniff(args.interface, KE_PORT, args.seconds)
    why = missing_requirements("chronyd", "openssl")
    if why or os.geteuid() != 0:
        print(f"cannot run: {why}", file=sys.stderr)
        return 2
    rows = run_lab(args.seconds, args.ke_runs)
    print(format_table(rows))
    ratio = rows[0].stats.rms_ns / rows[1].stats.rms_ns
    ratio3 = rows[2].stats.rms_ns / rows[3].stats.rms_ns
    print(f"true offset is 0 (one shared system clock); coverage = share of samples with "
          f"|offset| <= the tool's bound (chronyd: its delay/2 + dispersion); NTS-KE wire = "
          f"client SYN to first FIN or RST, sniffed in the client namespace (median)\n"
          f"NTS rms / plain NTP rms = {ratio:.2f} single exchanges, {ratio3:.2f} min-delay "
          f"bursts of 3 ({'within' if max(ratio, ratio3) <= 1.2 else 'OVER'} the 1.2x "
          "budget)")
    return 0 if max(ratio, ratio3) <= 1.2 else 1


if __name__ == "__main__":
    raise SystemExit(main())
