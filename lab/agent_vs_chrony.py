"""Our agent beside a measure-only chronyd client, both against a chronyd server.

Topology per scenario (:mod:`lab.netlab`; all namespaces share one system clock, so the true
offset is exactly 0 and every measured offset is a measured error)::

    csh2_a [chronyd server, local stratum 1, -x] 10.200.3x.1
         | direct veth, or via csh2_r running the user-space delay bridge
    csh2_b [clocksync agent run  (from 10.200.3x.2, poll 1 s)           ]
           [chronyd -x client    (from 10.200.3x.3, minpoll/maxpoll -2) ]

Scored, for ``--seconds`` per scenario:

* ``agent samples``: the agent's raw samples, read back from its sample log (Parquet
  segments under its data dir); bound = the sample's ``bound_ns``.
* ``agent model (live)``: every 0.25 s the lab reads the agent's directory store with
  ``Corrector.from_store`` / ``refresh()`` and corrects *now*: offset = ``correct(t) - t``,
  bound = the corrector's bound, as a user reading the store at that instant gets it
  (usually a holdover extrapolation past the last sample). Instants before the first table
  are not scored (their count is in ``--json`` as ``live_no_table``).
* ``agent model (final)``: the last published table, evaluated at evenly spaced instants
  between the run's first and last agent sample (the interpolated history).
* ``chronyd samples``: raw offsets of chronyd's ``measurements.log`` (only measurements that
  passed all its tests; chronyd measures with ``noselect`` so they stay raw, see
  :func:`lab.ntp_vs_chrony.chrony_client_conf`). chronyd states no per-sample bound; its
  column is chrony's own distance, ``peer delay/2 + peer dispersion + root delay/2 + root
  dispersion`` (``measurements.log`` columns PeerDel, PeerDisp, RootDel, RootDisp; see
  chrony.conf(5), ``log measurements``).

Coverage = share of scored instants whose ``[offset - bound, offset + bound]`` holds 0.

Run as root: ``python -m lab.agent_vs_chrony [--seconds S] [--scenario NAME] [--json]``.
Nothing touches the clock: every chronyd runs with ``-x``, and the agent only measures.
Namespaces ``csh2_*``, subnets 10.200.31.0/24 (direct) and 10.200.32.0/24 (bridge).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType

import numpy as np

from clocksync import ClockSyncError, Corrector, read_samples
from clocksync.agent import segment_files
from lab.netlab import BridgeParams, Topology, missing_requirements
from lab.ntp_vs_chrony import (
    Measured,
    Scenario,
    Stats,
    chrony_client_conf,
    chrony_server_conf,
    chrony_workdir,
    parse_measurements,
)

__all__ = [
    "SCENARIOS",
    "LabError",
    "Scenario",
    "ScenarioResult",
    "agent_config_toml",
    "format_table",
    "main",
    "run_scenario",
]

PREFIX = "csh2_"
NODE = "lab-b"
AGENT_POLL_S = 1.0
LIVE_EVERY_S = 0.25
FINAL_INSTANTS = 2_000
WHO = ("agent samples", "agent model (live)", "agent model (final)", "chronyd samples")


class LabError(RuntimeError):
    """The lab could not be set up or produced nothing to score (message says what)."""


SCENARIOS = (
    Scenario("direct veth", "10.200.31", None),
    # server -> client +500 µs: NTP offsets shift by -250 µs, inside ±delay/2
    Scenario("bridge jitter 100µs, asym +500µs a->b", "10.200.32",
             BridgeParams(delay_ab_us=500.0, delay_ba_us=0.0, jitter_us=100.0)),
)


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    """Statistics per scorer (keys: :data:`WHO`) plus run facts."""

    scenario: str
    seconds: float
    stats: dict[str, Stats]
    live_no_table: int = 0
    agent_exit_code: int | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


def agent_config_toml(server: str, data_dir: Path, store_dir: Path,
                      poll_s: float = AGENT_POLL_S) -> str:
    """The agent's config: one NTP server, a fixed poll, a directory store, no HTTP."""
    return "\n".join([
        f'node = "{NODE}"',
        f'ntp_servers = ["{server}"]',
        f"min_poll_s = {poll_s}",
        f"max_poll_s = {poll_s}",
        "refit_min_s = 2",
        f'data_dir = "{data_dir}"',
        f'stores = ["{store_dir}"]',
        'http_listen = ""',
    ]) + "\n"


def _agent_samples(samples_dir: Path) -> tuple[list[Measured], tuple[int, int] | None]:
    """The agent's raw samples from its sample log, and the (first, last) local time."""
    rows: list[Measured] = []
    times: list[int] = []
    for path in segment_files(samples_dir):
        arr = read_samples(path)
        for t, off, bound, delay in zip(arr.t_local_ns, arr.offset_ns, arr.bound_ns,
                                        arr.delay_ns, strict=True):
            rows.append(Measured(float(off), float(bound), float(delay)))
            times.append(int(t))
    return rows, ((min(times), max(times)) if times else None)


def _final_model(store_dir: Path, span: tuple[int, int] | None
                 ) -> tuple[list[Measured], str | None]:
    """The final table evaluated at evenly spaced instants over the run, and a note naming
    instants it left unanswered (none expected: the table covers first to last sample)."""
    if span is None:
        return [], None
    corrector = Corrector.from_store(str(store_dir))
    if NODE not in corrector.nodes:
        return [], "no final table in the store"
    # offsets from the first sample, so float rounding (~256 ns at 1.8e18) cannot fall outside
    ts = span[0] + np.linspace(0, span[1] - span[0], FINAL_INSTANTS).astype(np.int64)
    ref, bound = corrector.correct(NODE, ts, on_invalid="inf")
    bad = np.flatnonzero(~np.isfinite(bound))
    note = None
    if len(bad):
        flags = corrector.flags(NODE, ts[bad])
        note = (f"final table: {len(bad)} of {len(ts)} instants unanswered, first at "
                f"{(ts[bad[0]] - span[0]) / 1e9:.3f} s after the first sample "
                f"(local {int(ts[bad[0]])} ns, flags {sorted(set(flags.tolist()))})")
    return [Measured(float(r - t), float(b)) for r, t, b in zip(ref, ts, bound, strict=True)
            if math.isfinite(b)], note


class _LiveScorer:
    """Reads the store now and then; scores ``correct(now) - now``. Remembers the worst
    instant: when it was, the bound, and the table's sample count and age."""

    def __init__(self, store_dir: Path) -> None:
        self.store_dir = store_dir
        self.rows: list[Measured] = []
        self.no_table = 0
        self.worst = ""
        self._worst_abs_ns = -1.0
        self._started = time.monotonic()
        self._corrector: Corrector | None = None

    def tick(self) -> None:
        try:
            if self._corrector is None:
                self._corrector = Corrector.from_store(str(self.store_dir))
            else:
                self._corrector.refresh()
            t = time.time_ns()
            ref, bound = self._corrector.correct(NODE, t)
            table = self._corrector.table(NODE)
        except (ClockSyncError, OSError):  # no table yet (or a write in progress)
            self.no_table += 1
            return
        row = Measured(float(ref - t), float(bound))
        self.rows.append(row)
        if abs(row.offset_ns) > self._worst_abs_ns:
            self._worst_abs_ns = abs(row.offset_ns)
            age_s = (t - (table.last_sample_local_ns or t)) / 1e9
            self.worst = (f"live model: max |err| {abs(row.offset_ns) / 1e3:.2f} µs at "
                          f"+{time.monotonic() - self._started:.1f} s (bound "
                          f"{row.bound_ns / 1e3:.2f} µs; table of {table.sample_count} "
                          f"samples, last one {age_s:.2f} s old)")


def _wait_server(topo: Topology, timeout_s: float = 15.0) -> None:
    """Until one basic-mode NTP exchange from the client namespace succeeds."""
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        done = topo.exec(topo.ns_b, sys.executable, "-c",
                         "import sys; from clocksync.cli import main; sys.exit(main())",
                         "ntp", "probe", topo.ip_a, "--count", "1", "--basic",
                         "--timeout", "0.5", check=False, timeout_s=30)
        if done.returncode == 0:
            return
        last = ((done.stderr or done.stdout).strip().splitlines() or [""])[-1]
        time.sleep(0.3)
    raise LabError(f"chronyd server at {topo.ip_a} did not answer NTP from {topo.ns_b} "
                   f"within {timeout_s:g} s ({last or 'no output'})")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def run_scenario(sc: Scenario, seconds: float) -> ScenarioResult:
    """Run the agent and the chronyd client side by side for ``seconds``; score both."""
    work = Path(tempfile.mkdtemp(prefix="csh2_agent_"))
    dirs = {name: chrony_workdir(f"csh2_chrony_{name}_") for name in ("srv", "cli")}
    data_dir, store_dir = work / "data", work / "tables"
    try:
        with Topology(PREFIX, sc.subnet, bridge=sc.bridge) as topo:
            chrony_addr = f"{sc.subnet}.3"  # servers keep interleaved state per address
            topo.add_address(topo.ns_b, chrony_addr)
            srv_log = open(dirs["srv"] / "stderr.log", "wb")  # noqa: SIM115 - closed below
            try:
                server = topo.spawn(topo.ns_a, ["chronyd", "-x", "-d", "-f", str(
                    chrony_server_conf(dirs["srv"], allow="10.200.0.0/16"))],
                    stdout=srv_log, stderr=subprocess.STDOUT)
            finally:
                srv_log.close()
            time.sleep(0.3)
            if server.poll() is not None:
                raise LabError("chronyd server exited at start:\n"
                               + _tail(dirs["srv"] / "stderr.log"))
            _wait_server(topo)
            conf = work / "agent.toml"
            conf.write_text(agent_config_toml(topo.ip_a, data_dir, store_dir))
            agent_log_path = work / "agent.log"
            with open(agent_log_path, "wb") as agent_log:
                agent = topo.spawn(topo.ns_b, [
                    sys.executable, "-c",
                    "import sys; from clocksync.cli import main; sys.exit(main())",
                    "agent", "run", "--config", str(conf), "--log-level", "warning"],
                    stdout=agent_log, stderr=subprocess.STDOUT)
            chronyd = topo.spawn(topo.ns_b, ["chronyd", "-x", "-d", "-f", str(
                chrony_client_conf(dirs["cli"], topo.ip_a, source=chrony_addr))],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            live = _LiveScorer(store_dir)
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                if agent.poll() is not None:
                    raise LabError(f"the agent exited early (code {agent.returncode}):\n"
                                   + _tail(agent_log_path))
                if chronyd.poll() is not None:
                    raise LabError(f"the chronyd client exited early (code "
                                   f"{chronyd.returncode})")
                live.tick()
                time.sleep(LIVE_EVERY_S)
            topo.stop(agent, timeout_s=15.0)  # SIGTERM: flush, refit, publish, exit 0
            topo.stop(chronyd)
        samples, span = _agent_samples(data_dir / "samples")
        if not samples:
            raise LabError("the agent logged no samples:\n" + _tail(agent_log_path))
        final, note = _final_model(store_dir, span)
        stats = {
            WHO[0]: Stats.of(samples),
            WHO[1]: Stats.of(live.rows),
            WHO[2]: Stats.of(final),
            WHO[3]: Stats.of(parse_measurements(dirs["cli"] / "measurements.log")),
        }
        notes = tuple(n for n in (live.worst, note) if n)
        return ScenarioResult(sc.name, seconds, stats, live.no_table, agent.returncode, notes)
    finally:
        for path in (work, *dirs.values()):
            shutil.rmtree(path, ignore_errors=True)


def _us(ns: float) -> str:
    return "-" if math.isnan(ns) else f"{ns / 1e3:.2f}"


def format_table(results: Sequence[ScenarioResult]) -> str:
    """One table per scenario: who | samples | offset rms | max |err| | coverage | bound."""
    out: list[str] = []
    for res in results:
        head = (f"{'who':<20} | {'samples':>7} | {'offset rms µs':>13} | "
                f"{'max |err| µs':>12} | {'coverage':>8} | {'median bound µs':>15}")
        out += [f"== {res.scenario} ({res.seconds:g} s) ==", head, "-" * len(head)]
        for who, st in res.stats.items():
            cov = "-" if math.isnan(st.coverage) else f"{st.coverage * 100:.1f}%"
            out.append(f"{who:<20} | {st.samples:>7} | {_us(st.rms_ns):>13} | "
                       f"{_us(st.max_abs_ns):>12} | {cov:>8} | {_us(st.median_bound_ns):>15}")
        out += [f"note: {note}" for note in res.notes]
        out.append("")
    out.append("true offset is 0 (one shared system clock); coverage = share with |offset| <= "
               "bound; chronyd's bound = its distance: peer delay/2 + peer dispersion + "
               "root delay/2 + root dispersion (measurements.log)")
    return "\n".join(out)


def _as_json(results: Sequence[ScenarioResult]) -> str:
    def clean(value: float) -> float | None:
        return value if math.isfinite(value) else None

    return json.dumps([{
        "scenario": r.scenario, "seconds": r.seconds, "live_no_table": r.live_no_table,
        "agent_exit_code": r.agent_exit_code, "notes": list(r.notes),
        "stats": {who: {k: (clean(v) if isinstance(v, float) else v)
                        for k, v in asdict(st).items()} for who, st in r.stats.items()},
    } for r in results], indent=2)


def _raise_interrupt(_sig: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.agent_vs_chrony", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="measurement time per scenario (default 60)")
    parser.add_argument("--scenario", action="append", default=None,
                        help="run only scenarios whose name starts with this (repeatable)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = parser.parse_args(argv)
    why = missing_requirements("chronyd")
    if why:
        print(f"cannot run: {why}", file=sys.stderr)
        return 2
    chosen = [sc for sc in SCENARIOS
              if not args.scenario or any(sc.name.startswith(p) for p in args.scenario)]
    if not chosen:
        print(f"no scenario matches {args.scenario}; known: "
              + ", ".join(sc.name for sc in SCENARIOS), file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _raise_interrupt)  # clean up by PID on SIGTERM too
    results: list[ScenarioResult] = []
    try:
        for sc in chosen:
            results.append(run_scenario(sc, args.seconds))
    except KeyboardInterrupt:
        print("interrupted: namespaces and processes removed", file=sys.stderr)
        return 130
    except (LabError, subprocess.CalledProcessError, OSError) as exc:
        detail = exc.stderr if isinstance(exc, subprocess.CalledProcessError) else ""
        print(f"lab setup failed: {exc}\n{detail or ''}".rstrip(), file=sys.stderr)
        return 1
    print(_as_json(results) if args.json else format_table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
