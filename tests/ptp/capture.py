"""Regenerate the golden PTP captures from a real ptp4l master and slave (root).

    python -m tests.ptp.capture [OUT_DIR]     # default: tests/ptp/captures

A ptp4l master and a ptp4l slave (both ``free_running 1``) run in namespaces of their own
(``lab.ptp_vs_ptp4l.PtpLab``), ``pmc`` sends management GETs, and tcpdump records the
slave side. One UDP payload of each kind is written as hex: a Sync and its Follow_Up, a
Delay_Req and its Delay_Resp, an Announce, a Management message. After regenerating, the
spelled-out expectations in ``test_golden.py`` must be updated by hand from the new bytes.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from scapy.layers.inet import UDP
from scapy.utils import rdpcap

import ptp
from lab.ptp_vs_ptp4l import PtpLab

__all__ = ["CAPTURE_NAMES", "capture", "pick"]

CAPTURE_NAMES = ("sync", "follow_up", "delay_req", "delay_resp", "announce", "management")
DEFAULT_DIR = Path(__file__).parent / "captures"


def pick(payloads: list[bytes]) -> dict[str, bytes]:
    """One payload per name in :data:`CAPTURE_NAMES`, with matching pairs where they pair.

    The last of each kind is taken, so sequence ids and times are past their first values.
    """
    msgs = [(p, ptp.decode(p)) for p in payloads]
    out: dict[str, bytes] = {}
    follow = {int(m.sequenceId): p for p, m in msgs if isinstance(m, ptp.FollowUp)}
    resp = {
        (m.requestingPortIdentity.key(), int(m.sequenceId)): p
        for p, m in msgs
        if isinstance(m, ptp.DelayResp)
    }
    for p, m in reversed(msgs):
        if isinstance(m, ptp.Sync) and "sync" not in out and int(m.sequenceId) in follow:
            out["sync"], out["follow_up"] = p, follow[int(m.sequenceId)]
        elif isinstance(m, ptp.DelayReq) and "delay_req" not in out:
            key = (m.source.key(), int(m.sequenceId))
            if key in resp:
                out["delay_req"], out["delay_resp"] = p, resp[key]
        elif isinstance(m, ptp.Announce):
            out.setdefault("announce", p)
        elif isinstance(m, ptp.Management):
            out.setdefault("management", p)
    return out


def capture(seconds: float = 3.0) -> dict[str, bytes]:
    """Run the topology for ``seconds`` and return the picked payloads."""
    with PtpLab() as lab:
        pcap = lab.workdir / "slave.pcap"
        dump = lab.start(
            lab.slave_ns,
            ["tcpdump", "--immediate-mode", "-i", lab.slave_if, "-U", "-w", str(pcap), "udp"],
            "tcpdump.log",
        )
        if not lab.wait_for("tcpdump.log", "listening on", 5.0):
            raise RuntimeError(f"tcpdump did not start: {lab.log('tcpdump.log')}")
        lab.start_ptp4l("slave")
        lab.start_master()
        time.sleep(seconds)
        pmc = lab.start(
            lab.slave_ns,
            ["pmc", "-4", "-i", lab.slave_if, "-b", "1", "-t", "1", "GET CURRENT_DATA_SET"],
            "pmc.log",
        )
        pmc.wait(timeout=10)
        time.sleep(0.5)
        lab.stop(dump)  # tcpdump flushes and exits on SIGTERM
        payloads = [bytes(p[UDP].payload) for p in rdpcap(str(pcap)) if UDP in p]
    return pick(payloads)


def main(argv: list[str]) -> int:
    out_dir = Path(argv[0]) if argv else DEFAULT_DIR
    got = capture()
    missing = [n for n in CAPTURE_NAMES if n not in got]
    if missing:
        print(f"not captured: {', '.join(missing)}", file=sys.stderr)
        return 1
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in CAPTURE_NAMES:
        (out_dir / f"{name}.hex").write_text(got[name].hex() + "\n")
        print(f"{name}: {len(got[name])} octets")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
