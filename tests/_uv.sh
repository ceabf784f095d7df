# Sourced by tests/run.sh, tests/run-latest.sh and tests/lock.sh: puts a pinned uv at $UV.
# uv is installed into .tools/uv (hash-checked, from tests/uv-tool.txt) and never downloads
# a Python of its own: it uses the python3 on PATH.
export UV_PYTHON_DOWNLOADS=never
export UV_PYTHON="${UV_PYTHON:-$(command -v python3)}"
UV=.tools/uv/bin/uv
if ! "$UV" --version 2>/dev/null | grep -q "^uv $(sed -n 's/^uv==\([0-9.]*\).*/\1/p' tests/uv-tool.txt)\( \|\$\)"; then
  rm -rf .tools/uv
  python3 -m venv .tools/uv
  .tools/uv/bin/python -m pip install -q --no-deps --require-hashes -r tests/uv-tool.txt
fi
