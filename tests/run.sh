#!/usr/bin/env bash
# Install everything clocksync's tests need, then run lint, types and the whole test suite.
#   bash tests/run.sh            # as root: also installs chrony, linuxptp, redis-server
#   bash tests/run.sh -k corrector   # extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."

# Real servers the tests start themselves (never as system services, never touching the clock).
need=()
for pair in chronyd:chrony ptp4l:linuxptp redis-server:redis-server ethtool:ethtool ip:iproute2; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair##*:}")
done
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "missing ${need[*]} and not root: the tests that need them skip with a reason" >&2
  fi
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'
.venv/bin/ruff check clocksync ptp tests lab
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
