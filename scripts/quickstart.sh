#!/usr/bin/env bash
# Set up (once) and run the example workflow with the embedded SQLite store: ./scripts/quickstart.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_env.sh
sync_locked_venv
exec .venv/bin/kestra-trio run examples/hello.yaml "$@"
