"""Settings shared by the fuzz targets (tests marked ``fuzz``).

By default (hypothesis profile ``ci``, see tests/conftest.py) every target replays the same
fixed, derandomized sequence of ``FUZZ_EXAMPLES`` cases (200), so a run is repeatable and
fast; the crash inputs found so far are replayed from tests/faults/corpus/. To explore
afresh with thousands of random cases per target::

    HYPOTHESIS_PROFILE=explore .venv/bin/python -m pytest -m fuzz

(``FUZZ_EXAMPLES=N`` sets the count in either profile.)
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import settings

__all__ = ["FUZZ_EXAMPLES", "fuzz_settings"]

_DEFAULT = "5000" if os.environ.get("HYPOTHESIS_PROFILE") == "explore" else "200"
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", _DEFAULT))


def fuzz_settings(**kwargs: Any) -> settings:
    """``hypothesis.settings`` for a fuzz target: ``FUZZ_EXAMPLES`` cases, no deadline."""
    return settings(max_examples=FUZZ_EXAMPLES, deadline=None, **kwargs)
