"""Start a real chronyd for a test and always clean it up (by PID), in one place.

chronyd runs with ``-x`` (never touches the clock) and ``-d`` (foreground). ``ready`` is
polled until it returns True; if chronyd exits or ``timeout_s`` passes first, the test fails
with chronyd's own output.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

__all__ = ["chronyd_process"]


@contextlib.contextmanager
def chronyd_process(conf: Path, workdir: Path, ready: Callable[[], bool], timeout_s: float,
                    what: str, extra_args: Sequence[str] = ()
                    ) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``chronyd -x -d [extra_args] -f conf`` until the block ends; remove ``workdir``
    afterwards."""
    log = open(workdir / "stderr.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(["chronyd", "-x", "-d", *extra_args, "-f", str(conf)], stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if ready():
                    break
            except Exception:  # not answering yet
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                text = (workdir / "stderr.log").read_text(errors="replace")
                pytest.fail(f"{what} did not become ready:\n{text}")
            time.sleep(0.1)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)
