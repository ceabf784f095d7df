#!/usr/bin/env bash
# Install everything clocksync's tests need (tests/install.sh: Debian packages as root, Python
# packages from uv.lock), then run ruff, mypy, the import contracts (lint-imports) and the
# whole test suite: fast, slow, root, soak and the stored fuzz corpus. CI runs exactly this
# (.ci/run).
#   bash tests/run.sh                  # everything
#   bash tests/run.sh -k corrector     # extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/install.sh
.venv/bin/ruff check clocksync ptp tests lab
.venv/bin/mypy
.venv/bin/lint-imports --no-cache
# -m "" lifts the default selection (pyproject.toml: no slow, soak or root tests).
exec .venv/bin/python -m pytest -m "" -p no:cacheprovider --durations=15 "$@"
