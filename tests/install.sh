#!/usr/bin/env bash
# Install what the tests use: the servers they start (as root, from Debian's packages; never
# run as system services, never touching the clock) and the Python packages from uv.lock
# into .venv. Fails with a clear message when uv.lock no longer matches pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pair in chronyd:chrony ptp4l:linuxptp redis-server:redis-server prometheus:prometheus \
            tcpdump:tcpdump ethtool:ethtool ip:iproute2 openssl:openssl npm:npm; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair##*:}")
done
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "missing ${need[*]} and not root: the tests that need them skip with a reason" >&2
  fi
fi

. tests/_uv.sh
if ! "$UV" lock --check --quiet; then
  echo "uv.lock does not match pyproject.toml: run 'bash tests/lock.sh' and commit both" >&2
  exit 1
fi
# --compile-bytecode: the tests start many Python processes, and this environment may set
# PYTHONDONTWRITEBYTECODE: without .pyc files each of them compiles numpy, scipy, pyarrow...
# from source (an import of the CLI's libraries: 1.4 s, with them 0.6 s)
"$UV" sync --locked --extra dev --quiet --compile-bytecode
