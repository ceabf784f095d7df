"""The ``clocksync`` package of another git revision, for benchmarks that time this tree and
a baseline side by side in one run."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

__all__ = ["REPO", "checkout"]

REPO = Path(__file__).resolve().parents[2]


def checkout(rev: str, into: Path) -> Path | None:
    """The ``clocksync`` package at ``rev`` extracted under ``into`` (None, with a note
    printed, when git or the revision is not available)."""
    archive = into / "base.tar"
    try:
        with archive.open("wb") as out:
            subprocess.run(["git", "-C", str(REPO), "archive", rev, "clocksync"], stdout=out,
                           stderr=subprocess.PIPE, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"baseline {rev}: not available ({exc}); skipped")
        return None
    root = into / "baseline"
    with tarfile.open(archive) as tar:
        tar.extractall(root, filter="data")
    return root
