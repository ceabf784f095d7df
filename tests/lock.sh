#!/usr/bin/env bash
# Refresh uv.lock, the exact versions (with hashes) that tests/run.sh and CI install.
#   bash tests/lock.sh             # after editing pyproject.toml: keep current pins where they fit
#   bash tests/lock.sh --upgrade   # on purpose: take the newest versions pyproject.toml allows
# Commit pyproject.toml and uv.lock together.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/_uv.sh
exec "$UV" lock "$@"
