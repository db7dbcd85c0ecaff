#!/usr/bin/env bash
# Set up (once) and run the example workflow with the embedded SQLite store: ./scripts/quickstart.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
exec .venv/bin/kestra-trio run examples/hello.yaml "$@"
