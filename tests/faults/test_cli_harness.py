"""Every command on malformed files: ``fit``, ``correct``, ``skew report``, ``latency``,
``traces inspect`` and ``agent run --config`` each get a truncated file, random bytes, wrong
types, huge numbers, an empty file and a directory instead of a file.

Property: each run ends with a non-zero exit, one ``Error:`` line of message (click's usage
lines may precede it for a usage error), no traceback, and no output file left behind.

The fixed matrix runs on every test run; the hypothesis target feeds each command
``FUZZ_EXAMPLES`` more inputs (random bytes, and valid files with bytes cut or spliced in),
thousands with ``HYPOTHESIS_PROFILE=explore``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from clocksync import DirectoryStore, SimClock, fit_table, write_samples
from clocksync.cli import main
from clocksync.testing import LinkModel, simulate_samples
from tests._fuzz import fuzz_settings

pytestmark = pytest.mark.fuzz

T0 = 1_767_225_600 * 10**9
FIX = Path(__file__).parent.parent / "latency" / "fixtures"


class Good:
    """Valid inputs of every kind, made once: a table store, a sample file, events, a
    trace file and an agent config."""

    def __init__(self, root: Path) -> None:
        self.root = root
        clock = SimClock(t0_ns=T0, offset0_ns=2e5, skew_ppm=20.0, seed=1)
        samples = simulate_samples(clock, "n1", T0, 120, 2, LinkModel(),
                                   np.random.default_rng(2))
        self.samples = root / "samples.jsonl"
        write_samples(samples, self.samples)
        self.tables = root / "tables"
        DirectoryStore(self.tables).write(fit_table(samples))
        self.events = root / "events.jsonl"
        stages = ("pp_enqueue", "pp_exit", "bifrost_arrive", "bifrost_done")
        self.events.write_text("".join(
            json.dumps({"request_id": f"r{i}", "stage": stage, "node": "n1",
                        "ts_ns": T0 + (30 + i) * 10**9 + k * 1000}) + "\n"
            for i in range(20) for k, stage in enumerate(stages)))
        self.blocker = root / "blocker"  # a file: an agent that got this far cannot start
        self.blocker.write_text("")
        self.traces = FIX / "otlp.json"
        self.config = root / "agent.toml"
        self.config.write_text('node = "n1"\nntp_servers = ["127.0.0.1:1"]\nmin_poll_s = 1\n')


#: command -> (the valid file it reads, its suffix, argv builder (bad file, out path))
Argv = Callable[[Good, Path, Path], list[str]]
COMMANDS: dict[str, tuple[str, str, Argv]] = {
    "fit": ("samples", ".jsonl", lambda g, f, out: ["fit", str(f), "--out", str(out)]),
    "correct": ("correct_input", ".jsonl",
                lambda g, f, out: ["correct", str(f), "--tables", str(g.tables),
                                   "--out", str(out)]),
    "skew report": ("table", ".table.json",
                    lambda g, f, out: ["skew", "report", "--store", str(f.parent)]),
    "latency": ("events", ".jsonl",
                lambda g, f, out: ["latency", str(f), "--tables", str(g.tables),
                                   "--out", str(out)]),
    "traces inspect": ("traces", ".json", lambda g, f, out: ["traces", "inspect", str(f)]),
    "agent run": ("config", ".toml",
                  lambda g, f, out: ["agent", "run", "--config", str(f), "--data-dir",
                                     str(g.blocker / "data")]),
}


def _valid_bytes(good: Good, what: str) -> bytes:
    if what == "table":
        return next(good.tables.iterdir()).read_bytes()
    if what == "correct_input":
        return (json.dumps({"node": "n1", "ts_ns": T0 + 60 * 10**9}) + "\n").encode()
    return Path(getattr(good, what)).read_bytes()


def _malformed(kind: str, command: str, valid: bytes) -> bytes | None:
    """The bytes of one malformed case (None: a directory instead of a file)."""
    if kind == "directory":
        return None
    if kind == "empty":
        return b""
    if kind == "truncated":
        return valid[: max(1, len(valid) * 2 // 3 - 1)]
    if kind == "random bytes":
        return bytes(np.random.default_rng(7).integers(0, 256, 600, dtype=np.uint8))
    huge = kind == "huge numbers"
    if command == "agent run":
        return b'min_poll_s = 1e300\nburst = 99999999999999999999\n' if huge else \
            b'min_poll_s = "fast"\nntp_servers = 5\n'
    if command == "skew report":
        doc = json.loads(valid)
        if huge:
            doc["cells"]["hi0_ns"] = [1e300] * len(doc["cells"]["hi0_ns"])
            doc["sample_count"] = 10**40
        else:
            doc["cells"] = "many"
            doc["segments"] = {"a": 1}
        return json.dumps(doc).encode()
    if command == "traces inspect":
        return (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": '
                b'1e300, "traceId": 5}]}]}]}' if huge else
                b'{"resourceSpans": {"scopeSpans": 7}}')
    line = {"fit": {"node": "n1", "t_local_ns": T0, "offset_ns": 1.0, "delay_ns": 1.0},
            "correct": {"node": "n1", "ts_ns": T0},
            "latency": {"request_id": "r", "stage": "pp_exit", "node": "n1", "ts_ns": T0}}
    row: dict[str, object] = dict(line[command])
    for key in row:
        if key != "node":
            row[key] = (10**30 if key.endswith("_ns") and key.startswith("t") else 1e300) \
                if huge else ["not", "a", "number"]
    if not huge:
        row["node"] = {"a": 1}
    return (json.dumps(row) + "\n").encode() * 3


def _check(good: Good, command: str, content: bytes | None, tag: str) -> None:
    _, suffix, argv = COMMANDS[command]
    work = good.root / f"case-{tag}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    bad = work / ("in" if command != "skew report" else "n1")
    bad = bad.with_name(bad.name + suffix)
    if content is None:
        bad.mkdir()
    else:
        bad.write_bytes(content)
    out = work / "out" / ("result.parquet" if command == "latency" else "result.jsonl") \
        if command in ("correct", "latency") else work / "out"
    if command in ("correct", "latency"):
        out.parent.mkdir()
    before = sorted(p.name for p in work.rglob("*"))
    res = CliRunner().invoke(main, argv(good, bad, out))
    text = res.output
    assert res.exit_code not in (0, None), f"{command} on {tag}: exit 0\n{text}"
    assert not isinstance(res.exception, Exception) or isinstance(res.exception, SystemExit), \
        f"{command} on {tag}: {res.exception!r}"
    assert "Traceback" not in text, text
    message = [line for line in text.splitlines()
               if line.strip() and not line.startswith(("Usage:", "Try '"))]
    assert len(message) == 1 and message[0].startswith("Error: "), \
        f"{command} on {tag}:\n{text}"
    assert sorted(p.name for p in work.rglob("*")) == before, f"{command} on {tag} left output"


KINDS = ("truncated", "random bytes", "wrong types", "huge numbers", "empty", "directory")


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Good:
    return Good(tmp_path_factory.mktemp("harness"))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_on_malformed_files(good: Good, command: str, kind: str) -> None:
    valid = _valid_bytes(good, COMMANDS[command][0])
    _check(good, command, _malformed(kind, command, valid),
           f"{command}-{kind}".replace(" ", "_"))


@st.composite
def _damaged(draw: st.DrawFn, valid: bytes) -> bytes:
    if draw(st.booleans()):
        return draw(st.binary(max_size=400))
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        if draw(st.booleans()):
            del data[at:at + draw(st.integers(1, 64))]
        else:
            data[at:at] = draw(st.sampled_from([b"\x00", b"1e300", b"-", b'"', b"}", b"\xff",
                                                b"99999999999999999999999", b"NaN", b"[]"]))
    return bytes(data)


@fuzz_settings(suppress_health_check=[HealthCheck.function_scoped_fixture,
                                      HealthCheck.too_slow])
@given(data=st.data())
def test_commands_on_damaged_files(good: Good, data: st.DataObject) -> None:
    """Damaged inputs either run (exit 0, a valid file after all) or fail cleanly."""
    command = data.draw(st.sampled_from(list(COMMANDS)))
    valid = _valid_bytes(good, COMMANDS[command][0])
    content = data.draw(_damaged(valid))
    try:
        _check(good, command, content, "fuzz")
    except AssertionError as exc:
        if ": exit 0" in str(exc):
            return  # the damage left a valid input: nothing to check
        raise


@pytest.mark.parametrize("command", list(COMMANDS))
def test_the_valid_inputs_run(good: Good, command: str, tmp_path: Path) -> None:
    """The control: each command runs on the valid input the malformed ones derive from, so
    the failures above are the malformation's (the agent gets as far as its data dir)."""
    what, suffix, argv = COMMANDS[command]
    work = tmp_path / "valid"
    work.mkdir()
    path = work / (("n1" if command == "skew report" else "in") + suffix)
    path.write_bytes(_valid_bytes(good, what))
    out = work / ("out.parquet" if command == "latency" else "out.jsonl")
    res = CliRunner().invoke(main, argv(good, path, out if command != "fit" else work / "t"))
    if command == "agent run":
        assert res.exit_code == 1 and str(good.blocker) in res.output, res.output
    else:
        assert res.exit_code == 0, res.output
