#!/usr/bin/env bash
# The whole suite against the newest versions pyproject.toml allows (not the lock), in
# .venv-latest: what a user gets from 'pip install clocksync' today. Run it weekly and before
# refreshing the lock; a failure here is fixed in code, not by narrowing a range.
#   bash tests/run-latest.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/install.sh   # the Debian packages (and .venv, which this leaves alone)
. tests/_uv.sh
"$UV" venv --quiet --allow-existing .venv-latest
"$UV" pip install --python .venv-latest/bin/python --quiet --upgrade -e '.[dev]'
echo "newest allowed versions:"
"$UV" pip freeze --python .venv-latest/bin/python | sed 's/^/  /'
.venv-latest/bin/ruff check clocksync ptp tests lab
.venv-latest/bin/mypy
.venv-latest/bin/lint-imports --no-cache
exec .venv-latest/bin/python -m pytest -m "" -p no:cacheprovider "$@"
