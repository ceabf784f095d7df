"""Our NTS client beside our plain NTP client and chronyd's own NTS client, against a
chronyd NTS server, on one veth between two network namespaces.

Topology (lab.netlab; all namespaces share one system clock, so the true offset is exactly
0 and every measured offset is a measured error)::

    {prefix}a [chronyd: NTP + NTS-KE server, local stratum 1, test CA cert] 10.200.x.1
         | direct veth
    {prefix}b [our NTS client, our plain client, chronyd -x NTS client] 10.200.x.3 ...

Each client polls every 0.25 s for ``--seconds`` from its own source address (servers keep
interleaved-mode state per address); ours in interleaved mode (the default), chronyd as a
``noselect`` NTS source whose raw offsets come from its ``measurements.log``. NTS-KE time
is measured on the wire for both NTS clients alike, by a packet sniffer in the client
namespace: from the client's TCP SYN to the first FIN of that connection (either side).
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

from lab.netlab import Topology, missing_requirements
from lab.ntp_vs_chrony import Measured, Stats, chrony_workdir, parse_measurements

__all__ = [
    "TestPki",
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
